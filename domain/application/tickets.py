"""Service ticket use cases, with SLA due times from the configured policy and calendar."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

from domain.application.base import UseCases
from domain.application.commands import CommandResult
from domain.sla import Priority
from domain.ticket import Channel as TicketChannel
from domain.ticket import Ticket


class TicketUseCases(UseCases):
    """Open, work and close service tickets."""

    def open_ticket(
        self,
        *,
        customer_id: UUID,
        channel: TicketChannel | str,
        subject: str,
        description: str = "",
        priority: Priority | str = Priority.P3,
        category: str = "general",
        ticket_id: UUID | None = None,
    ) -> CommandResult:
        """Open a ticket for a live customer; due times come from the current SLA policy."""
        ticket_id = ticket_id or uuid4()
        self._live_customer(customer_id)
        return self.commands.create(
            lambda: [
                Ticket.open(
                    ticket_id,
                    customer_id,
                    channel,
                    subject,
                    description,
                    priority,
                    category,
                    self.config.sla_policy,
                    self.config.calendar,
                )
            ]
        )

    def assign_ticket(
        self,
        ticket_id: UUID,
        agent: str,
        team: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.assign(agent, team))

    def record_ticket_first_response(
        self, ticket_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.record_first_response())

    def wait_on_customer(
        self, ticket_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.wait_on_customer())

    def resume_ticket(
        self, ticket_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.resume(self.config.calendar))

    def escalate_ticket(
        self, ticket_id: UUID, level: int, reason: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.escalate(level, reason))

    def change_ticket_priority(
        self, ticket_id: UUID, priority: Priority | str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(
            ticket_id,
            expected_version,
            lambda t: t.change_priority(priority, self.config.sla_policy, self.config.calendar),
        )

    def resolve_ticket(
        self, ticket_id: UUID, resolution: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.resolve(resolution))

    def close_ticket(
        self, ticket_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.close())

    def reopen_ticket(
        self, ticket_id: UUID, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.reopen(self.config.calendar))

    def rate_ticket(
        self,
        ticket_id: UUID,
        score: int,
        comment: str = "",
        *,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._ticket(ticket_id, expected_version, lambda t: t.rate(score, comment))

    def _ticket(
        self, ticket_id: UUID, expected_version: int | None, command: Callable[[Ticket], None]
    ) -> CommandResult:
        return self.commands.change(Ticket, ticket_id, command, expected_version)
