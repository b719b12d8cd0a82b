"""SlaBoardRebuild: SlaBoardProjection's statements applied to rows in memory (for rebuilds)."""

from __future__ import annotations

from typing import Any

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
from projections.bulk import BulkRebuild
from projections.readmodel import handles
from projections.sla_board.projection import SlaBoardProjection
from projections.sla_board.state import FIRST_RESPONSE, RESOLUTION


class SlaBoardRebuild(BulkRebuild, rebuilds=SlaBoardProjection):
    """Mirrors each handler of SlaBoardProjection (outcomes keyed by ticket and measure)."""

    @handles(TicketOpened)
    def opened(self, event: TicketOpened) -> None:
        self.tables["tickets"].add_new(
            event.originator_id,
            ticket_id=event.originator_id,
            customer_id=event.customer_id,
            channel=str(event.channel),
            category=event.category,
            priority=str(event.priority),
            sla_policy_version=event.sla_policy_version,
            status="open",
            escalation_level=0,
            opened_at=event.timestamp,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
            updated_at=event.timestamp,
        )

    @handles(TicketAssigned)
    def assigned(self, event: TicketAssigned) -> None:
        self._set(event, agent=event.agent, team=event.team)

    @handles(TicketFirstResponded)
    def first_responded(self, event: TicketFirstResponded) -> None:
        self._set(event, first_responded_at=event.timestamp, first_response_met=event.met_due)
        self._record_outcome(event, FIRST_RESPONSE, event.met_due)

    @handles(TicketPausedForCustomer)
    def paused(self, event: TicketPausedForCustomer) -> None:
        self._set(event, status="waiting_on_customer", paused_at=event.timestamp)

    @handles(TicketResumed)
    def resumed(self, event: TicketResumed) -> None:
        self._set(
            event,
            status="open",
            paused_at=None,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
        )

    @handles(TicketEscalated)
    def escalated(self, event: TicketEscalated) -> None:
        self._set(event, escalation_level=event.level)

    @handles(TicketPriorityChanged)
    def priority_changed(self, event: TicketPriorityChanged) -> None:
        self._set(
            event,
            priority=str(event.priority),
            sla_policy_version=event.sla_policy_version,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
        )

    @handles(TicketResolved)
    def resolved(self, event: TicketResolved) -> None:
        self._set(
            event,
            status="resolved",
            paused_at=None,
            resolved_at=event.timestamp,
            resolution_met=event.met_due,
        )
        self._record_outcome(event, RESOLUTION, event.met_due)

    @handles(TicketClosed)
    def closed(self, event: TicketClosed) -> None:
        self._set(event, status="closed", closed_at=event.timestamp)

    @handles(TicketReopened)
    def reopened(self, event: TicketReopened) -> None:
        self._set(
            event,
            status="open",
            resolved_at=None,
            resolution_met=None,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
        )
        self.tables["outcomes"].delete((event.originator_id, RESOLUTION))

    def _record_outcome(self, event: Any, measure: str, met: bool) -> None:
        ticket = self.tables["tickets"].get(event.originator_id)
        if ticket is None:  # INSERT ... SELECT from no row inserts nothing
            return
        self.tables["outcomes"].put(
            (event.originator_id, measure),
            ticket_id=event.originator_id,
            measure=measure,
            team=ticket["team"],
            priority=ticket["priority"],
            met=met,
            measured_at=event.timestamp,
        )

    def _set(self, event: Any, **columns: Any) -> None:
        self.tables["tickets"].set(event.originator_id, **columns, updated_at=event.timestamp)
