"""PostgreSQL stores the HTTP API keeps beside the event log: idempotency keys and access log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.postgres import PostgresDatastore
from psycopg.types.json import Jsonb

from api.ports import AccessEntry, Reservation, StoredResponse
from domain.personal import REDACTED
from infra.users import SCHEMA as USERS
from projections.pagination import check_limit, decode_cursor, encode_cursor

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS crm_idempotency (
        username text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        status int,
        headers jsonb,
        body bytea,
        PRIMARY KEY (username, key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS crm_idempotency_created ON crm_idempotency (created_at)",
    """
    CREATE TABLE IF NOT EXISTS crm_access_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL,
        username text NOT NULL,
        role text NOT NULL,
        action text NOT NULL,
        record_kind text NOT NULL,
        record_id uuid,
        ip text,
        user_agent text,
        details jsonb NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX IF NOT EXISTS crm_access_log_record ON crm_access_log (record_id, id)",
    "CREATE INDEX IF NOT EXISTS crm_access_log_user ON crm_access_log (username, id)",
    "CREATE INDEX IF NOT EXISTS crm_access_log_at ON crm_access_log (at)",
)

logger = logging.getLogger(__name__)
MAX_WRITE_ATTEMPTS = 8  # about 13 s of retries at the default interval

# A request still "in flight" this long after it started is taken to have died with its process.
STALE_RESERVATION = timedelta(minutes=5)


def create_api_schema(datastore: PostgresDatastore) -> None:
    """Create the API's tables (idempotent; run by `crm migrate`)."""
    with datastore.transaction(commit=True) as curs:
        for statement in (USERS, *SCHEMA):
            curs.execute(statement)


@dataclass
class PostgresIdempotencyStore:
    """First responses per (user, key), kept for `retention` (24 h)."""

    datastore: PostgresDatastore
    retention: timedelta = timedelta(hours=24)

    def reserve(self, username: str, key: str, fingerprint: str) -> Reservation:
        with self.datastore.transaction(commit=True) as curs:
            # Keys older than the retention period are forgotten (every user's: the index on
            # created_at makes it cheap); a reservation abandoned by a crashed process is free.
            curs.execute(
                "DELETE FROM crm_idempotency WHERE created_at < now() - %s", (self.retention,)
            )
            curs.execute(
                "DELETE FROM crm_idempotency WHERE username = %s AND key = %s "
                "AND status IS NULL AND created_at < now() - %s",
                (username, key, STALE_RESERVATION),
            )
            curs.execute(
                "INSERT INTO crm_idempotency (username, key, fingerprint) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING key",
                (username, key, fingerprint),
            )
            if curs.fetchone() is not None:
                return Reservation("new")
            curs.execute(
                "SELECT fingerprint, status, headers, body FROM crm_idempotency "
                "WHERE username = %s AND key = %s",
                (username, key),
            )
            row = curs.fetchone()
        if row is None:  # released between our insert and select: try once more
            return self.reserve(username, key, fingerprint)
        if row["fingerprint"] != fingerprint:
            return Reservation("mismatch")
        if row["status"] is None:
            return Reservation("busy")
        return Reservation(
            "done", StoredResponse(row["status"], dict(row["headers"]), bytes(row["body"]))
        )

    def complete(self, username: str, key: str, response: StoredResponse) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE crm_idempotency SET status = %s, headers = %s, body = %s "
                "WHERE username = %s AND key = %s",
                (response.status, Jsonb(response.headers), response.body, username, key),
            )

    def release(self, username: str, key: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM crm_idempotency WHERE username = %s AND key = %s AND status IS NULL",
                (username, key),
            )


ACCESS_KEY = "access"


class PostgresAccessLog:
    """Who read which personal data, newest first.

    Reads must not wait for the log: `record` queues the entry and a writer thread inserts the
    queued entries in one transaction every `flush_interval` seconds. `query` and `close` flush
    first, so what was recorded is always what is found. An entry can be lost only if the
    process dies within `flush_interval` of the read it describes.
    """

    def __init__(self, datastore: PostgresDatastore, flush_interval: float = 0.05) -> None:
        self.datastore = datastore
        self.flush_interval = flush_interval
        self._pending: list[AccessEntry] = []
        self._lock = threading.Lock()  # guards _pending and _writer
        self._flushing = threading.Lock()  # one flush at a time keeps entries in order
        self._writer: threading.Thread | None = None

    def record(self, entry: AccessEntry) -> None:
        with self._lock:
            self._pending.append(entry)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_soon, name="access-log", daemon=True
                )
                self._writer.start()

    def _write_soon(self) -> None:
        failures = 0
        while True:
            time.sleep(self.flush_interval * 2**failures)
            try:
                self.flush()
                failures = 0
            except Exception:  # the entries stay queued; try again, backing off
                failures += 1
                logger.exception("could not write the access log (attempt %d)", failures)
                if failures < MAX_WRITE_ATTEMPTS:
                    continue
                with self._lock:
                    lost, self._pending, self._writer = len(self._pending), [], None
                logger.error("gave up writing %d access-log entries", lost)
                return
            with self._lock:
                if not self._pending:
                    self._writer = None  # idle: the next record() starts a new writer
                    return

    def flush(self) -> None:
        """Insert every queued entry now."""
        with self._flushing:
            with self._lock:
                entries, self._pending = self._pending, []
            if not entries:
                return
            try:
                with self.datastore.transaction(commit=True) as curs:
                    curs.executemany(
                        "INSERT INTO crm_access_log (at, username, role, action, record_kind, "
                        "record_id, ip, user_agent, details) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [_access_row(entry) for entry in entries],
                    )
            except Exception:
                with self._lock:
                    self._pending[:0] = entries
                raise

    def close(self) -> None:
        """Write what is queued (call before the process exits)."""
        self.flush()

    def scrub(self, values: Sequence[str]) -> int:
        """Redact the search terms that named an erased person; returns how many entries.

        A term is scrubbed when it contains one of `values`, or is a part (3 characters or
        more) of one: "zhang" searched for "Zhang Wei". Who searched, and when, stays. Stored
        idempotent answers quoting a value are forgotten too (a repeat then runs again).
        """
        self.flush()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SCRUB, (REDACTED, list(values)))
            scrubbed = curs.rowcount
            # Stored answers to be replayed (a 409 may quote the email it refused): forgotten.
            curs.execute(FORGET_ANSWERS, (list(values),))
            return scrubbed

    def query(
        self,
        *,
        username: str | None = None,
        record_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[Sequence[dict[str, Any]], str | None]:
        check_limit(limit)
        self.flush()
        where = ["true"]
        params: list[Any] = []
        for clause, value in (
            ("username = %s", username),
            ("record_id = %s", record_id),
            ("at >= %s", since),
            ("at < %s", until),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        if cursor is not None:
            where.append("id < %s")
            params.append(decode_cursor(cursor, [int], ACCESS_KEY)[0])
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT id, at, username, role, action, record_kind, record_id, ip, user_agent, "
                f"details FROM crm_access_log WHERE {' AND '.join(where)} "
                "ORDER BY id DESC LIMIT %s",
                [*params, limit + 1],
            )
            rows = list(curs.fetchall())
        page = rows[:limit]
        next_cursor = encode_cursor([page[-1]["id"]], ACCESS_KEY) if len(rows) > limit else None
        return page, next_cursor


FORGET_ANSWERS = (
    "DELETE FROM crm_idempotency WHERE body IS NOT NULL AND EXISTS (SELECT 1 FROM "
    "unnest(%s::text[]) AS v(value) WHERE position(convert_to(value, 'UTF8') in body) > 0)"
)
# A term naming a value, or part of one; numbers also compared by their digits alone, so
# "139 1234 5678" is found for "+8613912345678".
SCRUB = (
    "UPDATE crm_access_log SET details = jsonb_set(details, '{q}', to_jsonb(%s::text)) "
    "WHERE details ? 'q' AND EXISTS (SELECT 1 FROM unnest(%s::text[]) AS v(value), "
    "LATERAL (SELECT lower(details->>'q') AS q, "
    "regexp_replace(details->>'q', '\\D', '', 'g') AS dq, "
    "regexp_replace(value, '\\D', '', 'g') AS dv) AS t "
    "WHERE strpos(t.q, lower(value)) > 0 "
    "OR (length(t.q) >= 3 AND strpos(lower(value), t.q) > 0) "
    "OR (length(t.dq) >= 7 AND strpos(t.dv, t.dq) > 0) "
    "OR (length(t.dv) >= 7 AND strpos(t.dq, t.dv) > 0))"
)


def _access_row(entry: AccessEntry) -> tuple[Any, ...]:
    return (
        entry.at,
        entry.username,
        entry.role,
        entry.action,
        entry.record_kind,
        entry.record_id,
        entry.ip,
        entry.user_agent,
        Jsonb(orjson.loads(orjson.dumps(entry.details, default=str))),
    )
