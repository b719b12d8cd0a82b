"""Tasks: work handed to a person or a team; listed from task_list, overdue computed when read.

Who sees which task (api/access.py): admins and auditors all of them; everyone else the tasks
assigned to them or to their team (the `team` of their token). Only admins and managers may
create a task for, or move one to, a team other than their own (403).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from api.access import Resource, permits, visibility
from api.commands import Commander, CommanderDep, CommandPublic, reply
from api.deps import CRMDep, CurrentUser, Cursor, Limit, MinPosition, ReadModelsDep, allow
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from api.security import Principal
from domain.application import CommandResult
from domain.shared import NotFound
from domain.task import RelatedKind, Task, TaskPriority, TaskStatus
from projections.readmodel import Row
from projections.task_list import is_overdue
from projections.visibility import Visibility

router = APIRouter(prefix="/tasks", tags=["tasks"])

Readable = Annotated[Visibility, allow("tasks", "read")]
Writable = Annotated[Visibility, allow("tasks", "write")]

TASK_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
CUSTOMER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as invalid input
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
NameFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL)]
ANY_TEAM = frozenset({"admin", "manager"})  # roles that may hand work to any team


def _examples(*examples: JsonDict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


# --- responses ---------------------------------------------------------------------------------

TASK_EXAMPLE: JsonDict = {
    "task_id": TASK_ID,
    "title": "Call back about the premium plan",
    "assignee": "mei",
    "team": "east-sales",
    "related_kind": "customer",
    "related_id": CUSTOMER_ID,
    "due_at": "2026-03-02T03:00:00Z",
    "priority": "normal",
    "status": "open",
    "source_saga": None,
    "cause_id": None,
    "created_at": "2026-03-02T01:00:00Z",
    "closed_at": None,
    "updated_at": "2026-03-02T01:00:00Z",
    "overdue": False,
}


class TaskPublic(BaseModel):
    """A task as the task list keeps it; `overdue` is computed when read (open, past due)."""

    model_config = ConfigDict(json_schema_extra={"examples": [TASK_EXAMPLE]})

    task_id: UUID
    title: str
    assignee: str | None = Field(description="The person; null: the team's queue.")
    team: str
    related_kind: RelatedKind
    related_id: UUID
    due_at: datetime
    priority: TaskPriority
    status: TaskStatus
    source_saga: str | None = Field(description="The saga that created it; null: by hand.")
    cause_id: UUID | None = Field(description="The event that caused it (sagas' tasks).")
    created_at: datetime
    closed_at: datetime | None
    updated_at: datetime
    overdue: bool


class TasksPublic(BaseModel):
    """A page of tasks, soonest due first; pass `next_cursor` as `cursor` for the next one."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": [TASK_EXAMPLE], "next_cursor": None}]}
    )

    data: list[TaskPublic]
    next_cursor: str | None


def task_public(row: Row, now: datetime) -> TaskPublic:
    fields = {name: row[name] for name in TaskPublic.model_fields if name in row}
    return TaskPublic(**fields, overdue=is_overdue(row, now))


# --- requests ----------------------------------------------------------------------------------


class CreateTaskRequest(BaseModel):
    """Work about an existing lead, customer, opportunity or ticket (unknown record: 404).

    `assignee` null leaves it in the team's queue. Only admins and managers may create a task
    for a team other than their own (403).
    """

    model_config = _examples(
        {
            "title": "Call back about the premium plan",
            "team": "east-sales",
            "related_kind": "customer",
            "related_id": CUSTOMER_ID,
            "due_at": "2026-03-02T03:00:00Z",
            "assignee": "mei",
            "priority": "high",
        }
    )

    title: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    team: Name
    related_kind: RelatedKind
    related_id: UUID
    due_at: AwareDatetime
    assignee: Name | None = None
    priority: TaskPriority = "normal"
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


class ReassignTaskRequest(BaseModel):
    """A new assignee (null: the team's queue) and, optionally, a new team."""

    model_config = _examples({"assignee": "wang", "team": "east-sales"}, {"assignee": None})

    assignee: Name | None
    team: Name | None = None


class CompleteTaskRequest(BaseModel):
    """What was done (optional)."""

    model_config = _examples({"note": "Called, sent the offer"})

    note: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)


class CancelTaskRequest(BaseModel):
    """Why the work is no longer needed."""

    model_config = _examples({"reason": "Customer asked not to be sent paper"})

    reason: str = Field(min_length=1, max_length=2000, pattern=NO_NUL)


def check_team(user: Principal, team: str | None) -> None:
    """Only admins and managers hand work to a team other than their own (else 403)."""
    if team is not None and user.role not in ANY_TEAM and team != user.team:
        raise HTTPException(403, "You may not hand work to a team other than your own")


# --- commands ----------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def create_task(
    body: CreateTaskRequest,
    response: Response,
    commands: CommanderDep,
    user: CurrentUser,
    visible: Writable,
) -> CommandPublic:
    """Create a task about an existing record, due at a time with a time zone."""
    check_team(user, body.team)
    check_related_visible(commands, user, body.related_kind, body.related_id)
    result = commands.run(
        commands.crm.create_task,
        title=body.title,
        team=body.team,
        related_kind=body.related_kind,
        related_id=body.related_id,
        due_at=body.due_at,
        assignee=body.assignee,
        priority=body.priority,
        task_id=body.id,
    )
    response.headers["Location"] = f"/tasks/{result.id}"
    return reply(result, response)


def check_related_visible(
    commands: Commander, user: Principal, kind: RelatedKind, record_id: UUID
) -> None:
    """The record a task is about must be one the caller may see (else 404, like unknown)."""
    resource: Resource = RELATED_RESOURCES[kind]
    if not permits(user, resource, "read"):
        raise NotFound(kind, record_id)
    loaders = {
        "customer": commands.customer,
        "lead": commands.lead,
        "opportunity": commands.opportunity,
        "ticket": commands.ticket,
    }
    loaders[kind](record_id, visibility(user, resource))


RELATED_RESOURCES: dict[str, Resource] = {
    "customer": "customers",
    "lead": "leads",
    "opportunity": "opportunities",
    "ticket": "tickets",
}


def load_task(commands: Commander, task_id: UUID, visible: Visibility) -> Task:
    """The task's current state, if the caller may see it (else 404, as for an unknown id)."""
    task = commands.crm.commands.load(Task, task_id)
    if not visible.admits(assignee=task.assignee, team=task.team):
        raise NotFound("task", task_id)
    return task


def change(
    commands: Commander,
    task_id: UUID,
    visible: Visibility,
    response: Response,
    use_case: Callable[..., CommandResult],
    *args: Any,
) -> CommandPublic:
    """Run a command on a task the caller may see, based on the If-Match version."""
    load_task(commands, task_id, visible)
    result = commands.run(use_case, task_id, *args, expected_version=commands.expected_version)
    return reply(result, response)


@router.post("/{task_id}/reassign", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def reassign_task(
    task_id: UUID,
    body: ReassignTaskRequest,
    response: Response,
    commands: CommanderDep,
    user: CurrentUser,
    visible: Writable,
) -> CommandPublic:
    """Give an open task to another assignee (and team); a completed or cancelled one: 409."""
    load_task(commands, task_id, visible)
    check_team(user, body.team)
    result = commands.run(
        commands.crm.reassign_task,
        task_id,
        body.assignee,
        body.team,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{task_id}/complete", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def complete_task(
    task_id: UUID,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
    body: Annotated[
        CompleteTaskRequest | None,
        Body(openapi_examples={"note": {"value": {"note": "Called, sent the offer"}}}),
    ] = None,
) -> CommandPublic:
    """Mark the work done (again: no change); a cancelled task cannot be completed (409)."""
    note = body.note if body is not None else None
    return change(commands, task_id, visible, response, commands.crm.complete_task, note)


@router.post("/{task_id}/cancel", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def cancel_task(
    task_id: UUID,
    body: CancelTaskRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Drop work no longer needed (again: no change); a completed task cannot be (409)."""
    return change(commands, task_id, visible, response, commands.crm.cancel_task, body.reason)


# --- queries -----------------------------------------------------------------------------------


@router.get("", response_model=TasksPublic, responses=QUERY_PROBLEMS)
def list_tasks(
    read_models: ReadModelsDep,
    crm: CRMDep,
    user: CurrentUser,
    visible: Readable,
    mine: Annotated[bool, Query(description="Only tasks assigned to the caller.")] = False,
    team: NameFilter = None,
    status: TaskStatus | None = None,
    overdue: Annotated[
        bool, Query(description="Only open tasks whose due time has passed.")
    ] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> TasksPublic:
    """Tasks the caller may see, soonest due first; `mine` and `team` narrow them down."""
    now = crm.clock.now()
    rows, next_cursor = read_models.tasks.tasks(
        assignee=user.username if mine else None,
        team=team,
        status=status,
        overdue_at=now if overdue else None,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        visible=visible,
    )
    return TasksPublic(data=[task_public(row, now) for row in rows], next_cursor=next_cursor)


@router.get("/{task_id}", response_model=TaskPublic, responses=QUERY_PROBLEMS)
def read_task(
    task_id: UUID,
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: Readable,
    min_position: MinPosition = None,
) -> TaskPublic:
    """One task, with whether it is overdue now."""
    row = read_models.tasks.task(task_id, min_position=min_position)
    if row is None or not visible.admits(assignee=row["assignee"], team=row["team"]):
        raise NotFound("task", task_id)
    return task_public(row, crm.clock.now())
