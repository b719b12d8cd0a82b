"""Per-record data keys for personal data, wrapped by the master key (envelope encryption).

Every record (customer, lead, ticket, task, claim) whose events hold personal data has its own
AES-256 key, stored wrapped by the master key in `crm_personal_keys` with the data subject the
record is about. Erasing a subject sets the wrapped keys of its records to NULL: every copy of
the data encrypted under them, in the log and in backups of it, is unreadable from then on.

A key is created by the mapper while it encodes the record's first personal value, and written
by the recorder in the transaction that inserts the event (`take_pending` / `confirm`), so a
stored ciphertext never lacks its key. Erasures travel the same way with the erasure event
(infra/privacy/statements.py holds the SQL).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow

from infra.privacy.master import NONCE, MasterKey
from infra.privacy.statements import (
    ERASURES_SINCE,
    KEY_OF,
    KEY_RACE,
    KEYS,
    SCHEMA,
    write_statements,
)

# Keys never change, they are only destroyed: a cached key stays until an erasure is seen.
# Erasures made by other processes are looked up at most this often, so another process may
# read a destroyed key for up to this long; erasures made by this process apply at once.
ERASURE_POLL_SECONDS = 1.0
CACHE_LIMIT = 200_000  # keys held in memory (about 40 MB); beyond, the cache starts over
PRELOAD_AFTER_MISSES = 256  # a reader that misses this often (a rebuild) loads the keys once


def seal(data_key: bytes, record_id: UUID, plaintext: bytes) -> bytes:
    """AES-GCM under a record's data key, bound to the record (a value cannot be moved)."""
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(data_key).encrypt(nonce, plaintext, record_id.bytes)


def unseal(data_key: bytes, record_id: UUID, sealed: bytes) -> bytes:
    return AESGCM(data_key).decrypt(sealed[:NONCE], sealed[NONCE:], record_id.bytes)


@dataclass
class KeyChanges:
    """Key rows to create and subjects to erase, written with the events that need them."""

    created: dict[UUID, tuple[UUID, bytes, bytes]] = field(default_factory=dict)
    erased: list[UUID] = field(default_factory=list)  # record or data subject ids

    def __bool__(self) -> bool:
        return bool(self.created or self.erased)


class KeyStore(Protocol):
    """What the mapper needs: a record's key to write with, to read with; erasures."""

    def key_for_writing(
        self, record_id: UUID, data_subject_id: UUID, *, new_record: bool = False
    ) -> bytes | None: ...
    def key_for_reading(self, record_id: UUID) -> bytes | None: ...
    def erase(self, subjects: Sequence[UUID]) -> None: ...
    def discard_pending(self) -> None: ...


class KeyRace(IntegrityError):
    """Another writer created the record's key first, or erased its subject meanwhile: the
    command is retried, and then uses their key (or records the values as erased)."""


@dataclass
class _Cached:
    key: bytes | None  # None: destroyed, for good
    data_subject_id: UUID


class PostgresKeyStore:
    """Keys in PostgreSQL, cached until erased; new keys and erasures wait for the recorder."""

    def __init__(self, datastore: PostgresDatastore, master: MasterKey) -> None:
        self.datastore = datastore
        self.master = master
        self.snapshots_table = "crm_snapshots"
        self._pending = threading.local()
        self._cache: dict[UUID, _Cached] = {}
        self._lock = threading.Lock()
        self._misses = 0
        self._raced: set[UUID] = set()  # new records whose key turned out to exist
        self._preloaded = False
        self._polled_at = -math.inf  # the first lookup polls, before anything is cached
        self._erasures_seen: datetime | None = None  # by the database's clock

    # --- the mapper's side -------------------------------------------------------------------

    def key_for_writing(
        self, record_id: UUID, data_subject_id: UUID, *, new_record: bool = False
    ) -> bytes | None:
        """The record's key; None if it was destroyed or its subject was erased (the values are
        then recorded as erased). A new key joins this thread's next insert.

        For a `new_record` (its first event) the database is not asked: no key can exist yet.
        Should one exist all the same (the id was taken), the insert reports a key race, and
        from then on that record's key is looked up."""
        changes = self.pending()
        if record_id in changes.created:
            return changes.created[record_id][1]
        if new_record and record_id not in self._raced:
            found = self._cached(record_id)
        else:
            found = self._lookup(record_id)
        if found is not None:
            return found.key
        if data_subject_id != record_id:
            subject = self._lookup(data_subject_id)
            if subject is not None and subject.key is None:
                return None  # nothing new is kept about an erased person
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = self.master.wrap(record_id, data_key)
        changes.created[record_id] = (data_subject_id, data_key, wrapped)
        return data_key

    def key_for_reading(self, record_id: UUID) -> bytes | None:
        """The record's key; None when it was destroyed (or never existed)."""
        found = self._lookup(record_id)
        return None if found is None else found.key

    def erase(self, subjects: Sequence[UUID]) -> None:
        """Destroy the keys of these subjects' records with this thread's next insert."""
        self.pending().erased.extend(subjects)

    def discard_pending(self) -> None:
        """Forget this thread's unsaved changes (a save starts, or failed before inserting)."""
        self._pending.changes = KeyChanges()

    # --- the recorder's side ------------------------------------------------------------------

    def pending(self) -> KeyChanges:
        changes: KeyChanges | None = getattr(self._pending, "changes", None)
        if changes is None:
            changes = self._pending.changes = KeyChanges()
        return changes

    def take_pending(self) -> KeyChanges:
        changes = self.pending()
        self._pending.changes = KeyChanges()
        return changes

    def write(
        self, curs: Cursor[DictRow], changes: KeyChanges, originators: Iterable[UUID]
    ) -> None:
        """Write `changes` in the caller's transaction; KeyRace when a new key of one of
        these events' records could not be stored as ours."""
        for statement, params in write_statements(changes, self.snapshots_table):
            curs.execute(statement, params)
        used = [r for r in set(originators) if r in changes.created]
        if used:
            curs.execute(KEY_RACE, (used, [changes.created[r][2] for r in used]))
            if curs.fetchone() is not None:
                self.raced(used)
                raise KeyRace(f"the key of one of {used} was taken or erased meanwhile")

    def raced(self, records: Iterable[UUID]) -> None:
        """New keys of these records were not stored as ours: look their keys up from now on,
        and learn of an erasure before the command is retried."""
        with self._lock:
            if len(self._raced) > CACHE_LIMIT:
                self._raced.clear()
            self._raced.update(records)
        self._polled_at = -math.inf

    def confirm(self, changes: KeyChanges) -> None:
        """The transaction that wrote `changes` committed: cache new keys, forget erased ones."""
        with self._lock:
            for record_id, (subject_id, data_key, _) in changes.created.items():
                self._cache[record_id] = _Cached(data_key, subject_id)
            if changes.erased:
                erased = set(changes.erased)
                for record_id, entry in list(self._cache.items()):
                    if record_id in erased or entry.data_subject_id in erased:
                        entry.key = None
                for record_id in erased:
                    self._cache.setdefault(record_id, _Cached(None, record_id))

    # --- lookups ------------------------------------------------------------------------------

    def _cached(self, record_id: UUID) -> _Cached | None:
        if time.monotonic() - self._polled_at >= ERASURE_POLL_SECONDS:
            self.poll_erasures()
        return self._cache.get(record_id)

    def _lookup(self, record_id: UUID) -> _Cached | None:
        entry = self._cached(record_id)
        if entry is not None:
            return entry
        self._misses += 1
        if self._misses > PRELOAD_AFTER_MISSES and not self._preloaded:
            self.preload()
            return self._cache.get(record_id)
        with self.datastore.get_connection() as conn:
            row = conn.execute(KEY_OF, (record_id,)).fetchone()
        return None if row is None else self._remember(record_id, row)

    def poll_erasures(self) -> None:
        """Forget the keys destroyed (by any process) since the last look."""
        self._polled_at = time.monotonic()
        with self.datastore.get_connection() as conn:
            row = conn.execute(ERASURES_SINCE, (self._erasures_seen,)).fetchone()
        assert row is not None
        if self._erasures_seen is not None and row["ids"]:
            with self._lock:
                for record_id in row["ids"]:
                    entry = self._cache.get(record_id)
                    if entry is not None:
                        entry.key = None
        self._erasures_seen = row["now"]

    def preload(self) -> None:
        """Load the keys at once (a rebuild reads most records), as many as the cache holds."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT record_id, data_subject_id, wrapped_key FROM {KEYS} LIMIT %s",
                (CACHE_LIMIT,),
            ).fetchall()
        for row in rows:
            self._remember(row["record_id"], row)
        self._preloaded = True

    def _remember(self, record_id: UUID, row: Any) -> _Cached:
        wrapped = row["wrapped_key"]
        key = None if wrapped is None else self.master.unwrap(record_id, bytes(wrapped))
        entry = _Cached(key, row["data_subject_id"])
        with self._lock:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[record_id] = entry
        return entry


def create_privacy_schema(datastore: PostgresDatastore) -> None:
    """The keys table and the master key check (part of `crm migrate`)."""
    with datastore.get_connection() as conn:
        for statement in SCHEMA:
            conn.execute(statement)


class InMemoryKeyStore:
    """Keys in a dict, for the in-memory (POPO) event store of fast tests: no transactions, so
    new keys, links and erasures take effect at once."""

    def __init__(self) -> None:
        self._keys: dict[UUID, tuple[UUID, bytes | None]] = {}

    def key_for_writing(
        self, record_id: UUID, data_subject_id: UUID, *, new_record: bool = False
    ) -> bytes | None:
        if record_id not in self._keys:
            subject = self._keys.get(data_subject_id)
            if data_subject_id != record_id and subject is not None and subject[1] is None:
                return None
            self._keys[record_id] = (data_subject_id, AESGCM.generate_key(bit_length=256))
        return self._keys[record_id][1]

    def key_for_reading(self, record_id: UUID) -> bytes | None:
        return self._keys.get(record_id, (record_id, None))[1]

    def erase(self, subjects: Sequence[UUID]) -> None:
        erased = set(subjects)
        reached = erased | {r for r, (s, _) in self._keys.items() if s in erased}
        for record_id in reached:
            subject_id = self._keys.get(record_id, (record_id, None))[0]
            self._keys[record_id] = (subject_id, None)

    def discard_pending(self) -> None:
        pass
