"""The SLA board's tables and queries: open tickets, most urgent first, and SLA compliance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from psycopg.sql import SQL, Composed

from domain.sla import DEFAULT_CALENDAR, BusinessCalendar, Priority, SlaPolicy
from projections.readmodel import ReadModelView, Row
from projections.sla_board.state import FIRST_RESPONSE, RESOLUTION, SlaState, sla_status

STATE_FILTER_PAGE = 200
ON_THE_BOARD = ("open", "waiting_on_customer")


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
