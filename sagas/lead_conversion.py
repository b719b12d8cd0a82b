"""Marketing -> sales: a qualified lead from an auto-converting channel, or one whose conversion
was requested (from any channel), becomes a customer (found by its normalised email or phone, else
registered) and an opportunity for the lead's owner.

Never two customers or two opportunities for one conversion: both ids derive from the cause, the
lead is converted in the same transaction, and a converted lead is left alone. Losing a race on
an email or phone claim to a user registering the same customer rolls everything back; the
runner then decides again and finds that customer through the claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from domain.customer import Customer
from domain.lead import Channel, Lead, LeadConversionRequested, LeadQualified
from domain.opportunity import Opportunity
from domain.shared import Aggregate, DomainEvent
from domain.uniqueness import CUSTOMER_EMAIL, CUSTOMER_PHONE, UniqueClaim, claim_id
from domain.values import Money
from sagas.base import Records, Saga, live_customer


class ConversionRules(BaseModel):
    """Which channels convert on qualification, and what a new opportunity starts with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_convert_channels: frozenset[Channel] = frozenset()
    fallback_owner: str = "queue:sales"  # for a lead nobody owns
    opportunity_amount: Decimal = Field(default=Decimal(0), ge=0)
    currency: str = "CNY"
    expected_close_days: int = Field(default=90, gt=0)


class LeadConversionSaga(Saga):
    """On LeadQualified (auto-converting channels only) or LeadConversionRequested (any channel):
    customer, opportunity, converted lead."""

    name: ClassVar[str] = "lead_conversion"
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]] = (LeadQualified, LeadConversionRequested)

    def __init__(self, rules: ConversionRules, phone_region: str) -> None:
        self.rules = rules
        self.phone_region = phone_region

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        if not isinstance(event, LeadQualified | LeadConversionRequested):
            return []
        lead = records.load(Lead, event.originator_id)
        requested = isinstance(event, LeadConversionRequested)
        if not requested and lead.channel not in self.rules.auto_convert_channels:
            return []
        if lead.status != "qualified":
            return []  # converted already (by us or by hand), or disqualified since
        owner = lead.owner or self.rules.fallback_owner
        changed: list[Aggregate] = []
        customer = self._existing_customer(lead, records)
        if customer is None:
            customer = Customer.register(
                customer_id=self.record_id(event, "customer"),
                kind="company" if lead.company else "person",
                name=lead.company or lead.name,
                region=lead.region,
                owner=owner,
                email=lead.email,
                phone=lead.phone,
                source=f"lead:{lead.channel}",
                phone_region=self.phone_region,
            )
            changed += [customer, *claims_for(customer, records)]
        opportunity = Opportunity.open(
            opportunity_id=self.record_id(event, "opportunity"),
            customer_id=customer.id,
            title=f"{lead.interest or 'New business'}: {lead.company or lead.name}",
            amount=Money.of(self.rules.opportunity_amount, self.rules.currency),
            expected_close=(
                event.timestamp + timedelta(days=self.rules.expected_close_days)
            ).date(),
            owner=owner,
            source_lead_id=lead.id,
        )
        lead.convert(customer.id, opportunity.id)
        return [*changed, opportunity, lead]

    def _existing_customer(self, lead: Lead, records: Records) -> Customer | None:
        """The customer already holding the lead's email, else its phone (both normalised)."""
        for kind, value in ((CUSTOMER_EMAIL, lead.email), (CUSTOMER_PHONE, lead.phone)):
            claim = None if value is None else records.find(UniqueClaim, claim_id(kind, value))
            if claim is not None and claim.owner_id is not None:
                return live_customer(records, claim.owner_id)
        return None


def claims_for(customer: Customer, records: Records) -> list[UniqueClaim]:
    """The new customer's email and phone claims (taken afresh, or re-taken once released)."""
    claims = []
    for kind, value in ((CUSTOMER_EMAIL, customer.email), (CUSTOMER_PHONE, customer.phone)):
        if value is None:
            continue
        claim = records.find(UniqueClaim, claim_id(kind, value))
        if claim is None:
            claim = UniqueClaim.claim(kind, value, customer.id)
        else:
            claim.reclaim(customer.id)  # free: a held one would have named the customer
        claims.append(claim)
    return claims
