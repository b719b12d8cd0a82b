"""The CRM application: the event store plus every use case."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import EnvType

from domain.application.commands import CommandRunner
from domain.application.config import CRMConfig
from domain.application.customers import CustomerUseCases
from domain.application.leads import LeadUseCases
from domain.application.opportunities import OpportunityUseCases
from domain.application.tickets import TicketUseCases
from domain.customer import Customer
from domain.shared import Aggregate, Clock, DomainEvent, Snapshot, SystemClock


class CRM(CustomerUseCases, LeadUseCases, OpportunityUseCases, TicketUseCases, Application[UUID]):
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

    # --- audit ---------------------------------------------------------------------------------

    def history(self, record_id: UUID) -> list[DomainEvent]:
        """Every event of one record, oldest first (the audit trail)."""
        return list(self.events.get(record_id))  # type: ignore[arg-type]

    def state_at(self, cls: type[Aggregate], record_id: UUID, version: int | None = None) -> Any:
        """A record as it was at `version` (or now)."""
        return self.commands.load(cls, record_id, version)
