"""The customer's events, and the value types they carry (kinds, contacts, consents, tiers)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.personal import REDACTED, PersonalData, personal_keys
from domain.shared import CreationEvent, DomainEvent

if TYPE_CHECKING:
    from domain.customer.aggregate import Customer

CustomerKind = Literal["company", "person"]
InteractionKind = Literal["call", "visit", "email", "wechat", "meeting"]
ConsentChannel = Literal["email", "sms", "phone", "wechat"]
LegalBasis = Literal["consent", "contract", "legal_obligation", "legitimate_interests"]
Tier = Literal["standard", "silver", "gold", "platinum"]
ProfileField = Literal["name", "email", "phone", "region", "industry"]


class Contact(BaseModel):
    """A person we deal with at the customer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: UUID
    name: PersonalData[str]
    title: str
    email: PersonalData[str | None]
    phone: PersonalData[str | None]

    def redacted(self) -> Contact:
        """This contact as it reads once its customer's personal data is erased."""
        return self.model_copy(
            update={"name": REDACTED, "email": redact(self.email), "phone": redact(self.phone)}
        )


def redact(value: str | None) -> str | None:
    """What a personal value reads as after erasure (an absent value stays absent)."""
    return None if value is None else REDACTED


class Consent(BaseModel):
    """The customer's current answer for one channel, and on which legal basis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    granted: bool
    legal_basis: LegalBasis
    recorded_at: datetime


_METADATA = set(DomainEvent.model_fields)  # identity, time and who: not the customer's state


class CustomerRegistered(CreationEvent):
    """A customer was registered."""

    TYPE: ClassVar[str] = "crm.customer.registered"

    kind: CustomerKind
    name: PersonalData[str]
    email: PersonalData[str | None]
    phone: PersonalData[str | None]
    region: str
    industry: str
    owner: str
    source: str

    def create(self) -> Customer:
        from domain.customer.aggregate import Customer  # the aggregate module imports this one

        return Customer.born(self, **self.model_dump(exclude=_METADATA))


class CustomerEvent(DomainEvent):
    """Base of the events that change an existing customer."""


class CustomerProfileUpdated(CustomerEvent):
    """Some profile fields changed; only those are recorded (None clears email or phone)."""

    TYPE: ClassVar[str] = "crm.customer.profile_updated"

    changes: Annotated[dict[ProfileField, str | None], personal_keys("name", "email", "phone")]

    def apply(self, aggregate: Customer) -> None:
        for field_name, value in self.changes.items():
            setattr(aggregate, field_name, value)


class CustomerContactAdded(CustomerEvent):
    """A contact person was added to the customer."""

    TYPE: ClassVar[str] = "crm.customer.contact_added"

    contact: Contact

    def apply(self, aggregate: Customer) -> None:
        aggregate.contacts[self.contact.contact_id] = self.contact


class CustomerContactRemoved(CustomerEvent):
    """A contact person was removed from the customer."""

    TYPE: ClassVar[str] = "crm.customer.contact_removed"

    contact_id: UUID

    def apply(self, aggregate: Customer) -> None:
        del aggregate.contacts[self.contact_id]


class CustomerTagged(CustomerEvent):
    """The customer got a tag."""

    TYPE: ClassVar[str] = "crm.customer.tagged"

    tag: str

    def apply(self, aggregate: Customer) -> None:
        aggregate.tags.add(self.tag)


class CustomerUntagged(CustomerEvent):
    """A tag was taken off the customer."""

    TYPE: ClassVar[str] = "crm.customer.untagged"

    tag: str

    def apply(self, aggregate: Customer) -> None:
        aggregate.tags.discard(self.tag)


class CustomerOwnerAssigned(CustomerEvent):
    """The customer got a new owner (the previous one is kept for workload projections)."""

    TYPE: ClassVar[str] = "crm.customer.owner_assigned"

    owner: str
    previous_owner: str

    def apply(self, aggregate: Customer) -> None:
        aggregate.owner = self.owner


class CustomerInteractionLogged(CustomerEvent):
    """A call, visit, email, WeChat or meeting with the customer took place."""

    TYPE: ClassVar[str] = "crm.customer.interaction_logged"

    interaction_id: UUID
    kind: InteractionKind
    summary: PersonalData[str]
    occurred_at: datetime
    contact_id: UUID | None = None

    def apply(self, aggregate: Customer) -> None:
        aggregate.interaction_ids.add(self.interaction_id)
        last = aggregate.last_interaction_at
        if last is None or self.occurred_at > last:
            aggregate.last_interaction_at = self.occurred_at


class CustomerConsentRecorded(CustomerEvent):
    """The customer granted or withdrew consent to be contacted on a channel."""

    TYPE: ClassVar[str] = "crm.customer.consent_recorded"

    channel: ConsentChannel
    granted: bool
    legal_basis: LegalBasis

    def apply(self, aggregate: Customer) -> None:
        aggregate.consents[self.channel] = Consent(
            granted=self.granted, legal_basis=self.legal_basis, recorded_at=self.timestamp
        )
        if not self.granted:  # a withdrawal ends every campaign that reaches them on it
            aggregate.campaigns = {
                c: channel for c, channel in aggregate.campaigns.items() if channel != self.channel
            }


class CustomerTierChanged(CustomerEvent):
    """The customer moved to another service tier."""

    TYPE: ClassVar[str] = "crm.customer.tier_changed"

    tier: Tier
    previous_tier: Tier
    reason: str

    def apply(self, aggregate: Customer) -> None:
        aggregate.tier = self.tier


class CustomerMerged(CustomerEvent):
    """This customer was a duplicate and now lives on in the survivor; it is read-only."""

    TYPE: ClassVar[str] = "crm.customer.merged"

    survivor_id: UUID

    def apply(self, aggregate: Customer) -> None:
        aggregate.merged_into = self.survivor_id


class CustomerAbsorbedDuplicate(CustomerEvent):
    """This customer took over a duplicate, with the tags and contacts it did not have yet."""

    TYPE: ClassVar[str] = "crm.customer.absorbed_duplicate"

    duplicate_id: UUID
    tags: tuple[str, ...]
    contacts: tuple[Contact, ...]

    def apply(self, aggregate: Customer) -> None:
        aggregate.absorbed_ids.add(self.duplicate_id)
        aggregate.tags.update(self.tags)
        aggregate.contacts.update({contact.contact_id: contact for contact in self.contacts})


class CustomerErased(CustomerEvent):
    """The customer's personal data was erased (GDPR/PIPL): its key, and the keys of `records`
    (tickets, tasks, leads about the customer), were destroyed with this event.

    Carries no personal data: who erased is the actor, `reason` says why.
    """

    TYPE: ClassVar[str] = "crm.customer.erased"

    reason: str
    records: tuple[UUID, ...] = ()

    def erased_subjects(self) -> tuple[UUID, ...]:
        return (self.originator_id, *self.records)

    def apply(self, aggregate: Customer) -> None:
        # The same state a replay reads once the key is gone, so live and replayed agree.
        aggregate.name = REDACTED
        aggregate.email = redact(aggregate.email)
        aggregate.phone = redact(aggregate.phone)
        aggregate.contacts = {i: c.redacted() for i, c in aggregate.contacts.items()}
        aggregate.id_number = redact(aggregate.id_number)
        aggregate.bank_account = redact(aggregate.bank_account)
        aggregate.campaigns = {}  # nobody is contacted about an erased person
        aggregate.erased_at = self.timestamp


class CustomerEnrolledInCampaign(CustomerEvent):
    """The customer joined a marketing campaign that will contact them on `channel`."""

    TYPE: ClassVar[str] = "crm.customer.enrolled_in_campaign"

    campaign: str
    channel: ConsentChannel

    def apply(self, aggregate: Customer) -> None:
        aggregate.campaigns = {**aggregate.campaigns, self.campaign: self.channel}


class CustomerBillingDetailsRecorded(CustomerEvent):
    """The numbers invoicing needs: the customer's ID number (a person's ID card, a company's
    tax ID) and bank account; None clears one."""

    TYPE: ClassVar[str] = "crm.customer.billing_details_recorded"

    id_number: PersonalData[str | None]
    bank_account: PersonalData[str | None]

    def apply(self, aggregate: Customer) -> None:
        aggregate.id_number = self.id_number
        aggregate.bank_account = self.bank_account
