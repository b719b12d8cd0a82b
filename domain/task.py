"""Tasks: work for a person or a team, created by hand or by a saga at a handoff."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID

from domain.personal import PersonalData
from domain.shared import Aggregate, CreationEvent, DomainError, DomainEvent
from domain.values import check_aware, check_choice, optional_text, required_text

RelatedKind = Literal["lead", "customer", "opportunity", "ticket"]
TaskPriority = Literal["low", "normal", "high", "urgent"]
TaskStatus = Literal["open", "completed", "cancelled"]


class TaskCreated(CreationEvent):
    """Work was handed to an assignee (or to a team's queue when there is none)."""

    TYPE: ClassVar[str] = "crm.task.created"

    title: PersonalData[str]
    assignee: str | None
    team: str
    related_kind: RelatedKind
    related_id: UUID
    due_at: datetime
    priority: TaskPriority
    source_saga: str | None = None
    cause_id: UUID | None = None

    def create(self) -> Task:
        return Task.born(self, **self.model_dump(exclude=set(DomainEvent.model_fields)))

    def data_subject_id(self) -> UUID:
        return self.related_id


class TaskEvent(DomainEvent):
    """Base of the events that change an existing task."""


class TaskReassigned(TaskEvent):
    """The task moved to another assignee or team."""

    TYPE: ClassVar[str] = "crm.task.reassigned"

    assignee: str | None
    team: str

    def apply(self, aggregate: Task) -> None:
        aggregate.assignee = self.assignee
        aggregate.team = self.team


class TaskCompleted(TaskEvent):
    """The work is done."""

    TYPE: ClassVar[str] = "crm.task.completed"

    note: PersonalData[str | None] = None

    def apply(self, aggregate: Task) -> None:
        aggregate.status = "completed"
        aggregate.closed_at = self.timestamp


class TaskCancelled(TaskEvent):
    """The work is no longer needed, for the given reason."""

    TYPE: ClassVar[str] = "crm.task.cancelled"

    reason: str

    def apply(self, aggregate: Task) -> None:
        aggregate.status = "cancelled"
        aggregate.closed_at = self.timestamp


class Task(Aggregate):
    """A piece of work with a due time; overdue is asked of it, never recorded."""

    TYPE: ClassVar[str] = "crm.task"

    title: str
    assignee: str | None
    team: str
    related_kind: RelatedKind
    related_id: UUID
    due_at: datetime
    priority: TaskPriority
    source_saga: str | None
    cause_id: UUID | None
    status: TaskStatus = "open"
    closed_at: datetime | None = None

    @classmethod
    def create(
        cls,
        *,
        task_id: UUID,
        title: str,
        team: str,
        related_kind: RelatedKind,
        related_id: UUID,
        due_at: datetime,
        assignee: str | None = None,
        priority: TaskPriority = "normal",
        source_saga: str | None = None,
        cause_id: UUID | None = None,
    ) -> Task:
        check_choice("related_kind", related_kind, get_args(RelatedKind))
        check_choice("priority", priority, get_args(TaskPriority))
        check_aware("due_at", due_at)
        return cls._start(
            TaskCreated,
            task_id,
            title=required_text("title", title),
            assignee=optional_text(assignee),
            team=required_text("team", team),
            related_kind=related_kind,
            related_id=related_id,
            due_at=due_at,
            priority=priority,
            source_saga=optional_text(source_saga),
            cause_id=cause_id,
        )

    def reassign(self, assignee: str | None, team: str | None = None) -> None:
        check_open(self)
        assignee = optional_text(assignee)
        team = self.team if team is None else required_text("team", team)
        if (assignee, team) != (self.assignee, self.team):
            self._trigger(TaskReassigned, assignee=assignee, team=team)

    def complete(self, note: str | None = None) -> None:
        check_not_cancelled(self)
        if self.status == "open":  # completing again (a retried request) changes nothing
            self._trigger(TaskCompleted, note=optional_text(note))

    def cancel(self, reason: str) -> None:
        check_not_completed(self)
        reason = required_text("reason", reason)
        if self.status == "open":
            self._trigger(TaskCancelled, reason=reason)

    def is_overdue(self, at: datetime) -> bool:
        """Whether the task is still open after its due time (a query, never an event)."""
        return self.status == "open" and at > self.due_at


def check_open(task: Task) -> None:
    check_not_completed(task)
    check_not_cancelled(task)


def check_not_completed(task: Task) -> None:
    if task.status == "completed":
        raise TaskAlreadyCompleted(task.id)


def check_not_cancelled(task: Task) -> None:
    if task.status == "cancelled":
        raise TaskAlreadyCancelled(task.id)


class TaskError(DomainError):
    """A command broke one of a task's rules."""

    def __init__(self, task_id: UUID, detail: str, **context: Any) -> None:
        super().__init__(detail, task_id=str(task_id), **context)
        self.task_id = task_id


class TaskAlreadyCompleted(TaskError):
    """A completed task is final: it cannot be reassigned or cancelled."""

    def __init__(self, task_id: UUID) -> None:
        super().__init__(task_id, f"Task {task_id} is completed")


class TaskAlreadyCancelled(TaskError):
    """A cancelled task is final: it cannot be reassigned or completed."""

    def __init__(self, task_id: UUID) -> None:
        super().__init__(task_id, f"Task {task_id} is cancelled")
