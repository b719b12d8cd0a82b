"""Sales -> service: a won deal opens an onboarding ticket, may raise the tier, and gives the
service team a task.

The customer's won total (per currency) is the saga's own record, `WonTotal`, kept in the CRM's
log and saved with the reaction: each win is counted once (by opportunity id), in log order, so
the same history gives the same tiers on every replay without reading other opportunities.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from domain.customer import Tier
from domain.opportunity import Opportunity, OpportunityWon
from domain.shared import Aggregate, CreationEvent, DomainEvent
from domain.sla import BusinessCalendar, Priority, SlaPolicy, business_days
from domain.task import Task
from domain.ticket import Ticket
from domain.values import Money
from sagas.base import SAGA_NAMESPACE, Records, Saga, live_customer

TIER_ORDER: tuple[Tier, ...] = ("standard", "silver", "gold", "platinum")
DEFAULT_CNY_THRESHOLDS: dict[Tier, Decimal] = {
    "silver": Decimal(100_000),
    "gold": Decimal(500_000),
    "platinum": Decimal(2_000_000),
}


class OnboardingRules(BaseModel):
    """What a won deal sets in motion; `tier_thresholds[currency][tier]` is the won total
    (in that currency) from which a customer belongs in `tier`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_team: str = "onboarding"
    task_business_days: float = Field(default=2.0, gt=0)
    ticket_channel: str = "email"
    tier_thresholds: dict[str, dict[Tier, Decimal]] = Field(
        default_factory=lambda: {"CNY": dict(DEFAULT_CNY_THRESHOLDS)}
    )

    def tier_for(self, total: Money) -> Tier:
        """The highest tier whose threshold the total reaches (`standard` when none)."""
        reached = [
            tier
            for tier, threshold in self.tier_thresholds.get(total.currency, {}).items()
            if total.amount >= threshold
        ]
        return max(reached, key=TIER_ORDER.index, default="standard")


class DealWonOnboardingSaga(Saga):
    """On OpportunityWon: a P3 onboarding ticket for the customer, the tier its won total earns
    (raised only, never lowered), and a task for the service team."""

    name: ClassVar[str] = "deal_won_onboarding"
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]] = (OpportunityWon,)

    def __init__(self, rules: OnboardingRules, policy: SlaPolicy, calendar: BusinessCalendar):
        self.rules = rules
        self.policy = policy
        self.calendar = calendar

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        if not isinstance(event, OpportunityWon):
            return []
        ticket_id = self.record_id(event, "onboarding-ticket")
        if records.exists(ticket_id):
            return []  # handled already: every effect of the win was saved together
        deal = records.load(Opportunity, event.originator_id)
        customer = live_customer(records, deal.customer_id)
        ticket = Ticket.open(
            ticket_id,
            customer.id,
            self.rules.ticket_channel,
            f"Onboarding: {deal.title}",
            f"Won {event.amount.amount} {event.amount.currency} ({event.contract_reference}).",
            Priority.P3,
            "onboarding",
            self.policy,
            self.calendar,
        )
        total = records.find(WonTotal, won_total_id(customer.id)) or WonTotal.start(customer.id)
        total.count(deal.id, event.amount)
        changed: list[Aggregate] = [ticket, total]
        earned = self.rules.tier_for(total.of(event.amount.currency))
        if TIER_ORDER.index(earned) > TIER_ORDER.index(customer.tier):
            won = total.of(event.amount.currency)
            customer.change_tier(earned, reason=f"won total {won.amount} {won.currency}")
            changed.append(customer)
        task = Task.create(
            task_id=self.record_id(event, "onboarding-task"),
            title=f"Onboard {customer.name}: {deal.title}",
            team=self.rules.service_team,
            related_kind="customer",
            related_id=customer.id,
            due_at=self.calendar.add_business_time(
                event.timestamp, business_days(self.rules.task_business_days, self.calendar)
            ),
            source_saga=self.name,
            cause_id=event.event_id,
        )
        return [*changed, task]


# --- the won total: a customer's won deals, summed per currency, recorded --------------------


def won_total_id(customer_id: UUID) -> UUID:
    return uuid5(SAGA_NAMESPACE, f"deal_won_onboarding/won-total/{customer_id}")


class WonTotalStarted(CreationEvent):
    """The saga began summing a customer's won deals (with its first win)."""

    TYPE: ClassVar[str] = "crm.deal_won_onboarding.won_total_started"

    customer_id: UUID

    def create(self) -> WonTotal:
        return WonTotal.born(self, customer_id=self.customer_id)


class WinCounted(DomainEvent):
    """A won deal's final amount was added to the customer's total in its currency."""

    TYPE: ClassVar[str] = "crm.deal_won_onboarding.win_counted"

    opportunity_id: UUID
    amount: Money

    def apply(self, aggregate: WonTotal) -> None:
        currency = self.amount.currency
        aggregate.totals[currency] = aggregate.totals.get(currency, Decimal(0)) + self.amount.amount
        aggregate.counted.append(self.opportunity_id)


class WonTotal(Aggregate):
    """What a customer has been won for, per currency (currencies are never added up)."""

    TYPE: ClassVar[str] = "crm.deal_won_onboarding.won_total"

    customer_id: UUID
    totals: dict[str, Decimal] = Field(default_factory=dict)
    counted: list[UUID] = Field(default_factory=list)

    @classmethod
    def start(cls, customer_id: UUID) -> WonTotal:
        return cls._start(WonTotalStarted, won_total_id(customer_id), customer_id=customer_id)

    def count(self, opportunity_id: UUID, amount: Money) -> None:
        if opportunity_id not in self.counted:  # a win is counted once
            self._trigger(WinCounted, opportunity_id=opportunity_id, amount=amount)

    def of(self, currency: str) -> Money:
        return Money(amount=self.totals.get(currency, Decimal(0)), currency=currency)
