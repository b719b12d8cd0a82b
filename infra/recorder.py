"""The library's PostgreSQL recorder, with each save sent to the server in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.pq import TransactionStatus


class OneTripApplicationRecorder(PostgresApplicationRecorder):
    """Pipelines BEGIN, the table lock, NOTIFY, the insert and COMMIT, then waits once.

    The library waits for the insert's result before sending COMMIT, so the table lock is held
    across two client round trips — and, with many writer threads, across however long the
    writing thread waits to get the GIL back. Here the server runs the whole transaction without
    waiting for us; the lock (and so the guarantee that readers never skip a position that
    commits later) is unchanged. See docs/adr/0006-one-round-trip-per-save.md.
    """

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with self.datastore.get_connection() as conn:
            try:
                with conn.pipeline(), conn.transaction():
                    with conn.cursor() as curs:
                        self._insert_events(curs, stored_events, **kwargs)
                        if rows:
                            self._lock_table(curs)
                            self._notify_channel(curs)
                    insert = conn.cursor()  # its own cursor, so only the insert's rows are read
                    if rows:
                        insert.execute(self.insert_events_statement, (rows,), prepare=True)
            except psycopg.Error:
                # A failed pipeline skips the queued COMMIT: end the aborted transaction here.
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()
                raise
            if not rows:
                return []
            return [row["notification_id"] for row in insert.fetchall()]
