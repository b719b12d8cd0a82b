"""Customers: who we sell to, how we reach them, what they agreed to, and merging duplicates."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from domain.shared import (
    Aggregate,
    CreationEvent,
    DomainError,
    DomainEvent,
    InvalidValue,
    NotFound,
    now,
)
from domain.values import DEFAULT_PHONE_REGION, normalise_email, normalise_phone

CustomerKind = Literal["company", "person"]
InteractionKind = Literal["call", "visit", "email", "wechat", "meeting"]
ConsentChannel = Literal["email", "sms", "phone", "wechat"]
LegalBasis = Literal["consent", "contract", "legal_obligation", "legitimate_interests"]
Tier = Literal["standard", "silver", "gold", "platinum"]
ProfileField = Literal["name", "email", "phone", "region", "industry"]


class Keep(Enum):
    """Marks a profile field that `update_profile` leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


class Contact(BaseModel):
    """A person we deal with at the customer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: UUID
    name: str
    title: str
    email: str | None
    phone: str | None


class Consent(BaseModel):
    """The customer's current answer for one channel, and on which legal basis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    granted: bool
    legal_basis: LegalBasis
    recorded_at: datetime


# --- events ------------------------------------------------------------------------------------

_METADATA = set(DomainEvent.model_fields)  # identity, time and who: not the customer's state


class CustomerRegistered(CreationEvent):
    """A customer was registered."""

    TYPE: ClassVar[str] = "crm.customer.registered"

    kind: CustomerKind
    name: str
    email: str | None
    phone: str | None
    region: str
    industry: str
    owner: str
    source: str

    def create(self) -> Customer:
        return Customer.born(self, **self.model_dump(exclude=_METADATA))


class CustomerEvent(DomainEvent):
    """Base of the events that change an existing customer."""


class CustomerProfileUpdated(CustomerEvent):
    """Some profile fields changed; only those are recorded (None clears email or phone)."""

    TYPE: ClassVar[str] = "crm.customer.profile_updated"

    changes: dict[ProfileField, str | None]

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
    summary: str
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


# --- aggregate ---------------------------------------------------------------------------------


class Customer(Aggregate):
    """A company or person we sell to; merged duplicates stay readable but refuse every command."""

    TYPE: ClassVar[str] = "crm.customer"

    kind: CustomerKind
    name: str
    email: str | None
    phone: str | None
    region: str
    industry: str
    owner: str
    source: str
    tier: Tier = "standard"
    tags: set[str] = Field(default_factory=set)
    contacts: dict[UUID, Contact] = Field(default_factory=dict)
    consents: dict[ConsentChannel, Consent] = Field(default_factory=dict)
    interaction_ids: set[UUID] = Field(default_factory=set)
    last_interaction_at: datetime | None = None
    merged_into: UUID | None = None
    absorbed_ids: set[UUID] = Field(default_factory=set)

    @field_serializer("tags", "interaction_ids", "absorbed_ids")
    def _sorted(self, values: set[Any]) -> list[Any]:
        return sorted(values)  # so equal states dump equally, whatever the set's history

    @property
    def is_merged(self) -> bool:
        """Whether this customer was merged into another one (and so is read-only)."""
        return self.merged_into is not None

    def has_consent(self, channel: ConsentChannel) -> bool:
        """Whether the customer currently agrees to be contacted on `channel`."""
        consent = self.consents.get(channel)
        return consent is not None and consent.granted

    @classmethod
    def register(
        cls,
        *,
        customer_id: UUID,
        kind: CustomerKind,
        name: str,
        region: str,
        owner: str,
        email: str | None = None,
        phone: str | None = None,
        industry: str = "",
        source: str = "",
        phone_region: str = DEFAULT_PHONE_REGION,
    ) -> Customer:
        """Register a customer; email and phone are normalised, blank ones mean none."""
        return cls._start(
            CustomerRegistered,
            customer_id,
            kind=check_choice("kind", kind, get_args(CustomerKind)),
            name=check_text("name", name),
            email=optional_email(email),
            phone=optional_phone(phone, phone_region),
            region=check_text("region", region),
            industry=industry.strip(),
            owner=check_text("owner", owner),
            source=source.strip(),
        )

    def update_profile(
        self,
        *,
        name: str | Keep = KEEP,
        email: str | None | Keep = KEEP,
        phone: str | None | Keep = KEEP,
        region: str | Keep = KEEP,
        industry: str | Keep = KEEP,
        phone_region: str = DEFAULT_PHONE_REGION,
    ) -> None:
        """Change the given fields (KEEP leaves one alone); records only what really changed."""
        check_not_merged(self)
        wanted: dict[ProfileField, str | None] = {}
        if not isinstance(name, Keep):
            wanted["name"] = check_text("name", name)
        if not isinstance(email, Keep):
            wanted["email"] = optional_email(email)
        if not isinstance(phone, Keep):
            wanted["phone"] = optional_phone(phone, phone_region)
        if not isinstance(region, Keep):
            wanted["region"] = check_text("region", region)
        if not isinstance(industry, Keep):
            wanted["industry"] = industry.strip()
        changes = {field: value for field, value in wanted.items() if getattr(self, field) != value}
        if changes:
            self._trigger(CustomerProfileUpdated, changes=changes)

    def add_contact(
        self,
        *,
        contact_id: UUID,
        name: str,
        title: str = "",
        email: str | None = None,
        phone: str | None = None,
        phone_region: str = DEFAULT_PHONE_REGION,
    ) -> None:
        """Add a contact person; adding the very same contact again is a no-op."""
        check_not_merged(self)
        contact = Contact(
            contact_id=contact_id,
            name=check_text("name", name),
            title=title.strip(),
            email=optional_email(email),
            phone=optional_phone(phone, phone_region),
        )
        if self.contacts.get(contact_id) == contact:
            return
        check_contact_id_is_free(self, contact_id)
        self._trigger(CustomerContactAdded, contact=contact)

    def remove_contact(self, contact_id: UUID) -> None:
        """Remove a contact person; an unknown contact id is refused."""
        check_not_merged(self)
        check_contact_exists(self, contact_id)
        self._trigger(CustomerContactRemoved, contact_id=contact_id)

    def tag(self, tag: str) -> None:
        """Tag the customer (stripped, lower-case); re-tagging is a no-op."""
        check_not_merged(self)
        normalised = normalise_tag(tag)
        if normalised not in self.tags:
            self._trigger(CustomerTagged, tag=normalised)

    def untag(self, tag: str) -> None:
        """Take a tag off the customer; untagging an absent tag is a no-op."""
        check_not_merged(self)
        normalised = normalise_tag(tag)
        if normalised in self.tags:
            self._trigger(CustomerUntagged, tag=normalised)

    def assign_owner(self, owner: str) -> None:
        """Hand the customer to another owner; assigning the same owner is a no-op."""
        check_not_merged(self)
        owner = check_text("owner", owner)
        if owner != self.owner:
            self._trigger(CustomerOwnerAssigned, owner=owner, previous_owner=self.owner)

    def log_interaction(
        self,
        *,
        interaction_id: UUID,
        kind: InteractionKind,
        summary: str,
        occurred_at: datetime,
        contact_id: UUID | None = None,
    ) -> None:
        """Log a past interaction; logging the same interaction id again is a no-op (a retry)."""
        check_not_merged(self)
        check_choice("kind", kind, get_args(InteractionKind))
        summary = check_text("summary", summary)
        check_not_in_future(self, interaction_id, occurred_at)
        if contact_id is not None:
            check_contact_exists(self, contact_id)
        if interaction_id in self.interaction_ids:
            return
        self._trigger(
            CustomerInteractionLogged,
            interaction_id=interaction_id,
            kind=kind,
            summary=summary,
            occurred_at=occurred_at,
            contact_id=contact_id,
        )

    def record_consent(
        self, channel: ConsentChannel, *, granted: bool, legal_basis: LegalBasis
    ) -> None:
        """Record a grant or withdrawal; repeating the current answer and basis is a no-op."""
        check_not_merged(self)
        check_choice("channel", channel, get_args(ConsentChannel))
        check_choice("legal_basis", legal_basis, get_args(LegalBasis))
        current = self.consents.get(channel)
        if current is not None and (current.granted, current.legal_basis) == (granted, legal_basis):
            return
        self._trigger(
            CustomerConsentRecorded, channel=channel, granted=granted, legal_basis=legal_basis
        )

    def change_tier(self, tier: Tier, *, reason: str) -> None:
        """Move the customer to another tier, saying why; the same tier is a no-op."""
        check_not_merged(self)
        check_choice("tier", tier, get_args(Tier))
        reason = check_text("reason", reason)
        if tier != self.tier:
            self._trigger(CustomerTierChanged, tier=tier, previous_tier=self.tier, reason=reason)

    def merge_into(self, survivor: Customer) -> None:
        """Mark this duplicate as merged into `survivor`; from then on it refuses every command.

        Takes the survivor aggregate, not its id, so that merging into a merged customer is refused
        here too. The application also calls `survivor.absorb(duplicate)` (either order works) and
        saves both aggregates atomically.
        """
        check_not_merged(self)
        check_not_merging_into_itself(self.id, survivor.id)
        check_survivor_not_merged(survivor)
        self._trigger(CustomerMerged, survivor_id=survivor.id)

    def absorb(self, duplicate: Customer) -> None:
        """Take over `duplicate`'s tags and contacts; the companion of `duplicate.merge_into(self)`.

        Absorbing the same duplicate again is a no-op; a duplicate merged elsewhere is refused.
        """
        check_survivor_not_merged(self)
        check_not_merging_into_itself(duplicate.id, self.id)
        if duplicate.id in self.absorbed_ids:
            return
        check_duplicate_is_free(duplicate, self.id)
        self._trigger(
            CustomerAbsorbedDuplicate,
            duplicate_id=duplicate.id,
            tags=tuple(sorted(duplicate.tags - self.tags)),
            contacts=tuple(c for i, c in duplicate.contacts.items() if i not in self.contacts),
        )


# --- rules -------------------------------------------------------------------------------------


def check_text(field_name: str, value: str) -> str:
    """The value stripped, refused when blank."""
    stripped = value.strip()
    if not stripped:
        raise InvalidValue(field_name, value, "must not be blank")
    return stripped


def check_choice(field_name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidValue(field_name, value, f"must be one of {', '.join(allowed)}")
    return value


def optional_email(value: str | None) -> str | None:
    return None if value is None or not value.strip() else normalise_email(value)


def optional_phone(value: str | None, region: str) -> str | None:
    return None if value is None or not value.strip() else normalise_phone(value, region)


def normalise_tag(tag: str) -> str:
    return check_text("tag", tag).lower()


def check_not_merged(customer: Customer) -> None:
    if customer.merged_into is not None:
        raise CustomerIsMerged(customer.id, customer.merged_into)


def check_survivor_not_merged(survivor: Customer) -> None:
    if survivor.merged_into is not None:
        raise CannotMergeIntoMergedCustomer(survivor.id, survivor.merged_into)


def check_not_merging_into_itself(duplicate_id: UUID, survivor_id: UUID) -> None:
    if duplicate_id == survivor_id:
        raise CannotMergeIntoItself(duplicate_id)


def check_duplicate_is_free(duplicate: Customer, survivor_id: UUID) -> None:
    """The duplicate may already be merged, but only into this survivor."""
    if duplicate.merged_into is not None and duplicate.merged_into != survivor_id:
        raise CustomerIsMerged(duplicate.id, duplicate.merged_into)


def check_contact_exists(customer: Customer, contact_id: UUID) -> None:
    if contact_id not in customer.contacts:
        raise ContactNotFound(customer.id, contact_id)


def check_contact_id_is_free(customer: Customer, contact_id: UUID) -> None:
    if contact_id in customer.contacts:
        raise ContactIdAlreadyUsed(customer.id, contact_id)


def check_not_in_future(customer: Customer, interaction_id: UUID, occurred_at: datetime) -> None:
    if occurred_at.tzinfo is None:
        raise InvalidValue("occurred_at", occurred_at, "needs a time zone")
    if occurred_at > now():
        raise InteractionInTheFuture(customer.id, interaction_id, occurred_at)


# --- errors ------------------------------------------------------------------------------------


class CustomerIsMerged(DomainError):
    """The customer was merged into another one and is read-only."""

    def __init__(self, customer_id: UUID, merged_into: UUID) -> None:
        super().__init__(
            f"Customer {customer_id} was merged into {merged_into}",
            customer_id=str(customer_id),
            merged_into=str(merged_into),
        )
        self.customer_id = customer_id
        self.merged_into = merged_into


class CannotMergeIntoItself(DomainError):
    """A customer cannot be its own duplicate."""

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(
            f"Customer {customer_id} cannot merge into itself", customer_id=str(customer_id)
        )
        self.customer_id = customer_id


class CannotMergeIntoMergedCustomer(DomainError):
    """The survivor of a merge was itself merged away."""

    def __init__(self, survivor_id: UUID, merged_into: UUID) -> None:
        super().__init__(
            f"Customer {survivor_id} was merged into {merged_into}; merge into that one",
            survivor_id=str(survivor_id),
            merged_into=str(merged_into),
        )
        self.survivor_id = survivor_id
        self.merged_into = merged_into


class ContactNotFound(NotFound):
    """The customer has no contact with that id."""

    def __init__(self, customer_id: UUID, contact_id: UUID) -> None:
        super().__init__("contact", contact_id)
        self.context["customer_id"] = str(customer_id)
        self.customer_id = customer_id
        self.contact_id = contact_id


class ContactIdAlreadyUsed(DomainError):
    """Another contact of the customer already has that id."""

    def __init__(self, customer_id: UUID, contact_id: UUID) -> None:
        super().__init__(
            f"Customer {customer_id} already has a different contact {contact_id}",
            customer_id=str(customer_id),
            contact_id=str(contact_id),
        )
        self.customer_id = customer_id
        self.contact_id = contact_id


class InteractionInTheFuture(DomainError):
    """Interactions are logged once they happened; planned ones are tasks, not history."""

    def __init__(self, customer_id: UUID, interaction_id: UUID, occurred_at: datetime) -> None:
        super().__init__(
            f"Interaction {interaction_id} occurs at {occurred_at.isoformat()}, in the future",
            customer_id=str(customer_id),
            interaction_id=str(interaction_id),
        )
        self.customer_id = customer_id
        self.interaction_id = interaction_id
