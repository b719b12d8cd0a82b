"""The library's PostgreSQL recorder, with each save one statement: lock, notify, insert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier


class OneTripApplicationRecorder(PostgresApplicationRecorder):
    """Saves through a server-side function that takes the table lock, notifies and inserts.

    The library either waits for the insert's result before sending COMMIT (so the table lock
    is held across two client round trips and, with many writer threads, across however long
    the writing thread waits for the GIL) or, with POSTGRES_ENABLE_DB_FUNCTIONS, skips the lock
    (so a reader can pass over a position that commits later). Here one autocommit statement
    does all three under the lock, which is released at its commit; the guarantee that readers
    never skip is unchanged. See docs/adr/0006-one-round-trip-per-save.md.
    """

    FUNCTION = "crm_insert_events_locked"

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        function = Identifier(self.FUNCTION)
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
                "SET LOCAL lock_timeout = '{lock_timeout}s'; "
                "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY INSERT INTO {schema}.{table} "
                "(originator_id, originator_version, topic, state) "
                "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(
                schema=schema,
                function=function,
                event=Identifier(self.stored_event_type_name),
                lock_timeout=self.datastore.lock_timeout,
                table=Identifier(self.events_table_name),
                channel=Identifier(self.channel_name),
            )
        )
        self.insert_locked_statement = SQL("SELECT * FROM {}.{}(%s)").format(schema, function)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.insert_locked_statement, (rows,), prepare=True)
            return [row[self.FUNCTION] for row in curs.fetchall()]
