"""Given-events / when-command / then-events helpers for aggregate tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from domain.shared import Aggregate, DomainEvent, FixedClock, command_context
from infra.mapper import OrjsonTranscoder, PydanticMapper

A = TypeVar("A", bound=Aggregate)

# A Monday morning in Shanghai business hours (01:00 UTC = 09:00 CST).
MONDAY_9AM = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
ACTOR = "user:test"


def given(*events: DomainEvent) -> Any:
    """The aggregate that these events (in order) build."""
    aggregate: Any = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def history(
    build: Callable[[], A], *commands: Callable[[A], Any], clock: FixedClock | None = None
) -> list[DomainEvent]:
    """Events recorded by a creation command followed by more commands (a compact `given`)."""
    with command_context(actor=ACTOR, clock=clock or FixedClock(MONDAY_9AM)):
        aggregate = build()
        for command in commands:
            command(aggregate)
    return aggregate.collect_events()


def when(
    aggregate: A, command: Callable[[A], Any], clock: FixedClock | None = None
) -> list[DomainEvent]:
    """Run one command on `aggregate` and return the events it recorded."""
    aggregate.collect_events()
    with command_context(actor=ACTOR, clock=clock or FixedClock(MONDAY_9AM)):
        command(aggregate)
    return aggregate.collect_events()


def payload(event: DomainEvent) -> dict[str, Any]:
    """An event's own fields, without identity and metadata."""
    return event.model_dump(
        exclude={
            "originator_id",
            "originator_version",
            "timestamp",
            "actor",
            "correlation_id",
            "causation_id",
        }
    )


def through_store(events: Iterable[DomainEvent]) -> list[DomainEvent]:
    """The events as they come back after being stored (mapper + orjson round trip)."""
    out = []
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())  # keys of its own: no test's erasure
    for event in events:  # reaches another's records
        stored = mapper.to_stored_event(event)
        out.append(
            mapper.to_domain_event(
                StoredEvent(
                    originator_id=stored.originator_id,
                    originator_version=stored.originator_version,
                    topic=stored.topic,
                    state=stored.state,
                )
            )
        )
    return out


def new_id() -> UUID:
    return uuid4()
