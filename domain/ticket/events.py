"""The ticket's events, and the channels and statuses they carry."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from domain.personal import PersonalData
from domain.shared import CreationEvent, DomainEvent
from domain.sla import Priority

if TYPE_CHECKING:
    from domain.ticket.aggregate import Ticket

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


class SlaMeasure(StrEnum):
    """Which of a ticket's SLA due times: the first response or the resolution."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class TicketEvent(DomainEvent):
    """Base of the ticket's events."""


class TicketOpened(CreationEvent):
    """A customer's request became a ticket, with the SLA due times decided at opening."""

    TYPE: ClassVar[str] = "crm.ticket.opened"
    class_version: ClassVar[int] = 2

    customer_id: UUID
    channel: Channel
    subject: PersonalData[str]
    description: PersonalData[str]
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
        from domain.ticket.aggregate import Ticket  # the aggregate module imports this one

        opened = self.model_dump(exclude=set(DomainEvent.model_fields))  # event fields are state
        return Ticket.born(self, status=TicketStatus.OPEN, **opened)

    def data_subject_id(self) -> UUID:
        return self.customer_id


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


class TicketSlaAtRisk(TicketEvent):
    """75 % of an SLA target's business time has passed and the target is not met yet."""

    TYPE: ClassVar[str] = "crm.ticket.sla_at_risk"

    measure: SlaMeasure
    due: datetime

    def apply(self, aggregate: Ticket) -> None:
        aggregate.sla_at_risk[self.measure] = self.due


class TicketSlaBreached(TicketEvent):
    """An SLA due time passed with the SLA clock running and the target not met."""

    TYPE: ClassVar[str] = "crm.ticket.sla_breached"

    measure: SlaMeasure
    due: datetime

    def apply(self, aggregate: Ticket) -> None:
        aggregate.sla_breached[self.measure] = self.due


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

    resolution: PersonalData[str]
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
    comment: PersonalData[str]

    def apply(self, aggregate: Ticket) -> None:
        aggregate.csat_score = self.score
