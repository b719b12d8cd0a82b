"""SLA board: open tickets, most urgent first, on track / at risk / breached; SLA compliance.

The board's state is computed when it is read, from the stored due times, the policy's targets
and the caller's `now`, so it is right even when no event has happened for hours. The clock that
counts is the nearest pending one: the first response's until it is given, then the resolution's.
At risk means less than AT_RISK_SHARE of the priority's policy target is left (the policy target,
not the time since the clock last restarted: the due times are the opening plus the target plus
the pauses, so the target is the whole budget, and a resume does not reset the 25 % threshold).
Breached means no business time is left (`now` at or past the due time). While a ticket waits
on the customer its remaining time is frozen at its value when the pause began.

Compliance counts the outcomes the commands decided (`met_due` of the first response and of the
resolution) per team, priority or month of the outcome, with the team and priority the ticket had
when the outcome happened. A reopened ticket loses its resolution outcome until it is resolved
again, so a re-resolved ticket counts only its latest resolution.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed

from domain.sla import DEFAULT_CALENDAR, ZERO, BusinessCalendar, Priority, SlaPolicy
from domain.ticket import (
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketFirstResponded,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketReopened,
    TicketResolved,
    TicketResumed,
)
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles

AT_RISK_SHARE = 0.25
STATE_FILTER_PAGE = 200
ON_THE_BOARD = ("open", "waiting_on_customer")
FIRST_RESPONSE, RESOLUTION = "first_response", "resolution"


class SlaState(StrEnum):
    """Where a ticket stands against its nearest pending due time."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"


class SlaBoardView(ReadModelView):
    """One row per ticket (resolved and closed ones stay), and one per SLA outcome."""

    name: ClassVar[str] = "sla_board"
    tables: ClassVar[dict[str, str]] = {
        "tickets": (
            "ticket_id uuid PRIMARY KEY, customer_id uuid NOT NULL, channel text NOT NULL, "
            "category text NOT NULL, priority text NOT NULL, sla_policy_version text NOT NULL, "
            "team text, agent text, status text NOT NULL, escalation_level int NOT NULL, "
            "opened_at timestamptz NOT NULL, first_response_due timestamptz NOT NULL, "
            "first_responded_at timestamptz, first_response_met boolean, "
            "resolution_due timestamptz NOT NULL, resolved_at timestamptz, "
            "resolution_met boolean, closed_at timestamptz, paused_at timestamptz, "
            "next_due timestamptz GENERATED ALWAYS AS (CASE WHEN first_responded_at IS NULL "
            "THEN first_response_due ELSE resolution_due END) STORED, "
            "updated_at timestamptz NOT NULL"
        ),
        "outcomes": (
            "ticket_id uuid NOT NULL, measure text NOT NULL, team text, priority text NOT NULL, "
            "met boolean NOT NULL, measured_at timestamptz NOT NULL, "
            "PRIMARY KEY (ticket_id, measure)"
        ),
    }
    indexes: ClassVar[dict[str, list[str]]] = {
        "tickets": ["status, next_due, ticket_id", "team", "agent"],
        "outcomes": ["measured_at"],
    }

    def board(
        self,
        now: datetime,
        calendar: BusinessCalendar,
        policy: SlaPolicy,
        *,
        team: str | None = None,
        agent: str | None = None,
        priority: Priority | str | None = None,
        state: SlaState | str | None = None,
        limit: int = 100,
        min_position: int | None = None,
    ) -> list[Row]:
        """Open and waiting tickets, nearest due first, each with its SLA state at `now`."""
        wanted = None if state is None else SlaState(state)
        self.wait_for(min_position)
        rows: list[Row] = []
        if limit < 1:
            return rows
        # With a state wanted, rows are filtered after fetching: read bigger pages.
        page = limit if wanted is None else max(limit, STATE_FILTER_PAGE)
        for row in self._open_tickets(team, agent, priority, page=page):
            row.update(sla_status(row, now, calendar, policy))
            if wanted is None or row["state"] is wanted:
                rows.append(row)
                if len(rows) == limit:
                    break
        return rows

    def _open_tickets(
        self, team: str | None, agent: str | None, priority: Priority | str | None, page: int
    ) -> Iterator[Row]:
        """Tickets on the board in (next_due, ticket_id) order, fetched a page at a time."""
        where: list[Composed | SQL] = [SQL("status = ANY(%s)")]
        params: list[Any] = [list(ON_THE_BOARD)]
        for column, value in (("team", team), ("agent", agent), ("priority", priority)):
            if value is not None:
                where.append(SQL(f"{column} = %s"))
                params.append(str(value))
        after: tuple[datetime, Any] | None = None
        while True:
            keyset = [] if after is None else [SQL("(next_due, ticket_id) > (%s, %s)")]
            statement = SQL("SELECT * FROM {} WHERE {} ORDER BY next_due, ticket_id LIMIT %s")
            rows = self.fetch(
                statement.format(self.reader("tickets"), SQL(" AND ").join(where + keyset)),
                [*params, *(after or ()), page],
            )
            yield from rows
            if len(rows) < page:
                return
            after = (rows[-1]["next_due"], rows[-1]["ticket_id"])

    def ticket(self, ticket_id: UUID, *, min_position: int | None = None) -> Row | None:
        """The stored row of one ticket, on the board or not (no computed fields)."""
        self.wait_for(min_position)
        rows = self.fetch(
            SQL("SELECT * FROM {} WHERE ticket_id = %s").format(self.reader("tickets")),
            (ticket_id,),
        )
        return rows[0] if rows else None

    def compliance(
        self,
        by: Literal["team", "priority", "month"],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        time_zone: str = DEFAULT_CALENDAR.time_zone,
        min_position: int | None = None,
    ) -> list[Row]:
        """Met and breached first responses and resolutions, with % met, per `by`.

        Months are calendar months in `time_zone` ("2026-03"); `since`/`until` bound when the
        outcome happened (half-open). A percentage is None when there is nothing to count.
        """
        keys = {"team": SQL("team"), "priority": SQL("priority")}
        keys["month"] = SQL("to_char(measured_at AT TIME ZONE %s, 'YYYY-MM')")
        if by not in keys:
            raise ValueError("compliance groups by 'team', 'priority' or 'month'")
        self.wait_for(min_position)
        params: list[Any] = [time_zone] if by == "month" else []
        where: list[Composed | SQL] = [SQL("TRUE")]
        if since is not None:
            where.append(SQL("measured_at >= %s"))
            params.append(since)
        if until is not None:
            where.append(SQL("measured_at < %s"))
            params.append(until)
        counts = SQL(", ").join(
            SQL(f"count(*) FILTER (WHERE measure = '{measure}' AND {test}) AS {measure}_{label}")
            for measure in (FIRST_RESPONSE, RESOLUTION)
            for label, test in (("met", "met"), ("breached", "NOT met"))
        )
        rows = self.fetch(
            SQL("SELECT {} AS key, {} FROM {} WHERE {} GROUP BY 1 ORDER BY 1 NULLS FIRST").format(
                keys[by], counts, self.reader("outcomes"), SQL(" AND ").join(where)
            ),
            params,
        )
        for row in rows:
            for measure in (FIRST_RESPONSE, RESOLUTION):
                met, breached = row[f"{measure}_met"], row[f"{measure}_breached"]
                row[f"{measure}_pct"] = 100.0 * met / (met + breached) if met + breached else None
        return rows


def sla_status(
    row: Row, now: datetime, calendar: BusinessCalendar, policy: SlaPolicy
) -> dict[str, Any]:
    """The computed fields of a board row: which clock counts, time left, target and state."""
    measure = FIRST_RESPONSE if row["first_responded_at"] is None else RESOLUTION
    target: timedelta = getattr(policy.targets[Priority(row["priority"])], measure)
    paused = row["status"] == "waiting_on_customer"
    clock = row["paused_at"] if paused else now  # a paused clock shows when it stopped
    remaining = calendar.business_time_between(clock, row["next_due"])
    if remaining <= ZERO:
        state = SlaState.BREACHED
    elif remaining < target * AT_RISK_SHARE:
        state = SlaState.AT_RISK
    else:
        state = SlaState.ON_TRACK
    return {
        "sla": measure,
        "paused": paused,
        "remaining": remaining,
        "target": target,
        "state": state,
    }


class SlaBoardProjection(ReadModelProjection):
    """Fills `sla_board` from ticket events."""

    name = "sla_board"

    @handles(TicketOpened)
    def opened(self, curs: Cursor[DictRow], event: TicketOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (ticket_id, customer_id, channel, category, priority, "
                "sla_policy_version, status, escalation_level, opened_at, first_response_due, "
                "resolution_due, updated_at) VALUES (%s, %s, %s, %s, %s, %s, 'open', 0, %s, %s, "
                "%s, %s) ON CONFLICT (ticket_id) DO NOTHING"
            ).format(self.view.table("tickets")),
            (
                event.originator_id,
                event.customer_id,
                str(event.channel),
                event.category,
                str(event.priority),
                event.sla_policy_version,
                event.timestamp,
                event.first_response_due,
                event.resolution_due,
                event.timestamp,
            ),
        )

    @handles(TicketAssigned)
    def assigned(self, curs: Cursor[DictRow], event: TicketAssigned) -> None:
        self._set(curs, event, agent=event.agent, team=event.team)

    @handles(TicketFirstResponded)
    def first_responded(self, curs: Cursor[DictRow], event: TicketFirstResponded) -> None:
        self._set(curs, event, first_responded_at=event.timestamp, first_response_met=event.met_due)
        self._record_outcome(curs, event, FIRST_RESPONSE, event.met_due)

    @handles(TicketPausedForCustomer)
    def paused(self, curs: Cursor[DictRow], event: TicketPausedForCustomer) -> None:
        self._set(curs, event, status="waiting_on_customer", paused_at=event.timestamp)

    @handles(TicketResumed)
    def resumed(self, curs: Cursor[DictRow], event: TicketResumed) -> None:
        self._set(
            curs,
            event,
            status="open",
            paused_at=None,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
        )

    @handles(TicketEscalated)
    def escalated(self, curs: Cursor[DictRow], event: TicketEscalated) -> None:
        self._set(curs, event, escalation_level=event.level)

    @handles(TicketPriorityChanged)
    def priority_changed(self, curs: Cursor[DictRow], event: TicketPriorityChanged) -> None:
        self._set(
            curs,
            event,
            priority=str(event.priority),
            sla_policy_version=event.sla_policy_version,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
        )

    @handles(TicketResolved)
    def resolved(self, curs: Cursor[DictRow], event: TicketResolved) -> None:
        self._set(
            curs,
            event,
            status="resolved",
            paused_at=None,
            resolved_at=event.timestamp,
            resolution_met=event.met_due,
        )
        self._record_outcome(curs, event, RESOLUTION, event.met_due)

    @handles(TicketClosed)
    def closed(self, curs: Cursor[DictRow], event: TicketClosed) -> None:
        self._set(curs, event, status="closed", closed_at=event.timestamp)

    @handles(TicketReopened)
    def reopened(self, curs: Cursor[DictRow], event: TicketReopened) -> None:
        self._set(
            curs,
            event,
            status="open",
            resolved_at=None,
            resolution_met=None,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
        )
        curs.execute(  # only the latest resolution counts, once there is one again
            SQL("DELETE FROM {} WHERE ticket_id = %s AND measure = %s").format(
                self.view.table("outcomes")
            ),
            (event.originator_id, RESOLUTION),
        )

    def _record_outcome(self, curs: Cursor[DictRow], event: Any, measure: str, met: bool) -> None:
        """The outcome, attributed to the team and priority the ticket has at that moment."""
        curs.execute(
            SQL(
                "INSERT INTO {outcomes} (ticket_id, measure, team, priority, met, measured_at) "
                "SELECT ticket_id, %s, team, priority, %s, %s FROM {tickets} WHERE ticket_id = %s "
                "ON CONFLICT (ticket_id, measure) DO UPDATE SET team = EXCLUDED.team, "
                "priority = EXCLUDED.priority, met = EXCLUDED.met, "
                "measured_at = EXCLUDED.measured_at"
            ).format(outcomes=self.view.table("outcomes"), tickets=self.view.table("tickets")),
            (measure, met, event.timestamp, event.originator_id),
        )

    def _set(self, curs: Cursor[DictRow], event: Any, **columns: Any) -> None:
        assignments = SQL(", ").join(SQL(f"{column} = %s") for column in columns)
        curs.execute(
            SQL("UPDATE {} SET {}, updated_at = %s WHERE ticket_id = %s").format(
                self.view.table("tickets"), assignments
            ),
            (*columns.values(), event.timestamp, event.originator_id),
        )
