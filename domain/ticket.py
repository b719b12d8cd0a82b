"""Service tickets: opened under an SLA, worked, paused on the customer, resolved and rated.

States: open ⇄ waiting_on_customer → resolved → closed, and resolved → open again (reopen) within
REOPEN_WINDOW of the resolution. Closed is final: a customer who writes back after closure gets
a new ticket. The SLA clock stops while the ticket waits on the customer and while it is resolved;
restarting it (resume, reopen) pushes the due times back by the business time it stood still.
Due times and whether they were met are decided by the commands and stored in the events, so a
replay never needs the policy or the calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from domain.shared import Aggregate, CreationEvent, DomainError, DomainEvent, InvalidValue, now
from domain.sla import ZERO, BusinessCalendar, Priority, SlaPolicy

REOPEN_WINDOW = timedelta(days=14)
ESCALATION_LEVELS = range(1, 4)
CSAT_SCORES = range(1, 6)
LEGACY_SLA_POLICY_VERSION = "legacy-v1"
LEGACY_CATEGORY = "uncategorised"


class Channel(StrEnum):
    """Where the customer reached us."""

    PHONE = "phone"
    EMAIL = "email"
    WECHAT = "wechat"
    WEB = "web"
    CHAT = "chat"
    IN_PERSON = "in_person"


class TicketStatus(StrEnum):
    """Where a ticket is in its life."""

    OPEN = "open"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE = frozenset({TicketStatus.OPEN, TicketStatus.WAITING_ON_CUSTOMER})


class TicketEvent(DomainEvent):
    """Base of the ticket's events."""


class TicketOpened(CreationEvent):
    """A customer's request became a ticket, with the SLA due times decided at opening."""

    TYPE: ClassVar[str] = "crm.ticket.opened"
    class_version: ClassVar[int] = 2

    customer_id: UUID
    channel: Channel
    subject: str
    description: str
    category: str
    priority: Priority
    sla_policy_version: str
    first_response_due: datetime
    resolution_due: datetime

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """v1 (draft) stored priority as 1–4 and had no category nor SLA policy version."""
        state["priority"] = f"P{int(state['priority'])}"
        state.setdefault("category", LEGACY_CATEGORY)
        state["sla_policy_version"] = LEGACY_SLA_POLICY_VERSION

    def create(self) -> Ticket:
        opened = self.model_dump(exclude=set(DomainEvent.model_fields))  # event fields are state
        return Ticket.born(self, status=TicketStatus.OPEN, **opened)


class TicketAssigned(TicketEvent):
    """The ticket was given to an agent (and team)."""

    TYPE: ClassVar[str] = "crm.ticket.assigned"

    agent: str
    team: str | None

    def apply(self, aggregate: Ticket) -> None:
        aggregate.agent, aggregate.team = self.agent, self.team


class TicketFirstResponded(TicketEvent):
    """The customer got a first response, in time or not."""

    TYPE: ClassVar[str] = "crm.ticket.first_responded"

    met_due: bool

    def apply(self, aggregate: Ticket) -> None:
        aggregate.first_responded_at, aggregate.first_response_met = self.timestamp, self.met_due


class TicketPausedForCustomer(TicketEvent):
    """The ticket waits on the customer; its SLA clock stopped."""

    TYPE: ClassVar[str] = "crm.ticket.paused_for_customer"

    def apply(self, aggregate: Ticket) -> None:
        aggregate.status = TicketStatus.WAITING_ON_CUSTOMER
        aggregate.sla_clock_stopped_at = self.timestamp


class SlaClockRestarted(TicketEvent):
    """Base of the events that restart the SLA clock, with the due times pushed back."""

    paused: timedelta  # business time the clock stood still
    first_response_due: datetime
    resolution_due: datetime

    def apply(self, aggregate: Ticket) -> None:
        aggregate.status = TicketStatus.OPEN
        aggregate.sla_clock_stopped_at = None
        aggregate.paused_business_time += self.paused
        aggregate.first_response_due = self.first_response_due
        aggregate.resolution_due = self.resolution_due


class TicketResumed(SlaClockRestarted):
    """The customer answered; the ticket is worked on again."""

    TYPE: ClassVar[str] = "crm.ticket.resumed"


class TicketEscalated(TicketEvent):
    """The ticket went up an escalation level."""

    TYPE: ClassVar[str] = "crm.ticket.escalated"

    level: int
    reason: str

    def apply(self, aggregate: Ticket) -> None:
        aggregate.escalation_level = self.level


class TicketPriorityChanged(TicketEvent):
    """The ticket's priority changed; its due times were recomputed from the opening."""

    TYPE: ClassVar[str] = "crm.ticket.priority_changed"

    priority: Priority
    sla_policy_version: str
    first_response_due: datetime
    resolution_due: datetime

    def apply(self, aggregate: Ticket) -> None:
        aggregate.priority, aggregate.sla_policy_version = self.priority, self.sla_policy_version
        aggregate.first_response_due = self.first_response_due
        aggregate.resolution_due = self.resolution_due


class TicketResolved(TicketEvent):
    """The desk solved the customer's problem, in time or not."""

    TYPE: ClassVar[str] = "crm.ticket.resolved"

    resolution: str
    met_due: bool

    def apply(self, aggregate: Ticket) -> None:
        aggregate.status = TicketStatus.RESOLVED
        aggregate.resolution, aggregate.resolution_met = self.resolution, self.met_due
        aggregate.resolved_at = self.timestamp
        aggregate.sla_clock_stopped_at = aggregate.sla_clock_stopped_at or self.timestamp


class TicketClosed(TicketEvent):
    """The resolved ticket was closed for good."""

    TYPE: ClassVar[str] = "crm.ticket.closed"

    def apply(self, aggregate: Ticket) -> None:
        aggregate.status = TicketStatus.CLOSED


class TicketReopened(SlaClockRestarted):
    """The resolution did not hold; the ticket is open again."""

    TYPE: ClassVar[str] = "crm.ticket.reopened"

    def apply(self, aggregate: Ticket) -> None:
        super().apply(aggregate)
        aggregate.resolution = aggregate.resolved_at = aggregate.resolution_met = None


class TicketRated(TicketEvent):
    """The customer rated the service (CSAT 1–5)."""

    TYPE: ClassVar[str] = "crm.ticket.rated"

    score: int
    comment: str

    def apply(self, aggregate: Ticket) -> None:
        aggregate.csat_score = self.score


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

    def change_priority(
        self, priority: Priority | str, policy: SlaPolicy, calendar: BusinessCalendar
    ) -> None:
        priority = check_choice(self.id, "priority", Priority, priority)
        check_active(self)
        if priority is self.priority:
            return
        due = policy.due_times(priority, self.created_on, calendar, self.paused_business_time)
        first_due = self.first_response_due if self.first_responded_at else due.first_response
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


# --- rules -------------------------------------------------------------------------------------

E = TypeVar("E", bound=StrEnum)


def check_choice(ticket_id: UUID, field_name: str, choices: type[E], value: E | str) -> E:
    try:
        return choices(value)
    except ValueError:
        reason = f"must be one of {', '.join(choices)}"
        raise InvalidTicketValue(ticket_id, field_name, value, reason) from None


def check_text(ticket_id: UUID, field_name: str, value: str) -> None:
    if not value.strip():
        raise InvalidTicketValue(ticket_id, field_name, value, "must not be blank")


def check_active(ticket: Ticket) -> None:
    if ticket.status not in ACTIVE:
        raise TicketNotActive(ticket.id, status=ticket.status)


def check_waiting_on_customer(ticket: Ticket) -> None:
    if ticket.status is not TicketStatus.WAITING_ON_CUSTOMER:
        raise TicketNotWaitingOnCustomer(ticket.id, status=ticket.status)


def check_escalation_level(ticket_id: UUID, level: int) -> None:
    if level not in ESCALATION_LEVELS:
        raise EscalationLevelOutOfRange(ticket_id, "escalation level", level, "must be 1 to 3")


def check_not_de_escalated(ticket: Ticket, level: int) -> None:
    if level < ticket.escalation_level:
        raise TicketCannotBeDeEscalated(ticket.id, current=ticket.escalation_level, level=level)


def check_resolved(ticket: Ticket) -> None:
    """Resolved, or resolved and then closed."""
    if ticket.status in ACTIVE:
        raise TicketNotResolved(ticket.id, status=ticket.status)


def check_not_closed(ticket: Ticket) -> None:
    if ticket.status is TicketStatus.CLOSED:
        raise ClosedTicketCannotBeReopened(ticket.id)


def check_reopen_window(ticket: Ticket) -> None:
    if ticket.resolved_at is not None and now() - ticket.resolved_at > REOPEN_WINDOW:
        raise TicketReopenWindowExpired(ticket.id, resolved_at=ticket.resolved_at)


def check_csat_score(ticket_id: UUID, score: int) -> None:
    if score not in CSAT_SCORES:
        raise CsatScoreOutOfRange(ticket_id, "CSAT score", score, "must be 1 to 5")


def check_not_rated(ticket: Ticket) -> None:
    if ticket.csat_score is not None:
        raise TicketAlreadyRated(ticket.id, score=ticket.csat_score)


# --- errors ------------------------------------------------------------------------------------


class TicketRuleBroken(DomainError):
    """Base of the ticket's refused commands: the message is `template` filled with the context."""

    template: ClassVar[str] = "Ticket {ticket_id} refused the command"

    def __init__(self, ticket_id: UUID, **context: Any) -> None:
        super().__init__(
            self.template.format(ticket_id=ticket_id, **context),
            ticket_id=str(ticket_id),
            **context,
        )
        self.ticket_id = ticket_id


class TicketNotActive(TicketRuleBroken):
    """Only an open ticket, or one waiting on the customer, can be worked on."""

    template = "Ticket {ticket_id} is {status}"


class TicketNotWaitingOnCustomer(TicketRuleBroken):
    """Only a ticket waiting on the customer can be resumed."""

    template = "Ticket {ticket_id} is {status}, not waiting on the customer"


class TicketNotResolved(TicketRuleBroken):
    """Closing, rating or reopening a ticket needs it resolved first."""

    template = "Ticket {ticket_id} is {status}, not resolved"


class ClosedTicketCannotBeReopened(TicketRuleBroken):
    """A closed ticket is final; a follow-up needs a new ticket."""

    template = "Ticket {ticket_id} is closed and cannot be reopened"


class TicketReopenWindowExpired(TicketRuleBroken):
    """A resolved ticket can be reopened only within 14 days (REOPEN_WINDOW) of its resolution."""

    template = (
        "Ticket {ticket_id} was resolved at {resolved_at:%Y-%m-%d %H:%M} UTC, over 14 days ago"
    )


class TicketCannotBeDeEscalated(TicketRuleBroken):
    """A ticket's escalation level only goes up."""

    template = "Ticket {ticket_id} is at escalation level {current}, cannot go down to {level}"


class TicketAlreadyRated(TicketRuleBroken):
    """A customer rates a ticket once."""

    template = "Ticket {ticket_id} was rated {score} already"


class InvalidTicketValue(InvalidValue):
    """A ticket command got a malformed value."""

    def __init__(self, ticket_id: UUID, field_name: str, value: object, reason: str) -> None:
        super().__init__(field_name, value, reason)
        self.context["ticket_id"] = str(ticket_id)
        self.ticket_id = ticket_id


class EscalationLevelOutOfRange(InvalidTicketValue):
    """Escalation levels run from 1 to 3."""


class CsatScoreOutOfRange(InvalidTicketValue):
    """CSAT scores run from 1 to 5."""
