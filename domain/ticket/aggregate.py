"""The Ticket aggregate: its state, its commands and the SLA due times they decide."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from domain.shared import Aggregate, now
from domain.sla import ZERO, BusinessCalendar, Priority, SlaPolicy
from domain.ticket.events import (
    Channel,
    SlaMeasure,
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketFirstResponded,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketRated,
    TicketReopened,
    TicketResolved,
    TicketResumed,
    TicketSlaAtRisk,
    TicketSlaBreached,
    TicketStatus,
)
from domain.ticket.rules import (
    ACTIVE,
    check_active,
    check_choice,
    check_csat_score,
    check_escalation_level,
    check_not_closed,
    check_not_de_escalated,
    check_not_rated,
    check_reopen_window,
    check_resolved,
    check_text,
    check_waiting_on_customer,
)


class Ticket(Aggregate):
    """A customer's request for help, worked against SLA due times."""

    TYPE: ClassVar[str] = "crm.ticket"

    customer_id: UUID
    channel: Channel
    subject: str
    description: str
    category: str
    priority: Priority
    sla_policy_version: str
    status: TicketStatus
    first_response_due: datetime
    resolution_due: datetime
    agent: str | None = None
    team: str | None = None
    escalation_level: int = 0
    first_responded_at: datetime | None = None
    first_response_met: bool | None = None
    sla_clock_stopped_at: datetime | None = None
    paused_business_time: timedelta = ZERO
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolution_met: bool | None = None
    csat_score: int | None = None
    sla_at_risk: dict[SlaMeasure, datetime] = Field(default_factory=dict)  # measure -> due warned
    sla_breached: dict[SlaMeasure, datetime] = Field(default_factory=dict)  # measure -> due missed

    @classmethod
    def open(
        cls,
        ticket_id: UUID,
        customer_id: UUID,
        channel: Channel | str,
        subject: str,
        description: str,
        priority: Priority | str,
        category: str,
        policy: SlaPolicy,
        calendar: BusinessCalendar,
    ) -> Ticket:
        channel = check_choice(ticket_id, "channel", Channel, channel)
        priority = check_choice(ticket_id, "priority", Priority, priority)
        check_text(ticket_id, "subject", subject)
        due = policy.due_times(priority, now(), calendar)
        return cls._start(
            TicketOpened,
            ticket_id,
            customer_id=customer_id,
            channel=channel,
            subject=subject.strip(),
            description=description,
            category=category,
            priority=priority,
            sla_policy_version=policy.version,
            first_response_due=due.first_response,
            resolution_due=due.resolution,
        )

    def assign(self, agent: str, team: str | None = None) -> None:
        check_text(self.id, "agent", agent)
        check_active(self)
        if (self.agent, self.team) != (agent, team):
            self._trigger(TicketAssigned, agent=agent, team=team)

    def record_first_response(self) -> None:
        check_active(self)
        if self.first_responded_at is None:
            self._trigger(
                TicketFirstResponded, met_due=self._sla_clock() <= self.first_response_due
            )

    def wait_on_customer(self) -> None:
        check_active(self)
        if self.status is not TicketStatus.WAITING_ON_CUSTOMER:
            self._trigger(TicketPausedForCustomer)

    def resume(self, calendar: BusinessCalendar) -> None:
        check_waiting_on_customer(self)
        self._trigger(TicketResumed, **self._restarted_dues(calendar))

    def escalate(self, level: int, reason: str) -> None:
        check_escalation_level(self.id, level)
        check_active(self)
        check_not_de_escalated(self, level)
        if level != self.escalation_level:
            self._trigger(TicketEscalated, level=level, reason=reason)

    def flag_sla_at_risk(self, measure: SlaMeasure | str, due: datetime) -> None:
        """Record that the `measure` due at `due` is at risk (once per due time)."""
        measure = check_choice(self.id, "measure", SlaMeasure, measure)
        check_active(self)
        if self.sla_at_risk.get(measure) != due:
            self._trigger(TicketSlaAtRisk, measure=measure, due=due)

    def record_sla_breach(self, measure: SlaMeasure | str, due: datetime) -> None:
        """Record that the `measure` due at `due` was missed (once per due time)."""
        measure = check_choice(self.id, "measure", SlaMeasure, measure)
        check_active(self)
        if self.sla_breached.get(measure) != due:
            self._trigger(TicketSlaBreached, measure=measure, due=due)

    def change_priority(
        self, priority: Priority | str, policy: SlaPolicy, calendar: BusinessCalendar
    ) -> None:
        priority = check_choice(self.id, "priority", Priority, priority)
        check_active(self)
        if priority == self.priority:
            return
        due = policy.due_times(priority, self.created_on, calendar, self.paused_business_time)
        first_due = (
            due.first_response if self.first_responded_at is None else self.first_response_due
        )
        self._trigger(
            TicketPriorityChanged,
            priority=priority,
            sla_policy_version=policy.version,
            first_response_due=first_due,
            resolution_due=due.resolution,
        )

    def resolve(self, resolution: str) -> None:
        check_text(self.id, "resolution", resolution)
        if self.status is TicketStatus.RESOLVED:
            return
        check_active(self)
        self._trigger(
            TicketResolved, resolution=resolution, met_due=self._sla_clock() <= self.resolution_due
        )

    def close(self) -> None:
        if self.status is not TicketStatus.CLOSED:
            check_resolved(self)
            self._trigger(TicketClosed)

    def reopen(self, calendar: BusinessCalendar) -> None:
        check_not_closed(self)
        if self.status in ACTIVE:
            return
        check_reopen_window(self)
        self._trigger(TicketReopened, **self._restarted_dues(calendar))

    def rate(self, score: int, comment: str = "") -> None:
        check_csat_score(self.id, score)
        check_not_rated(self)
        check_resolved(self)
        self._trigger(TicketRated, score=score, comment=comment)

    def _sla_clock(self) -> datetime:
        """The instant the SLA clock shows: when it stopped, or now."""
        return self.sla_clock_stopped_at or now()

    def _restarted_dues(self, calendar: BusinessCalendar) -> dict[str, Any]:
        paused = calendar.business_time_between(self._sla_clock(), now())
        first_due = self.first_response_due
        if self.first_responded_at is None:  # a given first response is settled history
            first_due = calendar.add_business_time(first_due, paused)
        return {
            "paused": paused,
            "first_response_due": first_due,
            "resolution_due": calendar.add_business_time(self.resolution_due, paused),
        }
