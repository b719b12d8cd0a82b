"""The library's PostgreSQL recorders, writing personal-data keys with the events that need
them, and the application recorder's save as one statement: lock, notify, insert."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
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

from infra.group_commit import GroupCommit, Pending
from infra.privacy.keys import KeyChanges, KeyRace, PostgresKeyStore
from infra.privacy.master import KEYS_TABLE

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
    """Saves through server-side functions that take the table lock, notify and insert, in one
    autocommit statement; concurrent saves are written together (group commit).

    The library either waits for the insert's result before sending COMMIT (so the table lock
    is held across two client round trips and, with many writer threads, across however long
    the writing thread waits for the GIL) or, with POSTGRES_ENABLE_DB_FUNCTIONS, skips the lock
    (so a reader can pass over a position that commits later). Here one autocommit statement
    does all of it under the lock, which is released at its commit; the guarantee that readers
    never skip is unchanged. See docs/adr/0006-one-round-trip-per-save.md.

    Saves that arrive while one is in flight are gathered (`infra/group_commit.py`) and written
    by `crm_group_commit` in one transaction: the new personal-data keys of all of them, one
    lock, one NOTIFY, one multi-row insert. A save whose versions clash, or whose new key lost
    a race, fails alone: its events and keys are left out and its caller gets the library's
    `IntegrityError`, while its batch-mates commit (docs/adr/0014-group-commit.md). A save that
    erases keys goes alone through `crm_insert_events_locked`, with the keys written first.
    """

    FUNCTION = "crm_insert_events_locked"
    GROUP_FUNCTION = "crm_group_commit"
    group_commit = True  # the factory turns it off when GROUP_COMMIT=n

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        function = Identifier(self.FUNCTION)
        names = {
            "schema": schema,
            "lock_timeout": SQL(str(self.datastore.lock_timeout)),
            "table": Identifier(self.events_table_name),
            "channel": Identifier(self.channel_name),
            "keys": Identifier(KEYS_TABLE),
        }
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
            ).format(function=function, event=Identifier(self.stored_event_type_name), **names)
        )
        self.sql_create_statements.append(
            SQL(GROUP_COMMIT_FUNCTION).format(function=Identifier(self.GROUP_FUNCTION), **names)
        )
        self.insert_locked_statement = SQL("SELECT * FROM {}.{}(%s)").format(schema, function)
        self.group_commit_statement = SQL(
            "SELECT * FROM {}.{}(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[], %s::int[], "
            "%s::uuid[], %s::uuid[], %s::bytea[], %s::int[], %s::bool[])"
        ).format(schema, Identifier(self.GROUP_FUNCTION))
        self._group: GroupCommit[_Save, list[int]] = GroupCommit(self._write_batch)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        changes = self.keys.take_pending() if self.keys is not None else KeyChanges()
        result: Sequence[int] | None
        if changes.erased or not self.group_commit:
            self._taken.changes = changes
            try:
                result = self._insert_one_trip(stored_events)
            finally:
                self._taken.changes = None
        else:
            result = self._group.save(_Save(stored_events, changes), len(stored_events))
        if self.keys is not None:
            self.keys.confirm(changes)
        return result

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _insert_one_trip(self, stored_events: Sequence[StoredEvent]) -> Sequence[int] | None:
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

    def _write_batch(self, batch: Sequence[Pending[_Save, list[int]]]) -> None:
        """Write the batch in one statement; each save learns its positions or its error."""
        try:
            clashed, raced, ids = self._group_commit([p.item for p in batch])
        except (InterfaceError, OperationalError):
            raise  # the retries are spent: a fault of the connection, not of one save
        except Exception:
            if len(batch) == 1:
                raise
            for pending in batch:  # something in one save the server refused: find which
                try:
                    self._write_batch([pending])
                except Exception as error:
                    pending.fail(error)
            return
        positions = iter(ids)
        for index, pending in enumerate(batch):
            if index in clashed:
                pending.fail(IntegrityError("a version clash: the record changed meanwhile"))
            elif index in raced:
                if self.keys is not None:
                    self.keys.raced(pending.item.keys.created)
                pending.fail(KeyRace("a new personal-data key was taken or erased meanwhile"))
            else:
                pending.succeed([next(positions) for _ in pending.item.events])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _group_commit(self, saves: Sequence[_Save]) -> tuple[set[int], set[int], list[int]]:
        """(clashed saves, raced saves, positions of the others' events in order).

        The columns go as array literals: psycopg's adaptation of Python lists costs more CPU
        than the rest of the statement, and every command waits for it under the GIL.
        """
        columns: tuple[list[str], ...] = ([], [], [], [], [])
        keys: tuple[list[str], ...] = ([], [], [], [], [])
        for index, save in enumerate(saves):
            originators = set()
            for e in save.events:
                columns[0].append(str(e.originator_id))
                columns[1].append(str(e.originator_version))
                columns[2].append(_quoted(e.topic))
                columns[3].append(_bytea(e.state))
                columns[4].append(str(index))
                originators.add(e.originator_id)
            for record_id, (subject_id, _, wrapped) in save.keys.created.items():
                keys[0].append(str(record_id))
                keys[1].append(str(subject_id))
                keys[2].append(_bytea(wrapped))
                keys[3].append(str(index))
                keys[4].append("t" if record_id in originators else "f")
        params = ["{" + ",".join(column) + "}" for column in (*columns, *keys)]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.group_commit_statement, params, prepare=True)
            row = curs.fetchone()
        assert row is not None
        return set(row["clashed"]), set(row["raced"]), sorted(row["positions"])


def _quoted(text: str) -> str:
    """`text` as an element of a PostgreSQL array literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bytea(data: bytes) -> str:
    """`data` as a bytea element (hex format) of a PostgreSQL array literal."""
    return '"\\\\x' + data.hex() + '"'


@dataclass(frozen=True)
class _Save:
    """One caller's events and the key changes its mapper made for them."""

    events: Sequence[StoredEvent]
    keys: KeyChanges


# The saves' new keys first (share-locking their subjects, as infra/privacy/statements.py
# does, so an erasure waits for them or they see it), then the lock, NOTIFY and one insert of
# every event. Only when that insert clashes are the saves inserted one by one, each in its
# own subtransaction, to find which clashed. The keys this call inserted for a save left out
# are deleted again (never keys already there: after a lost reply, the retry finds its own
# committed events clashing, and their keys must stay).
GROUP_COMMIT_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.{function}(
    ids uuid[], versions bigint[], topics text[], states bytea[], saves int[],
    key_records uuid[], key_subjects uuid[], key_wrapped bytea[], key_saves int[],
    key_checked bool[],
    OUT clashed int[], OUT raced int[], OUT positions bigint[]
) LANGUAGE plpgsql AS $BODY$
DECLARE
    save int;
    more bigint[];
    ours uuid[] := '{{}}';  -- the key rows this call inserted (a retry after a lost reply: none)
BEGIN
    clashed := '{{}}';
    raced := '{{}}';
    SET LOCAL lock_timeout = '{lock_timeout}s';
    IF cardinality(key_records) > 0 THEN
        PERFORM 1 FROM {keys} WHERE record_id = ANY(key_subjects) ORDER BY record_id FOR SHARE;
        WITH inserted AS (
            INSERT INTO {keys} (record_id, data_subject_id, wrapped_key)
                SELECT r, s, w FROM unnest(key_records, key_subjects, key_wrapped, key_saves)
                    AS k(r, s, w, g)
                WHERE NOT EXISTS (
                    SELECT 1 FROM {keys} e
                    WHERE e.record_id = k.s AND k.s <> k.r AND e.wrapped_key IS NULL
                )
                ORDER BY r, g  -- the oldest save's key wins a tie
                ON CONFLICT (record_id) DO NOTHING
                RETURNING record_id
        )
        SELECT coalesce(array_agg(record_id), '{{}}') INTO ours FROM inserted;
        SELECT coalesce(array_agg(DISTINCT k.g), '{{}}') INTO raced
            FROM unnest(key_records, key_wrapped, key_saves, key_checked) AS k(r, w, g, c)
            LEFT JOIN {keys} AS p ON p.record_id = k.r
            WHERE k.c AND p.wrapped_key IS DISTINCT FROM k.w;
    END IF;
    LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;
    NOTIFY {channel};
    BEGIN
        WITH inserted AS (
            INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)
            SELECT i, v, t, s FROM unnest(ids, versions, topics, states, saves)
                WITH ORDINALITY AS e(i, v, t, s, g, o)
            WHERE g <> ALL(raced) ORDER BY o
            RETURNING notification_id
        )
        SELECT coalesce(array_agg(notification_id), '{{}}') INTO positions FROM inserted;
    EXCEPTION WHEN unique_violation THEN
        positions := '{{}}';
        FOR save IN SELECT DISTINCT g FROM unnest(saves) AS g WHERE g <> ALL(raced) ORDER BY g
        LOOP
            BEGIN
                WITH inserted AS (
                    INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)
                    SELECT i, v, t, s FROM unnest(ids, versions, topics, states, saves)
                        WITH ORDINALITY AS e(i, v, t, s, g, o)
                    WHERE g = save ORDER BY o
                    RETURNING notification_id
                )
                SELECT coalesce(array_agg(notification_id), '{{}}') INTO more FROM inserted;
                positions := positions || more;
            EXCEPTION WHEN unique_violation THEN
                clashed := clashed || save;
            END;
        END LOOP;
    END;
    IF cardinality(clashed) + cardinality(raced) > 0 AND cardinality(ours) > 0 THEN
        DELETE FROM {keys} AS p
            USING unnest(key_records, key_wrapped, key_saves) AS k(r, w, g)
            WHERE p.record_id = k.r AND p.wrapped_key = k.w AND k.g = ANY(clashed || raced)
            AND p.record_id = ANY(ours);
    END IF;
END;
$BODY$
"""
