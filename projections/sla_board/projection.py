"""SlaBoardProjection: fills the SLA board's tables from ticket events."""

from __future__ import annotations

from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

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
from projections.readmodel import ReadModelProjection, handles
from projections.sla_board.state import FIRST_RESPONSE, RESOLUTION


# Compliance counts the outcomes the commands decided (`met_due` of the first response and of the
# resolution) per team, priority or month of the outcome, with the team and priority the ticket had
# when the outcome happened. A reopened ticket loses its resolution outcome until it is resolved
# again, so a re-resolved ticket counts only its latest resolution.
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
