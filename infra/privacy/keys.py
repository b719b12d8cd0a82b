"""Per-record data keys for personal data, wrapped by the master key (envelope encryption).

Every record (customer, lead, ticket, task, claim) whose events hold personal data has its own
AES-256 key, stored wrapped by the master key in `crm_personal_keys` with the data subject the
record is about. Erasing a subject sets the wrapped keys of its records to NULL: every copy of
the data encrypted under them, in the log and in backups of it, is unreadable from then on.

A key is created by the mapper while it encodes the record's first personal value, and written
by the recorder in the transaction that inserts the event (`take_pending` / `confirm`), so a
stored ciphertext never lacks its key. Erasures travel the same way with the erasure event.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow

from infra.settings import Settings

KEYS_TABLE = "crm_personal_keys"
CHECK_TABLE = "crm_master_key_check"
NONCE = 12
CACHE_SECONDS = 5.0  # how long another process may still read a key after it is destroyed
PRELOAD_AFTER_MISSES = 256  # a reader that misses this often (a rebuild) loads every key

SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (
        record_id uuid PRIMARY KEY,
        data_subject_id uuid NOT NULL,
        wrapped_key bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        erased_at timestamptz
    )
    """,
    f"CREATE INDEX IF NOT EXISTS {KEYS_TABLE}_subject ON {KEYS_TABLE} (data_subject_id)",
    f"""
    CREATE TABLE IF NOT EXISTS {CHECK_TABLE} (
        id int PRIMARY KEY CHECK (id = 1),
        fingerprint text NOT NULL,
        probe bytea NOT NULL
    )
    """,
)
PROBE = b"crm master key check"
CHECK_ID = UUID(int=0)


class MasterKeyMismatch(RuntimeError):
    """The configured master key is not the one the database's keys are wrapped with."""


@dataclass(frozen=True)
class MasterKey:
    """The key-encryption key, from settings (base64 of 32 bytes)."""

    secret: bytes = field(repr=False)

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        try:
            secret = base64.b64decode(text.strip(), validate=True)
        except ValueError as error:
            raise ValueError("the master key must be base64") from error
        if len(secret) != 32:
            raise ValueError(f"the master key must be 32 bytes, got {len(secret)}")
        return cls(secret)

    @staticmethod
    def generate_text() -> str:
        return base64.b64encode(os.urandom(32)).decode()

    @property
    def fingerprint(self) -> str:
        """Names the key without revealing it (for error messages and the check row)."""
        return hashlib.sha256(b"crm-master-key:" + self.secret).hexdigest()[:16]

    def wrap(self, record_id: UUID, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self.secret).encrypt(nonce, data_key, record_id.bytes)

    def unwrap(self, record_id: UUID, wrapped: bytes) -> bytes:
        try:
            return AESGCM(self.secret).decrypt(wrapped[:NONCE], wrapped[NONCE:], record_id.bytes)
        except InvalidTag as error:
            raise MasterKeyMismatch(
                f"the key of record {record_id} is not wrapped by master key {self.fingerprint}"
            ) from error


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

    def key_for_writing(self, record_id: UUID, data_subject_id: UUID) -> bytes | None: ...
    def key_for_reading(self, record_id: UUID) -> bytes | None: ...
    def erase(self, subjects: Sequence[UUID]) -> None: ...


class PendingKeys:
    """Per-thread key changes the mapper made that the next insert of this thread writes."""

    def __init__(self) -> None:
        self._local = threading.local()

    def changes(self) -> KeyChanges:
        changes: KeyChanges | None = getattr(self._local, "changes", None)
        if changes is None:
            changes = self._local.changes = KeyChanges()
        return changes

    def take(self) -> KeyChanges:
        changes = self.changes()
        self._local.changes = KeyChanges()
        return changes


@dataclass
class _Cached:
    key: bytes | None  # None: destroyed, for good
    data_subject_id: UUID
    at: float


class PostgresKeyStore:
    """Keys in PostgreSQL, cached briefly; new keys and erasures wait for the recorder."""

    def __init__(self, datastore: PostgresDatastore, master: MasterKey) -> None:
        self.datastore = datastore
        self.master = master
        self.pending = PendingKeys()
        self._cache: dict[UUID, _Cached] = {}
        self._lock = threading.Lock()
        self._misses = 0
        self._preloaded = False

    # --- the mapper's side -------------------------------------------------------------------

    def key_for_writing(self, record_id: UUID, data_subject_id: UUID) -> bytes | None:
        """The record's key (None if destroyed); a new one joins this thread's next insert."""
        changes = self.pending.changes()
        if record_id in changes.created:
            return changes.created[record_id][1]
        found = self._lookup(record_id)
        if found is not None:
            return found.key
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
        self.pending.changes().erased.extend(subjects)

    # --- the recorder's side ------------------------------------------------------------------

    def take_pending(self) -> KeyChanges:
        return self.pending.take()

    def confirm(self, changes: KeyChanges) -> None:
        """The transaction that wrote `changes` committed: cache new keys, forget erased ones."""
        now = time.monotonic()
        with self._lock:
            for record_id, (subject_id, data_key, _) in changes.created.items():
                self._cache[record_id] = _Cached(data_key, subject_id, now)
            if changes.erased:
                erased = set(changes.erased)
                for record_id, entry in list(self._cache.items()):
                    if record_id in erased or entry.data_subject_id in erased:
                        self._cache[record_id] = _Cached(None, entry.data_subject_id, now)
                for record_id in erased:
                    self._cache.setdefault(record_id, _Cached(None, record_id, now))

    def write(
        self, curs: Cursor[DictRow], changes: KeyChanges, originators: Iterable[UUID]
    ) -> None:
        """Write `changes` in the caller's transaction (see `write_statements`)."""
        for statement, params in write_statements(changes, self.snapshots_table):
            curs.execute(statement, params)
        used = [r for r in set(originators) if r in changes.created]
        if used:
            curs.execute(KEY_RACE, (used, [changes.created[r][2] for r in used]))
            if curs.fetchone() is not None:
                raise KeyRace(f"a key for one of {used} was created concurrently")

    snapshots_table = "crm_snapshots"

    # --- lookups ------------------------------------------------------------------------------

    def _lookup(self, record_id: UUID) -> _Cached | None:
        now = time.monotonic()
        entry = self._cache.get(record_id)
        if entry is not None and (entry.key is None or now - entry.at < CACHE_SECONDS):
            return entry
        self._misses += 1
        if self._misses > PRELOAD_AFTER_MISSES and (not self._preloaded or entry is not None):
            self.preload()
            return self._cache.get(record_id)
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                f"SELECT data_subject_id, wrapped_key FROM {KEYS_TABLE} WHERE record_id = %s",
                (record_id,),
            ).fetchone()
        if row is None:
            self._cache.pop(record_id, None)
            return None
        return self._remember(record_id, row, now)

    def preload(self) -> None:
        """Load every key at once (a rebuild reads most records)."""
        now = time.monotonic()
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT record_id, data_subject_id, wrapped_key FROM {KEYS_TABLE}"
            ).fetchall()
        for row in rows:
            self._remember(row["record_id"], row, now)
        self._preloaded = True
        self._misses = 0

    def _remember(self, record_id: UUID, row: Any, now: float) -> _Cached:
        wrapped = row["wrapped_key"]
        key = None if wrapped is None else self.master.unwrap(record_id, bytes(wrapped))
        entry = _Cached(key, row["data_subject_id"], now)
        with self._lock:
            self._cache[record_id] = entry
        return entry


KEY_RACE = (
    f"SELECT 1 FROM {KEYS_TABLE} AS p JOIN unnest(%s::uuid[], %s::bytea[]) AS k(r, w) "
    "ON p.record_id = k.r WHERE p.wrapped_key IS DISTINCT FROM k.w LIMIT 1"
)


class KeyRace(IntegrityError):
    """Another writer created the record's key first; the command is retried with theirs."""


def write_statements(
    changes: KeyChanges, snapshots_table: str
) -> list[tuple[str, tuple[Any, ...]]]:
    """SQL that creates the new key rows and destroys the erased subjects' keys.

    (A key row created meanwhile by another writer for a record the events belong to would
    leave our ciphertext under a key nobody keeps: `write` then fails like any lost race.)
    Erasure leaves a row with no key for each erased id, so no key is ever made for it again,
    and deletes the erased records' snapshots (encrypted under the destroyed keys anyway).
    """
    statements: list[tuple[str, tuple[Any, ...]]] = []
    if changes.created:
        records = list(changes.created)
        subjects = [changes.created[r][0] for r in records]
        wrapped = [changes.created[r][2] for r in records]
        statements.append(
            (
                f"INSERT INTO {KEYS_TABLE} (record_id, data_subject_id, wrapped_key) "
                "SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::bytea[]) "
                "ON CONFLICT (record_id) DO NOTHING",
                (records, subjects, wrapped),
            )
        )
    if changes.erased:
        erased = list(dict.fromkeys(changes.erased))
        statements.append(
            (
                f"UPDATE {KEYS_TABLE} SET wrapped_key = NULL, erased_at = now() "
                "WHERE (record_id = ANY(%s) OR data_subject_id = ANY(%s)) "
                "AND wrapped_key IS NOT NULL",
                (erased, erased),
            )
        )
        statements.append(
            (
                f"INSERT INTO {KEYS_TABLE} (record_id, data_subject_id, wrapped_key, erased_at) "
                "SELECT s, s, NULL, now() FROM unnest(%s::uuid[]) AS s "
                "ON CONFLICT (record_id) DO NOTHING",
                (erased,),
            )
        )
        statements.append(
            (f"DELETE FROM {snapshots_table} WHERE originator_id = ANY(%s)", (erased,))
        )
    return statements


class InMemoryKeyStore:
    """Keys in a dict, for the in-memory (POPO) event store of fast tests: no transactions, so
    new keys and erasures take effect at once."""

    def __init__(self) -> None:
        self._keys: dict[UUID, tuple[UUID, bytes | None]] = {}

    def key_for_writing(self, record_id: UUID, data_subject_id: UUID) -> bytes | None:
        if record_id not in self._keys:
            self._keys[record_id] = (data_subject_id, AESGCM.generate_key(bit_length=256))
        return self._keys[record_id][1]

    def key_for_reading(self, record_id: UUID) -> bytes | None:
        return self._keys.get(record_id, (record_id, None))[1]

    def erase(self, subjects: Sequence[UUID]) -> None:
        erased = set(subjects)
        for record_id, (subject_id, _) in list(self._keys.items()):
            if record_id in erased or subject_id in erased:
                self._keys[record_id] = (subject_id, None)
        for record_id in erased:
            self._keys.setdefault(record_id, (record_id, None))


def master_key_text(settings: Settings) -> str:
    """The configured master key, or one generated once and kept in the data directory.

    Keep a copy of a generated key apart from the database's backups: without it no personal
    data can be read, and with it anyone holding a backup can read everything not yet erased.
    """
    if settings.master_key:
        return settings.master_key.get_secret_value()
    path = settings.data_dir / "master-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(MasterKey.generate_text())
    return path.read_text().strip()


def create_privacy_schema(datastore: PostgresDatastore) -> None:
    """The keys table and the master key check (part of `crm migrate`)."""
    with datastore.get_connection() as conn:
        for statement in SCHEMA:
            conn.execute(statement)


def verify_master_key(datastore: PostgresDatastore, master: MasterKey) -> None:
    """Fail at start-up, not with garbage later, when the master key is not the database's.

    The first process to run records a probe sealed by its master key; any later process must
    open it. Before `crm migrate` has created the table there is nothing to check.
    """
    with datastore.get_connection() as conn:
        exists = conn.execute("SELECT to_regclass(%s) AS t", (CHECK_TABLE,)).fetchone()
        if exists is None or exists["t"] is None:
            return
        conn.execute(
            f"INSERT INTO {CHECK_TABLE} (id, fingerprint, probe) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            (master.fingerprint, master.wrap(CHECK_ID, PROBE)),
        )
        row = conn.execute(f"SELECT fingerprint, probe FROM {CHECK_TABLE}").fetchone()
    assert row is not None
    try:
        opened = master.unwrap(CHECK_ID, bytes(row["probe"]))
    except MasterKeyMismatch:
        opened = b""
    if opened != PROBE:
        raise MasterKeyMismatch(
            f"the master key {master.fingerprint} is not the one this database's personal data "
            f"keys are wrapped with ({row['fingerprint']}): set CRM_MASTER_KEY to that key. "
            "Without it no personal data can be read (see docs/privacy.md)"
        )
