"""Service -> sales: trouble on a customer with open deals is told to the deals' owners.

A P1 ticket (opened, or raised to P1), a reopened ticket, or a CSAT rating at or below the
threshold gives each owner of the customer's open opportunities a task about the ticket. The
open opportunities come from the saga's `AccountPortfolio` (see sagas/account_portfolio.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.opportunity import (
    Opportunity,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityWon,
)
from domain.shared import Aggregate, DomainEvent
from domain.sla import BusinessCalendar, Priority
from domain.task import Task
from domain.ticket import Ticket, TicketOpened, TicketPriorityChanged, TicketRated, TicketReopened
from sagas.account_portfolio import (
    AccountPortfolio,
    KeyAccountAlert,
    TrackedDeal,
    portfolio_id,
)
from sagas.base import Records, Saga

DEAL_EVENTS = (OpportunityOpened, OpportunityWon, OpportunityLost, OpportunityReopened)
TICKET_EVENTS = (TicketOpened, TicketPriorityChanged, TicketReopened, TicketRated)


class KeyAccountRules(BaseModel):
    """Who hears of a key account's trouble, how soon, and which rating counts as trouble."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sales_team: str = "sales"
    task_business_hours: float = Field(default=4.0, gt=0)
    csat_alert_at_or_below: int = Field(default=2, ge=1, le=5)


class KeyAccountAlertSaga(Saga):
    """Follows customers' deals; on trouble with a ticket, tasks each open deal's owner."""

    name: ClassVar[str] = "key_account_alert"
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]] = (*DEAL_EVENTS, *TICKET_EVENTS)

    def __init__(self, rules: KeyAccountRules, calendar: BusinessCalendar) -> None:
        self.rules = rules
        self.calendar = calendar

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        if isinstance(event, DEAL_EVENTS):
            return self._follow_deal(event, records)
        reason = self._trouble(event)
        alert_id = self.record_id(event, "alert")
        if reason is None or records.exists(alert_id):
            return []  # no trouble, or handled already (with all its tasks)
        ticket = records.load(Ticket, event.originator_id)
        portfolio = records.find(AccountPortfolio, portfolio_id(ticket.customer_id))
        deals = portfolio.open_deals() if portfolio else {}
        alert = KeyAccountAlert.raise_alert(
            alert_id,
            ticket_id=ticket.id,
            customer_id=ticket.customer_id,
            reason=reason,
            deals=deals,
        )
        due = self.calendar.add_business_time(
            event.timestamp, timedelta(hours=self.rules.task_business_hours)
        )
        tasks = [
            Task.create(
                task_id=self.record_id(event, f"owner:{owner}"),
                title=f"Key account: {reason} on '{ticket.subject}' ({titles(deals, owner)})",
                team=self.rules.sales_team,
                assignee=owner,
                related_kind="ticket",
                related_id=ticket.id,
                due_at=due,
                priority="urgent" if ticket.priority is Priority.P1 else "high",
                source_saga=self.name,
                cause_id=event.event_id,
            )
            for owner in alert.owners
        ]
        return [alert, *tasks]

    def _trouble(self, event: DomainEvent) -> str | None:
        """Why this ticket event needs the account's sales owners (None: it does not)."""
        if isinstance(event, TicketOpened) and event.priority is Priority.P1:
            return "P1 ticket opened"
        if isinstance(event, TicketPriorityChanged) and event.priority is Priority.P1:
            return "ticket raised to P1"
        if isinstance(event, TicketReopened):
            return "ticket reopened"
        if isinstance(event, TicketRated) and event.score <= self.rules.csat_alert_at_or_below:
            return f"CSAT {event.score}"
        return None

    def _follow_deal(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        deal = records.load(Opportunity, event.originator_id)  # customer and owner never change
        portfolio = records.find(AccountPortfolio, portfolio_id(deal.customer_id))
        portfolio = portfolio or AccountPortfolio.start(deal.customer_id)
        is_open = isinstance(event, OpportunityOpened | OpportunityReopened)
        tracked = TrackedDeal(
            owner=deal.owner, title=deal.title, is_open=is_open, version=event.originator_version
        )
        portfolio.track(deal.id, tracked)
        return [portfolio] if portfolio.pending_events else []


def titles(deals: dict[UUID, TrackedDeal], owner: str) -> str:
    return ", ".join(sorted(deal.title for deal in deals.values() if deal.owner == owner))
