"""What every saga is: a policy from one CRM event to the records it changes, with stable ids."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class Timer:
    """A durable wake-up a saga asked for: `kind` about `subject_id`, at `fire_at`, watching
    `deadline`; its effects name `cause_id` (the event that scheduled it) as their cause."""

    timer_id: UUID
    subject_id: UUID
    kind: str
    fire_at: datetime
    deadline: datetime
    cause_id: UUID
    correlation_id: UUID


@dataclass(frozen=True)
class TimerPlan:
    """From now on, the pending timers of `subject_id` are exactly `timers` (others cancelled)."""

    subject_id: UUID
    timers: tuple[Timer, ...] = ()


class Saga(ABC):
    """Reacts to CRM events with commands on aggregates; the runtime saves their events together
    with the saga's position, under the actor `saga:<name>` and the cause's event id."""

    name: ClassVar[str]
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]]
    has_timers: ClassVar[bool] = False  # plans durable timers (plan_timers) and fires them

    @property
    def actor(self) -> str:
        return f"saga:{self.name}"

    def record_id(self, cause: DomainEvent, purpose: str) -> UUID:
        """The id of the record this saga creates for `purpose` because of `cause`: the same on
        every replay, so a cause handled twice can never create a second record."""
        return uuid5(SAGA_NAMESPACE, f"{self.name}/{cause.event_id}/{purpose}")

    def timer(
        self, cause: DomainEvent, subject_id: UUID, kind: str, fire_at: datetime, deadline: datetime
    ) -> Timer:
        """A timer with a stable id (saga / subject / kind / deadline), caused by `cause`."""
        key = f"{self.name}/{subject_id}/{kind}/{deadline.isoformat()}"
        return Timer(
            timer_id=uuid5(SAGA_NAMESPACE, key),
            subject_id=subject_id,
            kind=kind,
            fire_at=fire_at,
            deadline=deadline,
            cause_id=cause.event_id,
            correlation_id=cause.correlation_id,
        )

    def plan_timers(self, event: DomainEvent, records: Records) -> Sequence[TimerPlan]:
        """The timers `event` (re)schedules or cancels; saved with the reaction. None by default."""
        return ()

    def fire(self, timer: Timer, records: Records) -> Sequence[Aggregate]:
        """The aggregates a due timer changes (its cause and the saga stamped, nothing saved)."""
        return ()

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
