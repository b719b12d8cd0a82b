"""Task use cases: hand out, reassign, complete and cancel work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID, uuid4

from domain.application.base import UseCases
from domain.application.commands import CommandResult
from domain.customer import Customer
from domain.lead import Lead
from domain.opportunity import Opportunity
from domain.shared import Aggregate
from domain.task import RelatedKind, Task, TaskPriority
from domain.ticket import Ticket

RELATED_TYPES: dict[str, type[Aggregate]] = {
    "lead": Lead,
    "customer": Customer,
    "opportunity": Opportunity,
    "ticket": Ticket,
}


class TaskUseCases(UseCases):
    """Work for people and teams, tied to a record of the CRM."""

    def create_task(
        self,
        *,
        title: str,
        team: str,
        related_kind: RelatedKind,
        related_id: UUID,
        due_at: datetime,
        assignee: str | None = None,
        priority: TaskPriority = "normal",
        task_id: UUID | None = None,
    ) -> CommandResult:
        """Create a task about an existing record (NotFound when there is none of that kind)."""
        task_id = task_id or uuid4()
        related_type = RELATED_TYPES.get(related_kind)
        if related_type is not None:  # an unknown kind is refused by the task's own rule
            self.commands.load(related_type, related_id, 1)
        return self.commands.create(
            lambda: [
                Task.create(
                    task_id=task_id,
                    title=title,
                    team=team,
                    related_kind=related_kind,
                    related_id=related_id,
                    due_at=due_at,
                    assignee=assignee,
                    priority=priority,
                )
            ]
        )

    def reassign_task(
        self,
        task_id: UUID,
        assignee: str | None,
        team: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> CommandResult:
        return self._task(task_id, expected_version, lambda t: t.reassign(assignee, team))

    def complete_task(
        self, task_id: UUID, note: str | None = None, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._task(task_id, expected_version, lambda t: t.complete(note))

    def cancel_task(
        self, task_id: UUID, reason: str, *, expected_version: int | None = None
    ) -> CommandResult:
        return self._task(task_id, expected_version, lambda t: t.cancel(reason))

    def _task(
        self, task_id: UUID, expected_version: int | None, command: Callable[[Task], None]
    ) -> CommandResult:
        return self.commands.change(Task, task_id, command, expected_version)
