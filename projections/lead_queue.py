"""Lead queue: leads by status, owner, score and age (unassigned first), and speed-to-lead."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Literal

from domain.customer import CustomerErased
from domain.lead import (
    LeadActivityLogged,
    LeadAssigned,
    LeadCaptured,
    LeadConverted,
    LeadDisqualified,
    LeadErased,
    LeadQualified,
    LeadReopened,
    LeadScored,
)
from domain.personal import REDACTED
from projections.bulk import BulkRebuild
from projections.erasure import ErasureEvent, erased_ids
from projections.pagination import InvalidCursor, check_limit, decode_cursor, page_of
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles
from projections.visibility import Visibility

__all__ = ["InvalidCursor", "LeadQueueProjection", "LeadQueueRebuild", "LeadQueueView"]

# Unassigned first, then highest score, then oldest; the id breaks ties (keyset pagination).
QUEUE_KEY = "(owner IS NOT NULL), (-coalesce(score, -1)), captured_at, lead_id"


class LeadQueueView(ReadModelView):
    """One row per lead, kept current; speed-to-lead is derived from it at query time.

    `erased_at`: when the lead's personal data was erased (its own erasure, or a customer's that
    named it); its name reads "[erased]" from then on.
    """

    name: ClassVar[str] = "lead_queue"
    schema: ClassVar[int] = 2  # 2: erased_at
    tables: ClassVar[dict[str, str]] = {
        "leads": (
            "lead_id uuid PRIMARY KEY, name text NOT NULL, company text, channel text NOT NULL, "
            "campaign text, region text NOT NULL, status text NOT NULL, owner text, "
            "score int, captured_at timestamptz NOT NULL, first_activity_at timestamptz, "
            "last_activity_at timestamptz, converted_customer_id uuid, "
            "updated_at timestamptz NOT NULL, erased_at timestamptz"
        )
    }
    indexes: ClassVar[dict[str, list[str]]] = {"leads": [QUEUE_KEY, "status", "owner"]}

    def queue(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> tuple[list[Row], str | None]:
        """Leads, unassigned first, then by score (highest first) and age (oldest first).

        `visible` restricts the rows to those a reader may see (None: all of them).
        """
        check_limit(limit)
        self.wait_for(min_position)
        where: list[Composed | SQL] = []
        params: list[Any] = []
        if visible is not None:
            where, params = visible.where(region="region", owner="owner")
        if status is not None:
            where.append(SQL("status = %s"))
            params.append(status)
        if owner is not None:
            where.append(SQL("owner = %s"))
            params.append(owner)
        if cursor is not None:
            where.append(SQL("({}) > (%s, %s, %s, %s)").format(SQL(QUEUE_KEY)))
            params.extend(decode_cursor(cursor, QUEUE_KEY_PARSERS))
        statement = SQL("SELECT * FROM {}").format(self.reader("leads"))
        if where:
            statement += SQL(" WHERE ") + SQL(" AND ").join(where)
        statement += SQL(" ORDER BY {} LIMIT %s").format(SQL(QUEUE_KEY))
        return page_of(self.fetch(statement, [*params, limit + 1]), limit, queue_key)

    def speed_to_lead(self, by: str = "owner", *, min_position: int | None = None) -> list[Row]:
        """Capture-to-first-activity per owner or channel: count, average and p90 in seconds."""
        if by not in ("owner", "channel"):
            raise ValueError("speed_to_lead groups by 'owner' or 'channel'")
        self.wait_for(min_position)
        seconds = "extract(epoch FROM first_activity_at - captured_at)"
        return self.fetch(
            SQL(
                "SELECT {by} AS key, count(*) AS leads, count(first_activity_at) AS contacted, "
                "avg(" + seconds + ") AS avg_seconds, "
                "percentile_cont(0.9) WITHIN GROUP (ORDER BY " + seconds + ") AS p90_seconds "
                "FROM {leads} GROUP BY {by} ORDER BY {by} NULLS FIRST"
            ).format(by=SQL(by), leads=self.reader("leads"))
        )

    def get(self, lead_id: UUID, *, min_position: int | None = None) -> Row | None:
        """One lead's row, or None."""
        self.wait_for(min_position)
        rows = self.fetch(
            SQL("SELECT * FROM {} WHERE lead_id = %s").format(self.reader("leads")), (lead_id,)
        )
        return rows[0] if rows else None


def queue_key(row: Row) -> list[Any]:
    """The QUEUE_KEY of a row, as its cursor carries it (QUEUE_KEY_PARSERS read it back)."""
    return [
        row["owner"] is not None,
        -(row["score"] if row["score"] is not None else -1),
        row["captured_at"].isoformat(),
        str(row["lead_id"]),
    ]


QUEUE_KEY_PARSERS = (bool, int, datetime.fromisoformat, UUID)


class LeadQueueProjection(ReadModelProjection):
    """Fills `lead_queue` from lead events."""

    name = "lead_queue"

    @handles(LeadCaptured)
    def captured(self, curs: Cursor[DictRow], event: LeadCaptured) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (lead_id, name, company, channel, campaign, region, status, "
                "captured_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s) "
                "ON CONFLICT (lead_id) DO NOTHING"
            ).format(self.view.table("leads")),
            (
                event.originator_id,
                event.name,
                event.company,
                event.channel,
                event.campaign,
                event.region,
                event.timestamp,
                event.timestamp,
            ),
        )

    @handles(LeadScored)
    def scored(self, curs: Cursor[DictRow], event: LeadScored) -> None:
        self._set(curs, event, score=event.score)

    @handles(LeadAssigned)
    def assigned(self, curs: Cursor[DictRow], event: LeadAssigned) -> None:
        self._set(curs, event, owner=event.owner)

    @handles(LeadActivityLogged)
    def activity(self, curs: Cursor[DictRow], event: LeadActivityLogged) -> None:
        curs.execute(
            SQL(
                "UPDATE {} SET first_activity_at = least(first_activity_at, %(at)s), "
                "last_activity_at = greatest(last_activity_at, %(at)s), updated_at = %(ts)s "
                "WHERE lead_id = %(id)s"
            ).format(self.view.table("leads")),
            {"at": event.occurred_at, "ts": event.timestamp, "id": event.originator_id},
        )

    @handles(LeadQualified)
    def qualified(self, curs: Cursor[DictRow], event: LeadQualified) -> None:
        self._set(curs, event, status="qualified")

    @handles(LeadDisqualified)
    def disqualified(self, curs: Cursor[DictRow], event: LeadDisqualified) -> None:
        self._set(curs, event, status="disqualified")

    @handles(LeadReopened)
    def reopened(self, curs: Cursor[DictRow], event: LeadReopened) -> None:
        self._set(curs, event, status="open")

    @handles(LeadConverted)
    def converted(self, curs: Cursor[DictRow], event: LeadConverted) -> None:
        self._set(curs, event, status="converted", converted_customer_id=event.customer_id)

    @handles(LeadErased, CustomerErased)
    def erased(self, curs: Cursor[DictRow], event: ErasureEvent) -> None:
        # A customer's erasure reaches the leads it names (a lead is its own data subject).
        curs.execute(
            SQL(
                "UPDATE {} SET name = {}, erased_at = coalesce(erased_at, %s), updated_at = %s "
                "WHERE lead_id = ANY(%s)"
            ).format(self.view.table("leads"), Literal(REDACTED)),
            (event.timestamp, event.timestamp, erased_ids(event)),
        )

    def _set(self, curs: Cursor[DictRow], event: Any, **columns: Any) -> None:
        assignments = SQL(", ").join(SQL(f"{column} = %s") for column in columns)
        curs.execute(
            SQL("UPDATE {} SET {}, updated_at = %s WHERE lead_id = %s").format(
                self.view.table("leads"), assignments
            ),
            (*columns.values(), event.timestamp, event.originator_id),
        )


class LeadQueueRebuild(BulkRebuild, rebuilds=LeadQueueProjection):
    """LeadQueueProjection's statements, applied to rows in memory (for rebuilds)."""

    @handles(LeadCaptured)
    def captured(self, event: LeadCaptured) -> None:
        self.tables["leads"].add_new(
            event.originator_id,
            lead_id=event.originator_id,
            name=event.name,
            company=event.company,
            channel=event.channel,
            campaign=event.campaign,
            region=event.region,
            status="open",
            captured_at=event.timestamp,
            updated_at=event.timestamp,
        )

    @handles(LeadScored)
    def scored(self, event: LeadScored) -> None:
        self._set(event, score=event.score)

    @handles(LeadAssigned)
    def assigned(self, event: LeadAssigned) -> None:
        self._set(event, owner=event.owner)

    @handles(LeadActivityLogged)
    def activity(self, event: LeadActivityLogged) -> None:
        row = self.tables["leads"].get(event.originator_id)
        if row is not None:
            at = event.occurred_at  # least()/greatest() skip NULLs
            first, last = row["first_activity_at"], row["last_activity_at"]
            row["first_activity_at"] = at if first is None else min(first, at)
            row["last_activity_at"] = at if last is None else max(last, at)
            row["updated_at"] = event.timestamp

    @handles(LeadQualified)
    def qualified(self, event: LeadQualified) -> None:
        self._set(event, status="qualified")

    @handles(LeadDisqualified)
    def disqualified(self, event: LeadDisqualified) -> None:
        self._set(event, status="disqualified")

    @handles(LeadReopened)
    def reopened(self, event: LeadReopened) -> None:
        self._set(event, status="open")

    @handles(LeadConverted)
    def converted(self, event: LeadConverted) -> None:
        self._set(event, status="converted", converted_customer_id=event.customer_id)

    @handles(LeadErased, CustomerErased)
    def erased(self, event: ErasureEvent) -> None:
        for lead_id in erased_ids(event):
            row = self.tables["leads"].get(lead_id)
            if row is not None:
                erased_at = row["erased_at"] or event.timestamp
                row.update(name=REDACTED, erased_at=erased_at, updated_at=event.timestamp)

    def _set(self, event: Any, **columns: Any) -> None:
        self.tables["leads"].set(event.originator_id, **columns, updated_at=event.timestamp)
