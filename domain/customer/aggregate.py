"""The Customer aggregate: its state and its commands, each recording at most one event."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, get_args
from uuid import UUID

from pydantic import Field, field_serializer

from domain.customer.events import (
    Consent,
    ConsentChannel,
    Contact,
    CustomerAbsorbedDuplicate,
    CustomerBillingDetailsRecorded,
    CustomerConsentRecorded,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerEnrolledInCampaign,
    CustomerErased,
    CustomerInteractionLogged,
    CustomerKind,
    CustomerMerged,
    CustomerOwnerAssigned,
    CustomerProfileUpdated,
    CustomerRegistered,
    CustomerTagged,
    CustomerTierChanged,
    CustomerUntagged,
    InteractionKind,
    LegalBasis,
    ProfileField,
    Tier,
)
from domain.customer.rules import (
    check_consented,
    check_contact_exists,
    check_contact_id_is_free,
    check_duplicate_is_free,
    check_not_erased,
    check_not_in_future,
    check_not_merged,
    check_not_merging_into_itself,
    check_survivor_not_merged,
    normalise_tag,
)
from domain.shared import Aggregate
from domain.values import (
    DEFAULT_PHONE_REGION,
    check_choice,
    optional_email,
    optional_identifier,
    optional_phone,
    required_text,
)


class Keep(Enum):
    """Marks a profile field that `update_profile` leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


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
    campaigns: dict[str, ConsentChannel] = Field(default_factory=dict)
    id_number: str | None = None
    bank_account: str | None = None
    erased_at: datetime | None = None

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
            name=required_text("name", name),
            email=optional_email(email),
            phone=optional_phone(phone, phone_region),
            region=required_text("region", region),
            industry=industry.strip(),
            owner=required_text("owner", owner),
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
        if not all(isinstance(value, Keep) for value in (name, email, phone)):
            check_not_erased(self)
        wanted: dict[ProfileField, str | None] = {}
        if not isinstance(name, Keep):
            wanted["name"] = required_text("name", name)
        if not isinstance(email, Keep):
            wanted["email"] = optional_email(email)
        if not isinstance(phone, Keep):
            wanted["phone"] = optional_phone(phone, phone_region)
        if not isinstance(region, Keep):
            wanted["region"] = required_text("region", region)
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
        check_not_erased(self)
        contact = Contact(
            contact_id=contact_id,
            name=required_text("name", name),
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
        owner = required_text("owner", owner)
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
        check_not_erased(self)
        check_choice("kind", kind, get_args(InteractionKind))
        summary = required_text("summary", summary)
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

    def record_billing_details(self, *, id_number: str | None, bank_account: str | None) -> None:
        """Set the ID and bank account numbers invoicing needs; the same numbers are a no-op."""
        check_not_merged(self)
        check_not_erased(self)
        numbers = (
            optional_identifier("id_number", id_number),
            optional_identifier("bank_account", bank_account),
        )
        if numbers != (self.id_number, self.bank_account):
            self._trigger(
                CustomerBillingDetailsRecorded, id_number=numbers[0], bank_account=numbers[1]
            )

    def enrol_in_campaign(self, campaign: str, *, channel: ConsentChannel) -> None:
        """Enrol in a marketing campaign on `channel`; refused without the customer's consent."""
        check_not_merged(self)
        check_not_erased(self)
        check_choice("channel", channel, get_args(ConsentChannel))
        campaign = required_text("campaign", campaign)
        check_consented(self, channel)
        if self.campaigns.get(campaign) != channel:
            self._trigger(CustomerEnrolledInCampaign, campaign=campaign, channel=channel)

    def erase(self, *, reason: str, records: tuple[UUID, ...] = ()) -> None:
        """Erase the customer's personal data (and that of `records` about them) for good.

        Allowed on merged customers too: the right to erasure does not depend on our bookkeeping.
        Erasing again is a no-op.
        """
        reason = required_text("reason", reason)
        if self.erased_at is None:
            self._trigger(CustomerErased, reason=reason, records=tuple(dict.fromkeys(records)))

    def change_tier(self, tier: Tier, *, reason: str) -> None:
        """Move the customer to another tier, saying why; the same tier is a no-op."""
        check_not_merged(self)
        check_choice("tier", tier, get_args(Tier))
        reason = required_text("reason", reason)
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
