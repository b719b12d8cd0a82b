"""Tickets: open and work service tickets; read them from the SLA board with their SLA state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.commands import Commander, CommanderDep, CommandPublic, reply
from api.deps import CRMDep, Cursor, Limit, MinPosition, ReadModelsDep, allow
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from api.services import ReadModels
from domain.application import CommandResult
from domain.application.config import CRMConfig
from domain.shared import NotFound
from domain.sla import Priority
from domain.ticket import Channel, TicketStatus
from projections.readmodel import Row
from projections.sla_board import SlaState, sla_status
from projections.visibility import Visibility

router = APIRouter(prefix="/tickets", tags=["tickets"])

Readable = Annotated[Visibility, allow("tickets", "read")]
Writable = Annotated[Visibility, allow("tickets", "write")]

ON_THE_BOARD = frozenset({TicketStatus.OPEN, TicketStatus.WAITING_ON_CUSTOMER})
EXAMPLE_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refuse it as invalid input
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
NameFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_NUL)]


# --- responses ---------------------------------------------------------------------------------


class SlaPublic(BaseModel):
    """Where an open ticket stands against its nearest pending due time, computed when read."""

    sla: str = Field(description="The clock that counts: `first_response`, then `resolution`.")
    paused: bool = Field(description="Waiting on the customer: the clock stands still.")
    remaining: timedelta = Field(description="Business time left (negative or zero: breached).")
    target: timedelta = Field(description="The priority's target for this clock.")
    state: SlaState


class TicketPublic(BaseModel):
    """A ticket as the SLA board keeps it; `sla` only while it is open or waiting."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ticket_id": EXAMPLE_ID,
                    "customer_id": "5f2b1c8e-7d7a-4a39-9b0e-2d7c6a3f1e10",
                    "channel": "email",
                    "category": "billing",
                    "priority": "P2",
                    "sla_policy_version": "2026-01",
                    "team": "support-east",
                    "agent": "wang",
                    "status": "open",
                    "escalation_level": 0,
                    "opened_at": "2026-03-02T01:00:00Z",
                    "first_response_due": "2026-03-02T05:00:00Z",
                    "first_responded_at": None,
                    "first_response_met": None,
                    "resolution_due": "2026-03-03T05:00:00Z",
                    "resolved_at": None,
                    "resolution_met": None,
                    "closed_at": None,
                    "paused_at": None,
                    "next_due": "2026-03-02T05:00:00Z",
                    "updated_at": "2026-03-02T01:00:00Z",
                    "sla": {
                        "sla": "first_response",
                        "paused": False,
                        "remaining": "PT3H",
                        "target": "PT4H",
                        "state": "on_track",
                    },
                }
            ]
        }
    )

    ticket_id: UUID
    customer_id: UUID
    channel: str
    category: str
    priority: Priority
    sla_policy_version: str
    team: str | None
    agent: str | None
    status: TicketStatus
    escalation_level: int
    opened_at: datetime
    first_response_due: datetime
    first_responded_at: datetime | None
    first_response_met: bool | None
    resolution_due: datetime
    resolved_at: datetime | None
    resolution_met: bool | None
    closed_at: datetime | None
    paused_at: datetime | None
    next_due: datetime
    updated_at: datetime
    sla: SlaPublic | None = None


class TicketsPublic(BaseModel):
    """A page of tickets and the cursor of the next page (null on the last)."""

    data: list[TicketPublic]
    next_cursor: str | None


def ticket_public(row: Row, now: datetime, config: CRMConfig) -> TicketPublic:
    """A read-model row, with its SLA state at `now` when it is on the board."""
    sla = None
    if row["status"] in ON_THE_BOARD:
        sla = SlaPublic(**sla_status(row, now, config.calendar, config.sla_policy))
    fields = {name: row[name] for name in TicketPublic.model_fields if name in row}
    return TicketPublic(**{**fields, "sla": sla})


def wait_for_customers(read_models: ReadModels, visible: Visibility, position: int | None) -> None:
    """A restricted read looks tickets' customers up in customer 360: let it catch up too."""
    if not visible.unrestricted:
        read_models.customers.wait_for(position)


# --- requests ----------------------------------------------------------------------------------


class OpenTicketRequest(BaseModel):
    """A customer's request for help; due times come from the current SLA policy."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "5f2b1c8e-7d7a-4a39-9b0e-2d7c6a3f1e10",
                    "channel": "email",
                    "subject": "Invoice 2026-031 charged twice",
                    "description": "The March invoice appears twice on our statement.",
                    "priority": "P2",
                    "category": "billing",
                }
            ]
        },
    )

    customer_id: UUID
    channel: Channel
    subject: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    description: str = Field(default="", max_length=10_000, pattern=NO_NUL)
    priority: Priority = Priority.P3
    category: str = Field(default="general", min_length=1, max_length=64, pattern=NO_NUL)
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


class AssignTicketRequest(BaseModel):
    """The agent (and team) who works the ticket."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"agent": "wang", "team": "support-east"}]}
    )

    agent: Name
    team: Name | None = None


class EscalateTicketRequest(BaseModel):
    """Raise the ticket's escalation level (1 to 3; it never goes down)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"level": 2, "reason": "Customer threatens to cancel"}]},
    )

    level: int = Field(ge=1, le=3)
    reason: str = Field(default="", max_length=1000, pattern=NO_NUL)


class ResolveTicketRequest(BaseModel):
    """How the problem was solved."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"resolution": "Refunded the duplicate charge"}]},
    )

    resolution: str = Field(min_length=1, max_length=10_000, pattern=NO_NUL)


class RateTicketRequest(BaseModel):
    """The customer's satisfaction with a resolved ticket (CSAT 1 to 5), once."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"score": 5, "comment": "Quick, thanks"}]}
    )

    score: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000, pattern=NO_NUL)


class ChangeTicketPriorityRequest(BaseModel):
    """A new priority; the due times are recomputed from the opening."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"priority": "P1"}]})

    priority: Priority


# --- commands ----------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def open_ticket(
    body: OpenTicketRequest, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Open a ticket for a customer the caller may see."""
    commands.customer(body.customer_id, visible)
    result = commands.run(
        commands.crm.open_ticket,
        customer_id=body.customer_id,
        channel=body.channel,
        subject=body.subject,
        description=body.description,
        priority=body.priority,
        category=body.category,
        ticket_id=body.id,
    )
    response.headers["Location"] = f"/tickets/{result.id}"
    return reply(result, response)


def change(
    commands: Commander,
    ticket_id: UUID,
    visible: Visibility,
    response: Response,
    use_case: Callable[..., CommandResult],
    *args: Any,
) -> CommandPublic:
    """Run a command on a ticket the caller may see, based on the If-Match version."""
    commands.ticket(ticket_id, visible)
    result = commands.run(use_case, ticket_id, *args, expected_version=commands.expected_version)
    return reply(result, response)


@router.post("/{ticket_id}/assign", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def assign_ticket(
    ticket_id: UUID,
    body: AssignTicketRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Give an open ticket to an agent (and team)."""
    use_case = commands.crm.assign_ticket
    return change(commands, ticket_id, visible, response, use_case, body.agent, body.team)


@router.post("/{ticket_id}/respond", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def respond_to_ticket(
    ticket_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Record the first response to the customer (a repeat changes nothing)."""
    use_case = commands.crm.record_ticket_first_response
    return change(commands, ticket_id, visible, response, use_case)


@router.post("/{ticket_id}/wait", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def wait_on_customer(
    ticket_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Wait on the customer: the SLA clock stops until the ticket resumes."""
    return change(commands, ticket_id, visible, response, commands.crm.wait_on_customer)


@router.post("/{ticket_id}/resume", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def resume_ticket(
    ticket_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """The customer answered: the SLA clock runs again, due times pushed back by the pause."""
    return change(commands, ticket_id, visible, response, commands.crm.resume_ticket)


@router.post("/{ticket_id}/escalate", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def escalate_ticket(
    ticket_id: UUID,
    body: EscalateTicketRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Raise an open ticket's escalation level."""
    use_case = commands.crm.escalate_ticket
    return change(commands, ticket_id, visible, response, use_case, body.level, body.reason)


@router.post("/{ticket_id}/priority", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def change_ticket_priority(
    ticket_id: UUID,
    body: ChangeTicketPriorityRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Change an open ticket's priority; its due times follow."""
    use_case = commands.crm.change_ticket_priority
    return change(commands, ticket_id, visible, response, use_case, body.priority)


@router.post("/{ticket_id}/resolve", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def resolve_ticket(
    ticket_id: UUID,
    body: ResolveTicketRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Resolve an open ticket (resolving a resolved one changes nothing)."""
    use_case = commands.crm.resolve_ticket
    return change(commands, ticket_id, visible, response, use_case, body.resolution)


@router.post("/{ticket_id}/close", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def close_ticket(
    ticket_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Close a resolved ticket for good."""
    return change(commands, ticket_id, visible, response, commands.crm.close_ticket)


@router.post("/{ticket_id}/reopen", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def reopen_ticket(
    ticket_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Reopen a resolved ticket within 14 days of its resolution (never a closed one)."""
    return change(commands, ticket_id, visible, response, commands.crm.reopen_ticket)


@router.post("/{ticket_id}/rating", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def rate_ticket(
    ticket_id: UUID,
    body: RateTicketRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Record the customer's rating of a resolved ticket."""
    use_case = commands.crm.rate_ticket
    return change(commands, ticket_id, visible, response, use_case, body.score, body.comment)


# --- queries -----------------------------------------------------------------------------------


@router.get("", response_model=TicketsPublic, responses=QUERY_PROBLEMS)
def list_tickets(
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: Readable,
    status: TicketStatus | None = None,
    priority: Priority | None = None,
    team: NameFilter = None,
    agent: NameFilter = None,
    customer_id: UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> TicketsPublic:
    """Tickets the caller may see, newest first; open ones with their SLA state now."""
    wait_for_customers(read_models, visible, min_position)
    rows, next_cursor = read_models.sla.tickets(
        status=status,
        priority=priority,
        team=team,
        agent=agent,
        customer_id=customer_id,
        visible=visible,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
    )
    now = crm.clock.now()
    data = [ticket_public(row, now, crm.config) for row in rows]
    return TicketsPublic(data=data, next_cursor=next_cursor)


@router.get("/{ticket_id}", response_model=TicketPublic, responses=QUERY_PROBLEMS)
def read_ticket(
    ticket_id: UUID,
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: Readable,
    min_position: MinPosition = None,
) -> TicketPublic:
    """One ticket, with its SLA state computed now when it is open or waiting."""
    wait_for_customers(read_models, visible, min_position)
    row = read_models.sla.ticket(ticket_id, min_position=min_position, visible=visible)
    if row is None:
        raise NotFound("ticket", ticket_id)
    return ticket_public(row, crm.clock.now(), crm.config)
