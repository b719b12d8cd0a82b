"""The master key: wraps every record's data key; checked against the database at start-up."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.postgres import PostgresDatastore

from infra.settings import Settings

NONCE = 12
CHECK_TABLE = "crm_master_key_check"
KEYS_TABLE = "crm_personal_keys"
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


def verify_master_key(datastore: PostgresDatastore, master: MasterKey) -> None:
    """Fail at start-up, not with garbage later, when the master key is not the database's.

    `crm migrate` (or the first process, on a database migrated before the check existed)
    records a probe sealed by the master key; every process must open it, and must unwrap one
    of the stored data keys too (a restored keys table without its check row is caught).
    Before `crm migrate` has created the tables there is nothing to check.
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
        check = conn.execute(f"SELECT fingerprint, probe FROM {CHECK_TABLE}").fetchone()
        sample = conn.execute(
            f"SELECT record_id, wrapped_key FROM {KEYS_TABLE} WHERE wrapped_key IS NOT NULL LIMIT 1"
        ).fetchone()
    assert check is not None
    try:
        opened = master.unwrap(CHECK_ID, bytes(check["probe"]))
        if sample is not None:
            master.unwrap(sample["record_id"], bytes(sample["wrapped_key"]))
    except MasterKeyMismatch:
        opened = b""
    if opened != PROBE:
        raise MasterKeyMismatch(
            f"the master key {master.fingerprint} is not the one this database's personal data "
            f"keys are wrapped with ({check['fingerprint']}): set CRM_MASTER_KEY to that key. "
            "Without it no personal data can be read (see docs/privacy.md)"
        )
