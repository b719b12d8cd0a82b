"""Building blocks every aggregate shares: events, aggregates, metadata, clock and errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, Self
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from pydantic import BaseModel, ConfigDict, PrivateAttr

from domain.personal import PersonalData

EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:crm:event")


# --- time and metadata -------------------------------------------------------------------------


class Clock(Protocol):
    """Source of the current time; the application owns one, tests inject a fixed one."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that only moves when told to (for tests and replays)."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at = self.at + timedelta(**delta)
        return self.at


@dataclass(frozen=True)
class CommandContext:
    """Who is acting, why, and by which clock: stamped on every event a command records."""

    actor: str = "system:crm"
    correlation_id: UUID = field(default_factory=uuid4)
    causation_id: UUID | None = None
    clock: Clock = field(default_factory=SystemClock)
    # Records the caller loaded already for this command (e.g. to check who may change them):
    # the command's first attempt takes them from here instead of reading them again.
    preloaded: dict[UUID, Any] = field(default_factory=dict)


_context: ContextVar[CommandContext | None] = ContextVar("crm_command_context", default=None)


def current_context() -> CommandContext:
    """The ambient command context (a fresh system context when none is set)."""
    return _context.get() or CommandContext()


def now() -> datetime:
    """The current time by the ambient clock; rules never call datetime.now() themselves."""
    return current_context().clock.now()


@contextmanager
def command_context(**changes: Any) -> Iterator[CommandContext]:
    """Run the enclosed commands with the given actor/correlation/causation/clock."""
    ctx = replace(current_context(), **changes)
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


# --- events ------------------------------------------------------------------------------------

EVENT_TYPES: dict[str, type[DomainEvent]] = {}
AGGREGATE_TYPES: dict[str, type[Aggregate]] = {}


class DomainEvent(BaseModel):
    """An immutable fact. `TYPE` is its stable name; the stored name adds `.v<class_version>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = ""
    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    actor: str
    correlation_id: UUID
    causation_id: UUID | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "TYPE" not in cls.__dict__ or not cls.TYPE:
            return  # abstract base (e.g. `LeadEvent`)
        existing = EVENT_TYPES.get(cls.TYPE)
        if existing is not None and _path(existing) != _path(cls):
            raise TypeError(f"event type {cls.TYPE!r} already names {_path(existing)}")
        missing = [
            f"upcast_v{v}_v{v + 1}"
            for v in range(1, cls.class_version)
            if not callable(getattr(cls, f"upcast_v{v}_v{v + 1}", None))
        ]
        if missing:  # fail at import, not the day an old event is read
            raise TypeError(f"{_path(cls)} is at v{cls.class_version} but lacks {missing}")
        EVENT_TYPES[cls.TYPE] = cls

    @classmethod
    def type_name(cls) -> str:
        """The stored, versioned type name, e.g. `crm.lead.qualified.v1`."""
        return f"{cls.TYPE}.v{cls.class_version}"

    def data_subject_id(self) -> UUID:
        """The person (customer or lead) this event's personal data is about.

        Erasing that subject destroys the key of this event's record. A record's own id by
        default; a ticket or a task names the customer or lead it is about.
        """
        return self.originator_id

    def erased_subjects(self) -> tuple[UUID, ...]:
        """The data subjects whose keys are destroyed when this event is recorded (an erasure)."""
        return ()

    @property
    def event_id(self) -> UUID:
        """Stable unique id of this event, derived from its place in its aggregate's history."""
        return event_id_for(self.originator_id, self.originator_version)

    def mutate(self, aggregate: Any) -> Any:
        """Evolve `aggregate` by this event (the library's projector calls this)."""
        if not isinstance(aggregate, Aggregate):
            raise TypeError(f"{self.type_name()} needs an existing aggregate, got {aggregate!r}")
        if aggregate.id != self.originator_id:
            raise ValueError(f"event for {self.originator_id} applied to {aggregate.id}")
        if self.originator_version != aggregate.version + 1:
            raise ValueError(
                f"event version {self.originator_version} does not follow {aggregate.version}"
            )
        self.apply(aggregate)
        aggregate.version = self.originator_version
        aggregate.modified_on = self.timestamp
        return aggregate

    def apply(self, aggregate: Any) -> None:
        """Change the aggregate's state; subclasses override."""


class CreationEvent(DomainEvent):
    """The first event of an aggregate: it builds the aggregate."""

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is not None:
            raise ValueError(f"{self.type_name()} can only start a new aggregate")
        return self.create()

    def create(self) -> Aggregate:
        """Build the aggregate from this event; subclasses override."""
        raise NotImplementedError


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def event_id_for(originator_id: UUID, originator_version: int) -> UUID:
    """The stable id of the event at `originator_version` of aggregate `originator_id`."""
    return uuid5(EVENT_ID_NAMESPACE, f"{originator_id}/{originator_version}")


def _metadata() -> dict[str, Any]:
    ctx = current_context()
    return {
        "timestamp": ctx.clock.now(),
        "actor": ctx.actor,
        "correlation_id": ctx.correlation_id,
        "causation_id": ctx.causation_id,
    }


# --- aggregates --------------------------------------------------------------------------------


class Aggregate(BaseModel):
    """Current state of one consistency boundary, rebuilt by applying its events in order."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    TYPE: ClassVar[str] = ""

    id: UUID
    version: int
    created_on: datetime
    modified_on: datetime

    _pending_events: list[DomainEvent] = PrivateAttr(default_factory=list)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__dict__.get("TYPE"):
            AGGREGATE_TYPES[cls.TYPE] = cls

    @classmethod
    def born(cls, event: DomainEvent, **state: Any) -> Self:
        """Construct the aggregate from its creation event plus its own initial state."""
        return cls(
            id=event.originator_id,
            version=event.originator_version,
            created_on=event.timestamp,
            modified_on=event.timestamp,
            **state,
        )

    @classmethod
    def _start(cls, event_class: type[CreationEvent], id: UUID, **fields: Any) -> Self:
        """Record the creation event and return the new aggregate."""
        created = event_class(originator_id=id, originator_version=1, **_metadata(), **fields)
        aggregate = created.mutate(None)
        if not isinstance(aggregate, cls):
            raise TypeError(f"{event_class.__name__} did not create a {cls.__name__}")
        aggregate._pending_events.append(created)
        return aggregate

    def _trigger(self, event_class: type[DomainEvent], **fields: Any) -> None:
        """Record an event as the next in this aggregate's history and apply it."""
        event = event_class(
            originator_id=self.id, originator_version=self.version + 1, **_metadata(), **fields
        )
        event.mutate(self)
        self._pending_events.append(event)

    @property
    def pending_events(self) -> list[DomainEvent]:
        return self._pending_events

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the events recorded since the last save."""
        collected, self._pending_events = self._pending_events, []
        return collected

    def state(self) -> dict[str, Any]:
        """Everything the aggregate knows, as plain data (for snapshots and comparisons)."""
        return self.model_dump(mode="json")


class Snapshot(DomainEvent):
    """The state of an aggregate at a version, so loading need not replay everything."""

    TYPE: ClassVar[str] = "crm.snapshot"

    aggregate_type: str
    state: PersonalData[dict[str, Any]]  # all of it, under the record's own key

    @classmethod
    def take(cls, aggregate: Aggregate) -> Snapshot:
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=aggregate.modified_on,
            actor="system:snapshotter",
            correlation_id=aggregate.id,
            aggregate_type=type(aggregate).TYPE,
            state=aggregate.state(),
        )

    def mutate(self, aggregate: Any) -> Any:
        return AGGREGATE_TYPES[self.aggregate_type].model_validate(self.state)


# --- errors ------------------------------------------------------------------------------------


class DomainError(Exception):
    """A command broke a business rule; nothing was recorded."""

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context

    @classmethod
    def code(cls) -> str:
        """Kebab-case name of the rule, e.g. `lead-already-converted`."""
        return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()


class NotFound(DomainError):
    """No record of that kind has that id."""

    def __init__(self, kind: str, record_id: UUID) -> None:
        super().__init__(f"No {kind} with id {record_id}", kind=kind, id=str(record_id))


class AlreadyExists(DomainError):
    """A record with the id the caller chose exists already."""

    def __init__(self, kind: str, record_id: UUID) -> None:
        super().__init__(f"A {kind} with id {record_id} exists already", id=str(record_id))


class ConcurrencyConflict(DomainError):
    """The record changed since the version the caller based its command on."""

    def __init__(self, record_id: UUID, expected_version: int | None, actual_version: int) -> None:
        super().__init__(
            f"Record {record_id} is at version {actual_version}, not {expected_version}",
            id=str(record_id),
            expected_version=expected_version,
            actual_version=actual_version,
        )
        self.record_id = record_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class InvalidValue(DomainError):
    """A value is malformed (bad email, phone, currency, ...)."""

    def __init__(self, field_name: str, value: object, reason: str) -> None:
        super().__init__(f"Invalid {field_name} {value!r}: {reason}", field=field_name)
        self.field_name = field_name
