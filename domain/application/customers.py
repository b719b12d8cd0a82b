"""Customer use cases, including the uniqueness of emails and phones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID, uuid4

from domain.application.base import UseCases
from domain.application.commands import CommandResult
from domain.customer import (
    KEEP,
    ConsentChannel,
    Customer,
    CustomerKind,
    InteractionKind,
    Keep,
    LegalBasis,
    Tier,
)
from domain.shared import Aggregate, now
from domain.uniqueness import CUSTOMER_EMAIL, CUSTOMER_PHONE, UniqueClaim, claim_id


class CustomerUseCases(UseCases):
    """Register, change and merge customers."""

    def register_customer(
        self,
        *,
        kind: CustomerKind,
        name: str,
        region: str,
        owner: str,
        email: str | None = None,
        phone: str | None = None,
        industry: str = "",
        source: str = "",
        customer_id: UUID | None = None,
    ) -> CommandResult:
        """Register a customer; its normalised email and phone must be unused."""
        customer_id = customer_id or uuid4()

        def decide() -> list[Aggregate]:
            customer = Customer.register(
                customer_id=customer_id,
                kind=kind,
                name=name,
                region=region,
                owner=owner,
                email=email,
                phone=phone,
                industry=industry,
                source=source,
                phone_region=self.config.phone_region,
            )
            return [customer, *self._claim_contact_details(customer, released=(None, None))]

        return self.commands.create(decide)

    def update_customer_profile(
        self,
        customer_id: UUID,
        *,
        name: str | Keep = KEEP,
        email: str | None | Keep = KEEP,
        phone: str | None | Keep = KEEP,
        region: str | Keep = KEEP,
        industry: str | Keep = KEEP,
        expected_version: int | None = None,
    ) -> CommandResult:
        """Change profile fields; a new email or phone is claimed, the old one released."""

        def command(customer: Customer) -> list[Aggregate]:
            before = (customer.email, customer.phone)
            customer.update_profile(
                name=name,
                email=email,
                phone=phone,
                region=region,
                industry=industry,
                phone_region=self.config.phone_region,
            )
            return self._claim_contact_details(customer, released=before)

        return self.commands.change(Customer, customer_id, command, expected_version)

    def add_customer_contact(
        self,
        customer_id: UUID,
        *,
        name: str,
        title: str = "",
        email: str | None = None,
        phone: str | None = None,
        contact_id: UUID | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        new_id = contact_id or uuid4()
        return self._customer(
            customer_id,
            expected_version,
            lambda c: c.add_contact(
                contact_id=new_id,
                name=name,
                title=title,
                email=email,
                phone=phone,
                phone_region=self.config.phone_region,
            ),
        )

    def remove_customer_contact(
        self, customer_id: UUID, contact_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._customer(customer_id, expected_version, lambda c: c.remove_contact(contact_id))

    def tag_customer(
        self, customer_id: UUID, tag: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._customer(customer_id, expected_version, lambda c: c.tag(tag))

    def untag_customer(
        self, customer_id: UUID, tag: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._customer(customer_id, expected_version, lambda c: c.untag(tag))

    def assign_customer_owner(
        self, customer_id: UUID, owner: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._customer(customer_id, expected_version, lambda c: c.assign_owner(owner))

    def log_customer_interaction(
        self,
        customer_id: UUID,
        *,
        kind: InteractionKind,
        summary: str,
        occurred_at: datetime | None = None,
        contact_id: UUID | None = None,
        interaction_id: UUID | None = None,
        expected_version: int | None = None,
    ) -> CommandResult:
        new_id = interaction_id or uuid4()
        return self._customer(
            customer_id,
            expected_version,
            lambda c: c.log_interaction(
                interaction_id=new_id,
                kind=kind,
                summary=summary,
                occurred_at=occurred_at or now(),  # the command's own instant
                contact_id=contact_id,
            ),
        )

    def record_customer_consent(
        self,
        customer_id: UUID,
        channel: ConsentChannel,
        *,
        granted: bool,
        legal_basis: LegalBasis,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._customer(
            customer_id,
            expected_version,
            lambda c: c.record_consent(channel, granted=granted, legal_basis=legal_basis),
        )

    def record_customer_billing_details(
        self,
        customer_id: UUID,
        *,
        id_number: str | None,
        bank_account: str | None,
        expected_version: int | None = None,
    ) -> CommandResult:
        """Set the customer's ID and bank account numbers (personal data: sealed, masked)."""
        return self._customer(
            customer_id,
            expected_version,
            lambda c: c.record_billing_details(id_number=id_number, bank_account=bank_account),
        )

    def enrol_customer_in_campaign(
        self,
        customer_id: UUID,
        campaign: str,
        *,
        channel: ConsentChannel,
        expected_version: int | None = None,
    ) -> CommandResult:
        """Enrol in a campaign on a channel; refused unless the customer consented to it."""
        return self._customer(
            customer_id, expected_version, lambda c: c.enrol_in_campaign(campaign, channel=channel)
        )

    def erase_customer(
        self,
        customer_id: UUID,
        *,
        reason: str,
        records: Sequence[UUID] = (),
        expected_version: int | None = None,
    ) -> CommandResult:
        """Erase the customer's personal data (and `records` about them); their claims go too.

        The event's recording destroys the keys in the same transaction (see infra/privacy), so
        every earlier copy of the data in the log becomes unreadable at once. The email and
        phone are released so that the claims no longer name the erased customer.
        """

        def command(customer: Customer) -> list[Aggregate]:
            if customer.erased_at is not None:
                return []
            released: list[Aggregate] = []
            for kind, value in _contact_details(customer):
                claim = self._load_claim(kind, value)
                if claim is not None and claim.owner_id == customer.id:
                    claim.release(customer.id)
                    released.append(claim)
            customer.erase(reason=reason, records=tuple(records))
            return released

        return self.commands.change(Customer, customer_id, command, expected_version)

    def change_customer_tier(
        self, customer_id: UUID, tier: Tier, *, reason: str, expected_version: int | None = None
    ) -> CommandResult:
        return self._customer(
            customer_id, expected_version, lambda c: c.change_tier(tier, reason=reason)
        )

    def merge_customers(
        self, survivor_id: UUID, duplicate_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        """Merge the duplicate into the survivor; repeating a finished merge changes nothing.

        The duplicate's email and phone are released: the claims always mirror the profiles
        of customers that can still change them, so nothing stays claimed forever.
        """

        def command(survivor: Customer) -> list[Aggregate]:
            duplicate = self.commands.load(Customer, duplicate_id)
            if duplicate.merged_into == survivor.id:
                return []
            survivor.absorb(duplicate)
            duplicate.merge_into(survivor)
            released = []
            for kind, value in _contact_details(duplicate):
                claim = self._load_claim(kind, value)
                if claim is not None and claim.owner_id == duplicate.id:
                    claim.release(duplicate.id)
                    released.append(claim)
            return [duplicate, *released]

        return self.commands.change(Customer, survivor_id, command, expected_version)

    def _customer(
        self, customer_id: UUID, expected_version: int | None, command: Callable[[Customer], None]
    ) -> CommandResult:
        return self.commands.change(Customer, customer_id, command, expected_version)

    def _load_claim(self, kind: str, value: str) -> UniqueClaim | None:
        return self.commands.find(UniqueClaim, claim_id(kind, value))

    def _claim_contact_details(
        self, customer: Customer, released: tuple[str | None, str | None]
    ) -> list[Aggregate]:
        """Claims to save with `customer`: its current email/phone taken, dropped ones released."""
        changed: list[Aggregate] = []
        current = set(_contact_details(customer))
        previous = {
            (k, v)
            for k, v in zip((CUSTOMER_EMAIL, CUSTOMER_PHONE), released, strict=True)
            if v is not None
        }
        for kind, value in sorted(current - previous):
            claim = self._load_claim(kind, value)
            if claim is None:
                changed.append(UniqueClaim.claim(kind, value, customer.id))
            else:
                claim.reclaim(customer.id)
                changed.append(claim)
        for kind, value in sorted(previous - current):
            claim = self._load_claim(kind, value)
            if claim is not None:
                claim.release(customer.id)
                changed.append(claim)
        return changed


def _contact_details(customer: Customer) -> list[tuple[str, str]]:
    pairs = [(CUSTOMER_EMAIL, customer.email), (CUSTOMER_PHONE, customer.phone)]
    return [(kind, value) for kind, value in pairs if value is not None]
