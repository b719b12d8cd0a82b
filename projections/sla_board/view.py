"""The SLA board's tables and queries: open tickets, most urgent first, and SLA compliance."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from psycopg.sql import SQL, Composed, Identifier

from domain.sla import DEFAULT_CALENDAR, BusinessCalendar, Priority, SlaPolicy
from projections.pagination import check_limit, decode_cursor, page_of
from projections.readmodel import ReadModelView, Row
from projections.sla_board.state import FIRST_RESPONSE, RESOLUTION, SlaState, sla_status
from projections.visibility import Visibility

STATE_FILTER_PAGE = 200
ON_THE_BOARD = ("open", "waiting_on_customer")


class SlaBoardView(ReadModelView):
    """One row per ticket (resolved and closed ones stay), and one per SLA outcome."""

    name: ClassVar[str] = "sla_board"
    schema: ClassVar[int] = 2  # 2: tickets by opening time and by customer (ticket listing)
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
        "tickets": [
            "status, next_due, ticket_id",
            "team",
            "agent",
            "opened_at, ticket_id",
            "customer_id",
        ],
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
        visible: Visibility | None = None,
        after: tuple[datetime, UUID] | None = None,
    ) -> list[Row]:
        """Open and waiting tickets, nearest due first, each with its SLA state at `now`.

        `visible` restricts the tickets by their customer; `after` starts past that
        (next_due, ticket_id), as `board_page` cursors carry it.
        """
        scan = BoardScan(now, calendar, policy, team, agent, priority, state, limit, visible, after)
        self.wait_for(min_position)
        while not scan.done:
            scan.take(self.fetch(*scan.next_page(type(self))))
        return scan.rows

    def board_page(
        self,
        now: datetime,
        calendar: BusinessCalendar,
        policy: SlaPolicy,
        *,
        team: str | None = None,
        agent: str | None = None,
        priority: Priority | str | None = None,
        state: SlaState | str | None = None,
        visible: Visibility | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_position: int | None = None,
    ) -> tuple[list[Row], str | None]:
        """A page of the board (see `board`) and the opaque cursor of the next one, if any."""
        check_limit(limit)
        after = None if cursor is None else decode_cursor(cursor, BOARD_KEY_PARSERS, "board")
        rows = self.board(
            now,
            calendar,
            policy,
            team=team,
            agent=agent,
            priority=priority,
            state=state,
            limit=limit + 1,
            min_position=min_position,
            visible=visible,
            after=None if after is None else (after[0], after[1]),
        )
        return page_of(rows, limit, board_key, "board")

    def ticket(
        self,
        ticket_id: UUID,
        *,
        min_position: int | None = None,
        visible: Visibility | None = None,
    ) -> Row | None:
        """The stored row of one ticket, on the board or not (no computed fields).

        None also when `visible` does not admit the ticket's customer.
        """
        self.wait_for(min_position)
        where, params = (visible or Visibility()).where(customer_id="customer_id")
        rows = self.fetch(
            SQL("SELECT * FROM {} WHERE {}").format(
                self.reader("tickets"), SQL(" AND ").join([SQL("ticket_id = %s"), *where])
            ),
            [ticket_id, *params],
        )
        return rows[0] if rows else None

    def tickets(
        self,
        *,
        status: str | None = None,
        priority: Priority | str | None = None,
        team: str | None = None,
        agent: str | None = None,
        customer_id: UUID | None = None,
        visible: Visibility | None = None,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
    ) -> tuple[list[Row], str | None]:
        """Every ticket (any status), newest first, and the opaque cursor of the next page."""
        check_limit(limit)
        self.wait_for(min_position)
        where, params = (visible or Visibility()).where(customer_id="customer_id")
        for column, value in (
            ("status", status),
            ("priority", priority),
            ("team", team),
            ("agent", agent),
            ("customer_id", customer_id),
        ):
            if value is not None:
                where.append(SQL("{} = %s").format(Identifier(column)))
                params.append(value if isinstance(value, UUID) else str(value))
        if cursor is not None:
            where.append(SQL("(opened_at, ticket_id) < (%s, %s)"))
            params.extend(decode_cursor(cursor, TICKET_KEY_PARSERS, "tickets"))
        rows = self.fetch(
            SQL(
                "SELECT * FROM {} WHERE {} ORDER BY opened_at DESC, ticket_id DESC LIMIT %s"
            ).format(self.reader("tickets"), SQL(" AND ").join([SQL("TRUE"), *where])),
            [*params, limit + 1],
        )
        return page_of(rows, limit, ticket_key, "tickets")

    def compliance(
        self,
        by: Literal["team", "priority", "month"],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        time_zone: str = DEFAULT_CALENDAR.time_zone,
        min_position: int | None = None,
        team: str | None = None,
        priority: Priority | str | None = None,
        channel: str | None = None,
        region: str | None = None,
        visible: Visibility | None = None,
    ) -> list[Row]:
        """Met and breached first responses and resolutions, with % met, per `by`.

        Months are calendar months in `time_zone` ("2026-03"); `since`/`until` bound when the
        outcome happened (half-open). A percentage is None when there is nothing to count.
        `team` and `priority` are the ticket's when the outcome happened; `channel`, `region`
        and `visible` (both by the ticket's customer) select tickets.
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
        for column, value in (("team", team), ("priority", priority)):
            if value is not None:
                where.append(SQL("{} = %s").format(Identifier(column)))
                params.append(str(value))
        tickets, ticket_params = (visible or Visibility()).where(customer_id="customer_id")
        in_region, region_params = Visibility(region=region).where(customer_id="customer_id")
        tickets.extend(in_region)
        ticket_params.extend(region_params)
        if channel is not None:
            tickets.append(SQL("channel = %s"))
            ticket_params.append(channel)
        if tickets:
            where.append(
                SQL("ticket_id IN (SELECT ticket_id FROM {} WHERE {})").format(
                    self.reader("tickets"), SQL(" AND ").join(tickets)
                )
            )
            params.extend(ticket_params)
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


class BoardScan:
    """One reading of the board: tickets on it in (next_due, ticket_id) order, a page of the
    table at a time, each given its SLA state at `now`, until `limit` rows in the wanted state.

    The caller runs each `next_page` statement and hands its rows to `take` until `done`, so
    the blocking and the awaited board share every rule.
    """

    def __init__(
        self,
        now: datetime,
        calendar: BusinessCalendar,
        policy: SlaPolicy,
        team: str | None,
        agent: str | None,
        priority: Priority | str | None,
        state: SlaState | str | None,
        limit: int,
        visible: Visibility | None,
        after: tuple[datetime, Any] | None,
    ) -> None:
        self.now, self.calendar, self.policy = now, calendar, policy
        self.wanted = None if state is None else SlaState(state)
        self.limit = limit
        # With a state wanted, rows are filtered after fetching: read bigger pages.
        self.page = limit if self.wanted is None else max(limit, STATE_FILTER_PAGE)
        self.after = after
        self.rows: list[Row] = []
        self.done = limit < 1
        self.where: list[Composed | SQL] = [SQL("status = ANY(%s)")]
        self.params: list[Any] = [list(ON_THE_BOARD)]
        for column, value in (("team", team), ("agent", agent), ("priority", priority)):
            if value is not None:
                self.where.append(SQL(f"{column} = %s"))
                self.params.append(str(value))
        if visible is not None:
            restricted, restricted_params = visible.where(customer_id="customer_id")
            self.where.extend(restricted)
            self.params.extend(restricted_params)

    def next_page(self, view: type[ReadModelView]) -> tuple[Composed, list[Any]]:
        """The statement (and its parameters) reading the next page of the table."""
        keyset = [] if self.after is None else [SQL("(next_due, ticket_id) > (%s, %s)")]
        statement = SQL("SELECT * FROM {} WHERE {} ORDER BY next_due, ticket_id LIMIT %s")
        return (
            statement.format(view.reader("tickets"), SQL(" AND ").join(self.where + keyset)),
            [*self.params, *(self.after or ()), self.page],
        )

    def take(self, tickets: list[Row]) -> None:
        """Keep the page's tickets in the wanted state; done at `limit` or the table's end."""
        for row in tickets:
            row.update(sla_status(row, self.now, self.calendar, self.policy))
            if self.wanted is None or row["state"] is self.wanted:
                self.rows.append(row)
                if len(self.rows) == self.limit:
                    self.done = True
                    return
        if len(tickets) < self.page:
            self.done = True
        else:
            self.after = (tickets[-1]["next_due"], tickets[-1]["ticket_id"])


def board_key(row: Row) -> list[Any]:
    """A board row's sort key, as its cursor carries it (BOARD_KEY_PARSERS read it back)."""
    return [row["next_due"].isoformat(), str(row["ticket_id"])]


def ticket_key(row: Row) -> list[Any]:
    """A ticket listing row's sort key, as its cursor carries it."""
    return [row["opened_at"].isoformat(), str(row["ticket_id"])]


BOARD_KEY_PARSERS = (datetime.fromisoformat, UUID)
TICKET_KEY_PARSERS = (datetime.fromisoformat, UUID)
