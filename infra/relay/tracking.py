"""The relay's position in the log, its state and its leadership, all in PostgreSQL."""

from __future__ import annotations

import hashlib
from typing import Any

from psycopg import AsyncConnection
from psycopg.sql import SQL, Identifier

TRACKING_TABLE = "crm_relay_tracking"

CREATE_TABLE = SQL(
    "CREATE TABLE IF NOT EXISTS {} ("
    "name text PRIMARY KEY, "  # the stream published into
    "position bigint NOT NULL DEFAULT 0, "  # every event up to here is acknowledged by JetStream
    "published bigint NOT NULL DEFAULT 0, "
    "state text NOT NULL DEFAULT 'not started', "
    "error text, "
    "worker text, "
    "heartbeat_at timestamptz, "
    "updated_at timestamptz NOT NULL DEFAULT now())"
).format(Identifier(TRACKING_TABLE))


def create_relay_schema(datastore: Any) -> None:
    """Create the tracking table if missing (called by `infra.persistence.migrate`)."""
    with datastore.transaction(commit=True) as curs:
        curs.execute(CREATE_TABLE)


def lock_key(stream: str) -> int:
    """The advisory-lock key that elects the one relay publishing into `stream`."""
    digest = hashlib.blake2b(f"crm.relay.{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RelayNotInstalled(Exception):
    """The tracking table is missing: `crm migrate` has not run against this database."""

    def __init__(self) -> None:
        super().__init__(f"table {TRACKING_TABLE} is missing: run `crm migrate` first")


class Tracking:
    """Reads and moves one relay's row, on the connection that holds its advisory lock.

    Writing through the lock's own session means a relay that lost its lock (its session
    ended) cannot move the position any more: its writes fail with the session.
    """

    def __init__(self, conn: AsyncConnection[Any], name: str, worker: str) -> None:
        self.conn = conn
        self.name = name
        self.worker = worker

    async def position(self) -> int:
        """Where publishing resumes; creates the row on first use."""
        found = await self._fetch("SELECT to_regclass(%s)", (TRACKING_TABLE,))
        if found is None or found[0] is None:
            raise RelayNotInstalled()
        await self.conn.execute(
            SQL("INSERT INTO {} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING").format(
                Identifier(TRACKING_TABLE)
            ),
            (self.name,),
        )
        row = await self._fetch(
            SQL("SELECT position FROM {} WHERE name = %s").format(Identifier(TRACKING_TABLE)),
            (self.name,),
        )
        return int(row[0]) if row else 0

    async def advance(self, position: int, published: int) -> None:
        """Record that everything up to `position` is acknowledged (`published` more messages)."""
        await self.conn.execute(
            SQL(
                "UPDATE {} SET position = %s, published = published + %s, state = 'running', "
                "error = NULL, worker = %s, heartbeat_at = now(), updated_at = now() "
                "WHERE name = %s AND position <= %s"
            ).format(Identifier(TRACKING_TABLE)),
            (position, published, self.worker, self.name, position),
        )

    async def record(self, state: str, error: str | None) -> None:
        """The relay's state for `crm relay status` and /health; also its heartbeat."""
        await self.conn.execute(
            SQL(
                "UPDATE {} SET state = %s, error = %s, worker = %s, heartbeat_at = now() "
                "WHERE name = %s"
            ).format(Identifier(TRACKING_TABLE)),
            (state, error, self.worker, self.name),
        )

    async def _fetch(self, query: Any, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        cursor = await self.conn.execute(query, params)
        return await cursor.fetchone()
