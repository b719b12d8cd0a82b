"""The customer's rules (`check_*`, each raising one specific error) and those errors."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.customer.events import ConsentChannel
from domain.shared import DomainError, NotFound, now
from domain.values import check_aware, required_text

if TYPE_CHECKING:
    from domain.customer.aggregate import Customer


def normalise_tag(tag: str) -> str:
    return required_text("tag", tag).lower()


def check_not_merged(customer: Customer) -> None:
    if customer.merged_into is not None:
        raise CustomerIsMerged(customer.id, customer.merged_into)


def check_not_erased(customer: Customer) -> None:
    if customer.erased_at is not None:
        raise CustomerIsErased(customer.id)


def check_consented(customer: Customer, channel: ConsentChannel) -> None:
    consent = customer.consents.get(channel)
    if consent is None or not consent.granted:
        raise NoConsentForChannel(customer.id, channel)


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
    check_aware("occurred_at", occurred_at)
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


class CustomerIsErased(DomainError):
    """The customer's personal data was erased; no new personal data is recorded about them."""

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(
            f"Customer {customer_id}'s personal data was erased", customer_id=str(customer_id)
        )
        self.customer_id = customer_id


class NoConsentForChannel(DomainError):
    """Marketing may only contact a customer on a channel the customer consented to."""

    def __init__(self, customer_id: UUID, channel: str) -> None:
        super().__init__(
            f"Customer {customer_id} has not consented to be contacted by {channel}",
            customer_id=str(customer_id),
            channel=channel,
        )
        self.customer_id = customer_id
        self.channel = channel


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
