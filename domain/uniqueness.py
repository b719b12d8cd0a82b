"""Uniqueness claims: one aggregate per normalised email or phone, saved with its owner."""

from __future__ import annotations

from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.personal import PersonalData
from domain.shared import Aggregate, CreationEvent, DomainError, DomainEvent

CLAIM_NAMESPACE = uuid5(NAMESPACE_URL, "urn:crm:unique-claim")


def claim_id(kind: str, normalised_value: str) -> UUID:
    """The id of the claim on `normalised_value` (e.g. kind `customer-email`)."""
    return uuid5(CLAIM_NAMESPACE, f"{kind}:{normalised_value}")


class ClaimEvent(DomainEvent):
    """Base of the uniqueness claim's events."""


class ValueClaimed(CreationEvent):
    """A value was claimed by an owner for the first time."""

    TYPE: ClassVar[str] = "crm.claim.claimed"

    kind: str
    value: PersonalData[str]
    owner_id: UUID

    def data_subject_id(self) -> UUID:
        return self.owner_id

    def create(self) -> UniqueClaim:
        return UniqueClaim.born(self, kind=self.kind, value=self.value, owner_id=self.owner_id)


class ValueReclaimed(ClaimEvent):
    """A released value was claimed again, possibly by another owner."""

    TYPE: ClassVar[str] = "crm.claim.reclaimed"

    owner_id: UUID

    def apply(self, aggregate: UniqueClaim) -> None:
        aggregate.owner_id = self.owner_id


class ValueReleased(ClaimEvent):
    """The owner gave the value up; anyone may claim it now."""

    TYPE: ClassVar[str] = "crm.claim.released"

    def apply(self, aggregate: UniqueClaim) -> None:
        aggregate.owner_id = None


class UniqueClaim(Aggregate):
    """Who holds a unique value; its id is derived from the value, so the store enforces it."""

    TYPE: ClassVar[str] = "crm.claim"

    kind: str
    value: str
    owner_id: UUID | None

    @classmethod
    def claim(cls, kind: str, value: str, owner_id: UUID) -> UniqueClaim:
        return cls._start(
            ValueClaimed, claim_id(kind, value), kind=kind, value=value, owner_id=owner_id
        )

    def reclaim(self, owner_id: UUID) -> None:
        if self.owner_id == owner_id:
            return
        check_claim_is_free(self)
        self._trigger(ValueReclaimed, owner_id=owner_id)

    def release(self, owner_id: UUID) -> None:
        if self.owner_id != owner_id:
            return  # only the holder can release; anything else is a no-op
        self._trigger(ValueReleased)


def check_claim_is_free(claim: UniqueClaim) -> None:
    if claim.owner_id is not None:
        error = CLAIM_ERRORS.get(claim.kind, ValueAlreadyClaimed)
        raise error(claim.kind, claim.value, claim.owner_id)


class ValueAlreadyClaimed(DomainError):
    """The unique value is held by another record."""

    def __init__(self, kind: str, value: str, owner_id: UUID) -> None:
        # The holder's id stays out of the message: its reader may not be allowed to see it.
        super().__init__(f"{kind} {value!r} already belongs to another record", kind=kind)
        self.kind = kind
        self.owner_id = owner_id


class CustomerEmailAlreadyRegistered(ValueAlreadyClaimed):
    """Another customer already has this email address."""


class CustomerPhoneAlreadyRegistered(ValueAlreadyClaimed):
    """Another customer already has this phone number."""


CUSTOMER_EMAIL = "customer-email"
CUSTOMER_PHONE = "customer-phone"
CLAIM_ERRORS: dict[str, type[ValueAlreadyClaimed]] = {
    CUSTOMER_EMAIL: CustomerEmailAlreadyRegistered,
    CUSTOMER_PHONE: CustomerPhoneAlreadyRegistered,
}
