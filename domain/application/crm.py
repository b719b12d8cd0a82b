"""The CRM application: the event store plus every use case."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import Recording
from eventsourcing.utils import EnvType

from domain.application.commands import CommandRunner
from domain.application.config import CRMConfig
from domain.application.customers import CustomerUseCases
from domain.application.leads import LeadUseCases
from domain.application.opportunities import OpportunityUseCases
from domain.application.tasks import TaskUseCases
from domain.application.tickets import TicketUseCases
from domain.customer import Customer
from domain.shared import Aggregate, Clock, DomainEvent, NotFound, Snapshot, SystemClock

A = TypeVar("A", bound=Aggregate)


class _Collected(ProcessingEvent[UUID]):
    """Collects the events of our aggregates with a plain class check: the library's checks
    against its runtime protocols cost more than the rest of a one-event save's bookkeeping."""

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            else:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


class CRM(
    CustomerUseCases,
    LeadUseCases,
    OpportunityUseCases,
    TaskUseCases,
    TicketUseCases,
    Application[UUID],
):
    """Customers, leads, opportunities and tickets: every change an event in one log."""

    name = "CRM"
    snapshot_class = Snapshot

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        clock: Clock | None = None,
        config: CRMConfig | None = None,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.config = config or CRMConfig()
        interval = int(self.env.get("CUSTOMER_SNAPSHOT_INTERVAL") or 0)
        # An instance attribute, so each application can have its own interval.
        self.snapshotting_intervals = (  # type: ignore[misc]
            {Customer: interval} if interval and self.snapshots else {}
        )
        self.commands = CommandRunner(self, self.clock, self.config.command_retries)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's save (record, snapshot, notify) with a cheaper collection of events."""
        processing_event = _Collected()
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    # --- audit ---------------------------------------------------------------------------------

    def history(self, record_id: UUID) -> list[DomainEvent]:
        """Every event of one record, oldest first (the audit trail)."""
        return list(self.events.get(record_id))  # type: ignore[arg-type]

    def state_at(self, cls: type[Aggregate], record_id: UUID, version: int | None = None) -> Any:
        """A record as it was at `version` (or now)."""
        return self.commands.load(cls, record_id, version)

    def check_kind(self, cls: type[Aggregate], record_id: UUID) -> None:
        """NotFound unless `record_id` is a record of kind `cls` (read from its first event)."""
        self.commands.load(cls, record_id, 1)

    def record_as_of(
        self,
        cls: type[A],
        record_id: UUID,
        *,
        version: int | None = None,
        at: datetime | None = None,
    ) -> A:
        """A record as it was at `version`, or at instant `at` (its last event at or before it).

        NotFound when there is no such version, or the record did not exist yet at `at`.
        """
        kind = cls.TYPE.removeprefix("crm.")
        if at is not None:
            self.check_kind(cls, record_id)
            version = 0
            for event in self.history(record_id):
                if event.timestamp > at:
                    break
                version = event.originator_version
            if version == 0:
                raise NotFound(f"{kind} as of {at.isoformat()}", record_id)
        record = self.commands.load(cls, record_id, version)
        if version is not None and record.version != version:
            raise NotFound(f"{kind} version {version}", record_id)
        return record
