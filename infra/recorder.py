"""The library's PostgreSQL recorders, writing personal-data keys with the events that need
them, and the application recorder's save as one statement: lock, notify, insert."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresProcessRecorder,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from infra.privacy.keys import KeyChanges, PostgresKeyStore

T = TypeVar("T")


class KeyWriting:
    """Writes the key changes the mapper made for these events in the events' transaction.

    The factory sets `keys`. `insert_events` takes this thread's pending changes, and caches the
    new keys only once the insert returned; `_insert_stored_events` (also called directly by the
    saga timers) writes them before the events, so even an autocommit insert (snapshots) never
    stores a ciphertext whose key is not stored yet.
    """

    keys: PostgresKeyStore | None = None

    @property
    def _taken(self) -> threading.local:
        """This recorder's per-thread changes taken for the insert in progress."""
        taken: threading.local | None = self.__dict__.get("_taken_local")
        if taken is None:
            taken = self.__dict__.setdefault("_taken_local", threading.local())
        return taken

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        parent: Any = super()
        return self.with_keys(lambda: parent.insert_events(stored_events, **kwargs))

    def with_keys(self, insert: Callable[[], T]) -> T:
        """Run `insert` with this thread's pending key changes; cache them once it returned."""
        if self.keys is None:
            return insert()
        changes = self._taken.changes = self.keys.take_pending()
        try:
            result = insert()
        finally:
            self._taken.changes = None
        self.keys.confirm(changes)
        return result

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self.write_keys(curs, stored_events)
        super()._insert_stored_events(curs, stored_events, **kwargs)  # type: ignore[misc]

    def write_keys(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        changes = self.key_changes()
        if changes and self.keys is not None:
            self.keys.write(curs, changes, (e.originator_id for e in stored_events))  # type: ignore[misc]

    def key_changes(self) -> KeyChanges:
        changes: KeyChanges | None = getattr(self._taken, "changes", None)
        if changes is None and self.keys is not None:  # called outside insert_events
            changes = self.keys.take_pending()
        return changes or KeyChanges()


class KeyedAggregateRecorder(KeyWriting, PostgresAggregateRecorder):
    """The snapshots' recorder."""


class KeyedProcessRecorder(KeyWriting, PostgresProcessRecorder):
    """A process recorder (the sagas') on the CRM's events table."""


class OneTripApplicationRecorder(KeyWriting, PostgresApplicationRecorder):
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

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        result: Sequence[int] | None = self.with_keys(lambda: self._insert_one_trip(stored_events))
        return result

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_one_trip(self, stored_events: Sequence[StoredEvent]) -> Sequence[int] | None:
        if not stored_events:
            return []
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        changes = self.key_changes()
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            if not changes:
                curs.execute(self.insert_locked_statement, (rows,), prepare=True)
                return [row[self.FUNCTION] for row in curs.fetchall()]
            with conn.transaction():  # the keys commit with the events, or neither does
                self.write_keys(curs, stored_events)
                curs.execute(self.insert_locked_statement, (rows,), prepare=True)
                return [row[self.FUNCTION] for row in curs.fetchall()]
