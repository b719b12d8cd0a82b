"""What every saga is: a policy from one CRM event to the records it changes, with stable ids."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.customer import Customer
from domain.shared import Aggregate, DomainEvent

A = TypeVar("A", bound=Aggregate)

SAGA_NAMESPACE = uuid5(NAMESPACE_URL, "urn:crm:saga")


class Records(Protocol):
    """What a saga may read: current records of the CRM (the application's command runner)."""

    def load(self, cls: type[A], record_id: UUID, version: int | None = None) -> A: ...

    def find(self, cls: type[A], record_id: UUID) -> A | None: ...

    def exists(self, record_id: UUID) -> bool: ...


class Saga(ABC):
    """Reacts to CRM events with commands on aggregates; the runtime saves their events together
    with the saga's position, under the actor `saga:<name>` and the cause's event id."""

    name: ClassVar[str]
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]]

    @property
    def actor(self) -> str:
        return f"saga:{self.name}"

    def record_id(self, cause: DomainEvent, purpose: str) -> UUID:
        """The id of the record this saga creates for `purpose` because of `cause`: the same on
        every replay, so a cause handled twice can never create a second record."""
        return uuid5(SAGA_NAMESPACE, f"{self.name}/{cause.event_id}/{purpose}")

    @abstractmethod
    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        """The aggregates `event` changes, with their new events pending (nothing is saved here).

        Runs inside a command context that stamps the saga's actor and the causation; a cause
        already handled must yield no new events.
        """


def live_customer(records: Records, customer_id: UUID) -> Customer:
    """The customer, or the survivor it was merged into (merged customers refuse commands)."""
    customer = records.load(Customer, customer_id)
    while customer.merged_into is not None:
        customer = records.load(Customer, customer.merged_into)
    return customer
