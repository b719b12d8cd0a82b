"""The customers routes' request and response bodies (the routes live in api/routes/customers)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, model_validator
from pydantic.config import JsonDict

from api.commands import CommandPublic
from domain.customer import (
    ConsentChannel,
    CustomerKind,
    InteractionKind,
    LegalBasis,
    Tier,
)

CUSTOMER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
DUPLICATE_ID = "9b2f3c1e-52a4-4d0b-a6b8-1f0f4b8f6a31"
CONTACT_ID = "3d6f0a2e-6c84-4b8e-9f3b-5a9f1b2c7d10"
EVENT_ID = "c56a4180-65aa-42ec-a945-5fd21dec0538"

# PostgreSQL text cannot hold NUL: refused here, it would otherwise reach the read models.
NO_NUL = r"^[^\x00]*$"


def _examples(*examples: JsonDict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


def _response_examples(*examples: JsonDict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# --- requests --------------------------------------------------------------------------------


class RegisterCustomerRequest(BaseModel):
    """A new customer; `owner` defaults to the caller."""

    model_config = _examples(
        {
            "kind": "company",
            "name": "Acme Trading Co.",
            "region": "east",
            "email": "buyer@acme.example",
            "phone": "+86 138 0013 8000",
            "industry": "retail",
            "source": "trade-show",
        }
    )

    kind: CustomerKind
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    region: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    owner: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40, pattern=NO_NUL)
    industry: str = Field(default="", max_length=100, pattern=NO_NUL)
    source: str = Field(default="", max_length=100, pattern=NO_NUL)
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


class UpdateCustomerRequest(BaseModel):
    """A JSON merge patch of the profile: a field left out is kept, `null` clears it.

    Only email, phone and industry can be cleared; `null` for name or region is refused (422).
    """

    model_config = _examples({"email": "orders@acme.example", "phone": None, "region": "north"})

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40, pattern=NO_NUL)
    region: str | None = Field(default=None, min_length=1, max_length=64, pattern=NO_NUL)
    industry: str | None = Field(default=None, max_length=100, pattern=NO_NUL)

    @model_validator(mode="after")
    def _required_fields_are_not_cleared(self) -> UpdateCustomerRequest:
        for field in ("name", "region"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be cleared, only changed")
        return self


class AddContactRequest(BaseModel):
    """A contact person at the customer; `id` lets a retry add the same contact once."""

    model_config = _examples(
        {"name": "Zhang Min", "title": "Purchasing manager", "email": "zhang.min@acme.example"}
    )

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    title: str = Field(default="", max_length=200, pattern=NO_NUL)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40, pattern=NO_NUL)
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


class TagCustomerRequest(BaseModel):
    """A tag to put on the customer (tagging twice is a no-op)."""

    model_config = _examples({"tag": "vip"})

    tag: str = Field(
        min_length=1, max_length=64, pattern=NO_NUL, description="Stored stripped, lower-case."
    )


class AssignCustomerOwnerRequest(BaseModel):
    """Who owns the customer from now on; the caller must be allowed to see it afterwards."""

    model_config = _examples({"owner": "mei"})

    owner: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


class LogInteractionRequest(BaseModel):
    """A call, visit, email, WeChat or meeting that took place; `occurred_at` defaults to now."""

    model_config = _examples(
        {
            "kind": "visit",
            "summary": "Walked the warehouse with the buyer",
            "occurred_at": "2025-03-01T09:30:00Z",
            "contact_id": CONTACT_ID,
        }
    )

    kind: InteractionKind
    summary: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)
    occurred_at: AwareDatetime | None = None
    contact_id: UUID | None = Field(default=None, description="One of the customer's contacts.")
    id: UUID | None = Field(default=None, description="The interaction's id (repeats are no-ops).")


class RecordConsentRequest(BaseModel):
    """The customer granted or withdrew consent to be contacted on a channel."""

    model_config = _examples({"channel": "email", "granted": True, "legal_basis": "consent"})

    channel: ConsentChannel
    granted: bool
    legal_basis: LegalBasis


class RecordBillingDetailsRequest(BaseModel):
    """The numbers invoicing needs; null clears one. Personal data: sealed at rest, shown as
    their last 4 characters to callers without the personal-data right."""

    model_config = _examples(
        {"id_number": "91310000MA1FL2XQ3B", "bank_account": "6222021234567890128"}
    )

    id_number: str | None = Field(
        max_length=64, pattern=NO_NUL, description="A person's ID card or a company's tax ID."
    )
    bank_account: str | None = Field(max_length=64, pattern=NO_NUL)


class ChangeTierRequest(BaseModel):
    """The customer's new service tier, and why."""

    model_config = _examples({"tier": "gold", "reason": "yearly volume above 1M CNY"})

    tier: Tier
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL)


class MergeCustomersRequest(BaseModel):
    """The duplicate to merge into the customer of the path, which survives."""

    model_config = _examples({"duplicate_id": DUPLICATE_ID})

    duplicate_id: UUID


# --- responses -------------------------------------------------------------------------------


class ContactAddedPublic(CommandPublic):
    """The command's answer, plus the id of the contact (to remove it later)."""

    model_config = _response_examples(
        {"id": CUSTOMER_ID, "version": 4, "position": 1043, "contact_id": CONTACT_ID}
    )

    contact_id: UUID


class ContactPublic(BaseModel):
    """A contact person; email and phone are null for callers who may not see them."""

    contact_id: UUID
    name: str
    title: str
    email: str | None
    phone: str | None


class ConsentPublic(BaseModel):
    """The customer's current answer on one channel."""

    granted: bool
    legal_basis: LegalBasis
    recorded_at: datetime


class CustomerCountsPublic(BaseModel):
    """How many leads, deals and tickets the customer (with its merged duplicates) has.

    The opportunity counts are null for callers who may not see deals.
    """

    leads: int
    open_opportunities: int | None = None
    won_opportunities: int | None = None
    lost_opportunities: int | None = None
    open_tickets: int
    closed_tickets: int


PROFILE_EXAMPLE: JsonDict = {
    "customer_id": CUSTOMER_ID,
    "kind": "company",
    "name": "Acme Trading Co.",
    "email": "buyer@acme.example",
    "phone": "+8613800138000",
    "region": "east",
    "industry": "retail",
    "owner": "mei",
    "source": "trade-show",
    "tier": "gold",
    "registered_at": "2025-02-01T08:00:00Z",
    "updated_at": "2025-03-01T09:31:00Z",
    "last_interaction_at": "2025-03-01T09:30:00Z",
    "merged_into": None,
    "merged_at": None,
}
CONSENTS_EXAMPLE: JsonDict = {
    "email": {"granted": True, "legal_basis": "consent", "recorded_at": "2025-02-01T08:00:00Z"}
}


class CampaignEnrolmentPublic(BaseModel):
    """A marketing campaign the customer is enrolled in, and the consented channel it uses."""

    campaign: str
    channel: ConsentChannel
    enrolled_at: datetime


class CustomerProfile(BaseModel):
    """The fields every view of a customer shows; email and phone are masked for callers
    without the personal-data right (`138****0000`, `z***@example.com`) and read `[erased]`
    once the customer's personal data was erased."""

    customer_id: UUID
    kind: CustomerKind
    name: str
    email: str | None
    phone: str | None
    region: str
    industry: str
    owner: str
    source: str
    tier: Tier
    registered_at: datetime
    updated_at: datetime
    last_interaction_at: datetime | None
    merged_into: UUID | None = Field(description="Set once this duplicate was merged away.")
    merged_at: datetime | None
    erased_at: datetime | None = Field(
        default=None, description="When the customer's personal data was erased (docs/privacy.md)."
    )
    id_number: str | None = Field(default=None, description="ID card or tax ID (masked: ****1234).")
    bank_account: str | None = Field(default=None, description="Bank account (masked: ****1234).")
    tags: list[str]
    consents: dict[ConsentChannel, ConsentPublic]


class Customer360Public(CustomerProfile):
    """The customer's 360° view: profile, contacts, tags, consents, campaigns, deals, tickets.

    A survivor's counts and totals include the duplicates merged into it (`merged_ids`).
    `won_totals` (won deal amounts by currency) is null for callers who may not see deals.
    """

    model_config = _response_examples(
        {
            **PROFILE_EXAMPLE,
            "merged_ids": [DUPLICATE_ID],
            "contacts": [
                {
                    "contact_id": CONTACT_ID,
                    "name": "Zhang Min",
                    "title": "Purchasing manager",
                    "email": "zhang.min@acme.example",
                    "phone": None,
                }
            ],
            "tags": ["vip"],
            "consents": CONSENTS_EXAMPLE,
            "counts": {
                "leads": 1,
                "open_opportunities": 1,
                "won_opportunities": 2,
                "lost_opportunities": 0,
                "open_tickets": 1,
                "closed_tickets": 3,
            },
            "won_totals": {"CNY": "148000.00"},
            "avg_csat": 4.5,
        }
    )

    merged_ids: list[UUID]
    contacts: list[ContactPublic]
    campaigns: list[CampaignEnrolmentPublic] = []
    counts: CustomerCountsPublic
    won_totals: dict[str, Decimal] | None = None
    avg_csat: float | None


class CustomerPublic(CustomerProfile):
    """A customer as the search lists it."""

    model_config = _response_examples({**PROFILE_EXAMPLE, "tags": ["vip"], "consents": {}})


class CustomersPublic(BaseModel):
    """A page of customers by name; pass `next_cursor` as `cursor` for the next one."""

    data: list[CustomerPublic]
    next_cursor: str | None


class TimelineEntryPublic(BaseModel):
    """One event about the customer, a merged duplicate, or its leads, deals and tickets."""

    model_config = _response_examples(
        {
            "event_id": EVENT_ID,
            "customer_id": CUSTOMER_ID,
            "aggregate_id": CUSTOMER_ID,
            "aggregate_type": "customer",
            "aggregate_version": 3,
            "type": "crm.customer.tagged.v1",
            "actor": "user:mei",
            "at": "2025-03-01T09:31:00Z",
            "summary": "Customer tagged: vip",
            "payload": {"tag": "vip"},
        }
    )

    event_id: UUID
    customer_id: UUID
    aggregate_id: UUID
    aggregate_type: str
    aggregate_version: int
    type: str
    actor: str
    at: datetime
    summary: str
    payload: dict[str, Any]


class TimelinePublic(BaseModel):
    """A page of the timeline, newest first; pass `next_cursor` as `cursor` for the next one."""

    data: list[TimelineEntryPublic]
    next_cursor: str | None
