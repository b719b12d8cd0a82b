"""The event log as the relay reads it: in position order, on the relay's own connection."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import StoredEvent
from psycopg import AsyncConnection
from psycopg.sql import SQL, Identifier

from domain.application import CRM
from domain.shared import event_id_for


class EventLog:
    """The recorder's `select_notifications` query, async, so the relay's loop never blocks.

    Passing over positions up to the head is safe: the event store commits in position order
    (table lock, ADR 0006), so every position at or below a head read here is committed.
    """

    def __init__(self, conn: AsyncConnection[Any], crm: CRM) -> None:
        recorder: Any = crm.recorder
        self.conn = conn
        self.table = Identifier(recorder.datastore.schema, recorder.events_table_name)
        self.channel = Identifier(recorder.channel_name)

    async def head(self) -> int:
        """The highest position in the log (0 when empty)."""
        cursor = await self.conn.execute(
            SQL("SELECT max(notification_id) FROM {}").format(self.table)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def read(self, after: int, upto: int, limit: int) -> list[tuple[int, StoredEvent]]:
        """Up to `limit` events after position `after` and at most `upto`, oldest first."""
        cursor = await self.conn.execute(
            SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {} WHERE notification_id > %s AND notification_id <= %s "
                "ORDER BY notification_id LIMIT %s"
            ).format(self.table),
            (after, upto, limit),
            prepare=True,
        )
        return [
            (int(row[0]), StoredEvent(row[1], int(row[2]), row[3], bytes(row[4])))
            for row in await cursor.fetchall()
        ]

    async def event_id_at(self, position: int) -> str | None:
        """The CloudEvents id of the event at `position`, if this log has one there."""
        cursor = await self.conn.execute(
            SQL(
                "SELECT originator_id, originator_version FROM {} WHERE notification_id = %s"
            ).format(self.table),
            (position,),
        )
        row = await cursor.fetchone()
        return None if row is None else str(event_id_for(row[0], int(row[1])))
