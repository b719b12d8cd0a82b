"""The ticket's rules (`check_*`, each raising one specific error) and those errors."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from uuid import UUID

from domain import values
from domain.shared import DomainError, InvalidValue, now
from domain.ticket.events import TicketStatus

if TYPE_CHECKING:
    from domain.ticket.aggregate import Ticket

REOPEN_WINDOW = timedelta(days=14)
ESCALATION_LEVELS = range(1, 4)
CSAT_SCORES = range(1, 6)
ACTIVE = frozenset({TicketStatus.OPEN, TicketStatus.WAITING_ON_CUSTOMER})

E = TypeVar("E", bound=StrEnum)


def check_choice(ticket_id: UUID, field_name: str, choices: type[E], value: E | str) -> E:
    """The value as a member of `choices`; InvalidTicketValue otherwise."""
    refuse = partial(InvalidTicketValue, ticket_id)
    values.check_choice(field_name, value, tuple(choices), refuse=refuse)
    return choices(value)


def check_text(ticket_id: UUID, field_name: str, value: str) -> None:
    """Refuse blank text with InvalidTicketValue (the command keeps the text as given)."""
    values.required_text(field_name, value, refuse=partial(InvalidTicketValue, ticket_id))


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
