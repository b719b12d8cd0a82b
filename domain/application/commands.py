"""How the application runs a command: load, check the version, decide, save, retry a lost race."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, MapperDeserialisationError, Recording

from domain.shared import (
    Aggregate,
    AlreadyExists,
    Clock,
    ConcurrencyConflict,
    DomainEvent,
    FixedClock,
    NotFound,
    command_context,
    current_context,
)

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class CommandResult:
    """What a caller learns from a command: the record, its new version, its log position."""

    id: UUID
    version: int
    position: int | None  # None when the command changed nothing


class CommandRunner:
    """Runs commands against an eventsourcing application with optimistic concurrency."""

    def __init__(self, app: Application[UUID], clock: Clock, retries: int) -> None:
        self.app = app
        self.clock = clock
        self.retries = retries

    def _instant(self) -> FixedClock:
        """One instant per command, so its rules and all its events agree on the time."""
        return FixedClock(self.clock.now())

    def load(self, cls: type[A], record_id: UUID, version: int | None = None) -> A:
        """The aggregate `record_id` (optionally as it was at `version`), or NotFound."""
        try:
            aggregate: object = self.app.repository.get(record_id, version=version)
        except AggregateNotFoundError:
            raise NotFound(cls.TYPE.removeprefix("crm."), record_id) from None
        except MapperDeserialisationError:  # e.g. a snapshot sealed under an erased key
            aggregate = self._replay(cls, record_id, version)
        if not isinstance(aggregate, cls):
            raise NotFound(cls.TYPE.removeprefix("crm."), record_id)
        return aggregate

    def _replay(self, cls: type[A], record_id: UUID, version: int | None) -> object:
        """The aggregate from its events alone, without snapshots."""
        aggregate: object = None
        for event in self.app.events.get(record_id, lte=version):
            aggregate = cast(DomainEvent, event).mutate(aggregate)
        if aggregate is None:
            raise NotFound(cls.TYPE.removeprefix("crm."), record_id)
        return aggregate

    def find(self, cls: type[A], record_id: UUID) -> A | None:
        """The aggregate, or None when there is none of that kind with that id."""
        try:
            return self.load(cls, record_id)
        except NotFound:
            return None

    def exists(self, record_id: UUID) -> bool:
        return bool(list(self.app.events.get(record_id, limit=1)))

    def create(self, decide: Callable[[], Sequence[Aggregate]]) -> CommandResult:
        """Save the aggregates `decide` builds (the first is the result); retried on a race."""
        for attempt in range(self.retries + 1):
            with command_context(clock=self._instant()):
                aggregates = decide()
            try:
                recordings = self.app.save(*aggregates)
            except IntegrityError:
                if self.exists(aggregates[0].id):
                    kind = type(aggregates[0]).TYPE.removeprefix("crm.")
                    raise AlreadyExists(kind, aggregates[0].id) from None
                if attempt == self.retries:
                    raise
                continue  # `decide` sees the winner's claims on the next attempt
            return _result(aggregates[0], recordings)
        raise AssertionError("unreachable")  # pragma: no cover

    def change(
        self,
        cls: type[A],
        record_id: UUID,
        command: Callable[[A], Sequence[Aggregate] | None],
        expected_version: int | None = None,
    ) -> CommandResult:
        """Apply `command` to the current state; it may return more aggregates to save with it."""
        preloaded = current_context().preloaded.pop(record_id, None)
        for attempt in range(self.retries + 1):
            if isinstance(preloaded, cls) and attempt == 0:
                aggregate = preloaded
            else:
                aggregate = self.load(cls, record_id)
            if expected_version is not None and aggregate.version != expected_version:
                raise ConcurrencyConflict(record_id, expected_version, aggregate.version)
            with command_context(clock=self._instant()):
                others = command(aggregate) or ()
            if not aggregate.pending_events and not any(o.pending_events for o in others):
                return CommandResult(aggregate.id, aggregate.version, None)
            try:
                recordings = self.app.save(aggregate, *others)
            except IntegrityError:
                actual = self.load(cls, record_id).version
                if expected_version is not None and actual != expected_version:
                    raise ConcurrencyConflict(record_id, expected_version, actual) from None
                if attempt == self.retries:
                    raise ConcurrencyConflict(record_id, expected_version, actual) from None
                continue  # the race was lost on a record saved alongside: try again
            return _result(aggregate, recordings)
        raise AssertionError("unreachable")  # pragma: no cover


def _result(aggregate: Aggregate, recordings: list[Recording[Any]]) -> CommandResult:
    # The highest position written: waiting for it means every effect of the command is read.
    last = max((r.notification.id for r in recordings), default=None)
    return CommandResult(aggregate.id, aggregate.version, last)
