"""The key-account saga's own records: each customer's deals as the log has told them so far, and
the alerts raised.

`AccountPortfolio` follows a customer's opportunities (opened, won, lost, reopened) in log order,
applying each opportunity event once (by its version), so when the saga reaches a ticket event
the portfolio shows the deals that were open at that point of the log, on every replay.
A `KeyAccountAlert` records that a cause was handled (and whom it alerted, maybe nobody), so
re-running the saga never decides a cause again on a later portfolio.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from domain.shared import Aggregate, CreationEvent, DomainEvent
from sagas.base import SAGA_NAMESPACE


class TrackedDeal(BaseModel):
    """What the portfolio knows of one opportunity."""

    model_config = ConfigDict(frozen=True)

    owner: str
    title: str
    is_open: bool
    version: int  # of the opportunity event last applied


def portfolio_id(customer_id: UUID) -> UUID:
    return uuid5(SAGA_NAMESPACE, f"key_account_alert/portfolio/{customer_id}")


class PortfolioStarted(CreationEvent):
    """The saga began following a customer's deals (with its first opportunity)."""

    TYPE: ClassVar[str] = "crm.key_account_alert.portfolio_started"

    customer_id: UUID

    def create(self) -> AccountPortfolio:
        return AccountPortfolio.born(self, customer_id=self.customer_id)


class DealTracked(DomainEvent):
    """An opportunity of the customer was opened, won, lost or reopened."""

    TYPE: ClassVar[str] = "crm.key_account_alert.deal_tracked"

    opportunity_id: UUID
    deal: TrackedDeal

    def apply(self, aggregate: AccountPortfolio) -> None:
        aggregate.deals[self.opportunity_id] = self.deal


class AccountPortfolio(Aggregate):
    """A customer's opportunities, open or closed, as of the saga's position in the log."""

    TYPE: ClassVar[str] = "crm.key_account_alert.portfolio"

    customer_id: UUID
    deals: dict[UUID, TrackedDeal] = Field(default_factory=dict)

    @classmethod
    def start(cls, customer_id: UUID) -> AccountPortfolio:
        return cls._start(PortfolioStarted, portfolio_id(customer_id), customer_id=customer_id)

    def track(self, opportunity_id: UUID, deal: TrackedDeal) -> None:
        """Record the deal's state; an opportunity event seen before changes nothing."""
        known = self.deals.get(opportunity_id)
        if known is None or deal.version > known.version:
            self._trigger(DealTracked, opportunity_id=opportunity_id, deal=deal)

    def open_deals(self) -> dict[UUID, TrackedDeal]:
        return {i: deal for i, deal in self.deals.items() if deal.is_open}


class KeyAccountAlertRaised(CreationEvent):
    """A ticket event on a customer was answered with tasks for these opportunities' owners."""

    TYPE: ClassVar[str] = "crm.key_account_alert.raised"

    ticket_id: UUID
    customer_id: UUID
    reason: str
    opportunity_ids: list[UUID]
    owners: list[str]

    def create(self) -> KeyAccountAlert:
        return KeyAccountAlert.born(self, **self.model_dump(exclude=set(DomainEvent.model_fields)))


class KeyAccountAlert(Aggregate):
    """One handled cause of the key-account saga (its id derives from the cause)."""

    TYPE: ClassVar[str] = "crm.key_account_alert.alert"

    ticket_id: UUID
    customer_id: UUID
    reason: str
    opportunity_ids: list[UUID]
    owners: list[str]

    @classmethod
    def raise_alert(
        cls,
        alert_id: UUID,
        *,
        ticket_id: UUID,
        customer_id: UUID,
        reason: str,
        deals: dict[UUID, TrackedDeal],
    ) -> KeyAccountAlert:
        return cls._start(
            KeyAccountAlertRaised,
            alert_id,
            ticket_id=ticket_id,
            customer_id=customer_id,
            reason=reason,
            opportunity_ids=sorted(deals),
            owners=sorted({deal.owner for deal in deals.values()}),
        )
