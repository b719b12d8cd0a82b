"""Leads: capture, score, assign, work, qualify and convert (or request a conversion); the lead
queue from lead_queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, model_validator
from pydantic.config import JsonDict

from api.access import permits, visibility
from api.commands import CommanderDep, CommandPublic, check_new_record, reply
from api.deps import CurrentUser, Cursor, Limit, MinPosition, ReadModelsDep, RecordAccess, allow
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from domain.lead import MAX_SCORE, MIN_SCORE, ActivityKind, Channel, LeadStatus
from domain.shared import NotFound
from projections.visibility import Visibility

router = APIRouter(prefix="/leads", tags=["leads"])

Readable = Annotated[Visibility, allow("leads", "read")]
Writable = Annotated[Visibility, allow("leads", "write")]

LEAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CUSTOMER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
OPPORTUNITY_ID = "16fd2706-8baf-433b-82eb-8c7fada847da"


def _examples(*examples: JsonDict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


class UtmRequest(BaseModel):
    """The UTM parameters the lead arrived with."""

    model_config = _examples({"source": "newsletter", "medium": "email", "campaign": "spring"})

    source: str | None = Field(default=None, max_length=200)
    medium: str | None = Field(default=None, max_length=200)
    campaign: str | None = Field(default=None, max_length=200)
    term: str | None = Field(default=None, max_length=200)
    content: str | None = Field(default=None, max_length=200)


class CaptureLeadRequest(BaseModel):
    """A prospect from a channel; it needs an email or a phone. It starts unassigned."""

    model_config = _examples(
        {
            "channel": "web_form",
            "name": "Li Wei",
            "region": "east",
            "email": "li.wei@example.com",
            "company": "Acme Trading Co.",
            "campaign": "spring-expo",
            "interest": "bulk pricing",
            "utm": {"source": "newsletter", "medium": "email"},
        }
    )

    channel: Channel
    name: str = Field(min_length=1, max_length=200)
    region: str = Field(min_length=1, max_length=64)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=200)
    campaign: str | None = Field(default=None, max_length=100)
    interest: str | None = Field(default=None, max_length=500)
    utm: UtmRequest | None = None
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


class ScoreLeadRequest(BaseModel):
    """The lead's score and the reasons behind it."""

    model_config = _examples({"score": 72, "reasons": ["company size", "opened 3 emails"]})

    score: int = Field(ge=MIN_SCORE, le=MAX_SCORE)
    reasons: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=20
    )


class AssignLeadRequest(BaseModel):
    """Who works the lead from now on (a sales user may only take a lead themselves)."""

    model_config = _examples({"owner": "mei", "explanation": "speaks the customer's dialect"})

    owner: str = Field(min_length=1, max_length=64)
    explanation: str = Field(default="", max_length=500)


class LogLeadActivityRequest(BaseModel):
    """A call, email, meeting... with the lead; `occurred_at` defaults to now."""

    model_config = _examples(
        {"kind": "call", "summary": "Asked for a quote", "occurred_at": "2025-03-01T09:30:00Z"}
    )

    kind: ActivityKind
    summary: str = Field(min_length=1, max_length=2000)
    occurred_at: AwareDatetime | None = None
    id: UUID | None = Field(default=None, description="The activity's id (repeats are no-ops).")


class DisqualifyLeadRequest(BaseModel):
    """Why the lead is not worth pursuing."""

    model_config = _examples({"reason": "no budget this year"})

    reason: str = Field(min_length=1, max_length=500)


class ConvertLeadRequest(BaseModel):
    """The customer the qualified lead became (and the opportunity opened for it, if any).

    Register the customer (`POST /customers`) and open the opportunity (`POST /opportunities`)
    first; the caller must be allowed to see both. Without `customer_id` (or without a body) the
    conversion is only requested: the lead conversion saga finds or registers the customer and
    opens the opportunity.
    """

    model_config = _examples({"customer_id": CUSTOMER_ID, "opportunity_id": OPPORTUNITY_ID}, {})

    customer_id: UUID | None = None
    opportunity_id: UUID | None = None

    @model_validator(mode="after")
    def _opportunity_needs_customer(self) -> ConvertLeadRequest:
        if self.customer_id is None and self.opportunity_id is not None:
            raise ValueError("an opportunity_id needs the customer_id it belongs to")
        return self


CONVERT_EXAMPLES: dict[str, Any] = {
    "by_hand": {
        "summary": "Link the customer (and opportunity) registered by hand",
        "value": {"customer_id": CUSTOMER_ID, "opportunity_id": OPPORTUNITY_ID},
    },
    "request": {
        "summary": "Request the conversion (an empty body too): the saga does it, 202",
        "value": {},
    },
}
CONVERT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMAND_PROBLEMS,
    202: {
        "model": CommandPublic,
        "description": "Conversion requested; read with `min_position` to see it done.",
    },
}


LEAD_EXAMPLE: JsonDict = {
    "lead_id": LEAD_ID,
    "name": "Li Wei",
    "company": "Acme Trading Co.",
    "channel": "web_form",
    "campaign": "spring-expo",
    "region": "east",
    "status": "open",
    "owner": None,
    "score": 72,
    "captured_at": "2025-03-01T08:00:00Z",
    "first_activity_at": None,
    "last_activity_at": None,
    "converted_customer_id": None,
    "updated_at": "2025-03-01T08:05:00Z",
}


class LeadPublic(BaseModel):
    """A lead as the lead queue shows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [LEAD_EXAMPLE]})

    lead_id: UUID
    name: str
    company: str | None
    channel: Channel
    campaign: str | None
    region: str
    status: LeadStatus
    owner: str | None
    score: int | None
    captured_at: datetime
    first_activity_at: datetime | None
    last_activity_at: datetime | None
    converted_customer_id: UUID | None
    updated_at: datetime
    erased_at: datetime | None = Field(
        default=None, description="When the lead's personal data was erased (docs/privacy.md)."
    )


class LeadsPublic(BaseModel):
    """A page of the lead queue; pass `next_cursor` as `cursor` for the next one."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": [LEAD_EXAMPLE], "next_cursor": None}]}
    )

    data: list[LeadPublic]
    next_cursor: str | None


@router.post("", status_code=201, response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def capture_lead(
    body: CaptureLeadRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Capture a lead, unassigned, in a region the caller works in."""
    check_new_record(visible, region=body.region, owner=None)
    result = commands.run(
        commands.crm.capture_lead,
        channel=body.channel,
        name=body.name,
        region=body.region,
        email=body.email,
        phone=body.phone,
        company=body.company,
        campaign=body.campaign,
        interest=body.interest,
        utm=body.utm.model_dump() if body.utm else None,
        lead_id=body.id,
    )
    response.headers["Location"] = f"/leads/{result.id}"
    return reply(result, response)


@router.get("", response_model=LeadsPublic, responses=QUERY_PROBLEMS)
def lead_queue(
    read_models: ReadModelsDep,
    visible: Readable,
    status: LeadStatus | None = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> LeadsPublic:
    """The lead queue: unassigned first, then highest score, then oldest."""
    rows, next_cursor = read_models.leads.queue(
        status=status,
        owner=owner,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        visible=visible,
    )
    return LeadsPublic(
        data=[LeadPublic.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/{lead_id}", response_model=LeadPublic, responses=QUERY_PROBLEMS)
def read_lead(
    lead_id: UUID,
    read_models: ReadModelsDep,
    visible: Readable,
    record_access: RecordAccess,
    min_position: MinPosition = None,
) -> LeadPublic:
    """One lead: status, owner, score and activity times."""
    row = read_models.leads.get(lead_id, min_position=min_position)
    if row is None or not visible.admits(region=row["region"], owner=row["owner"]):
        raise NotFound("lead", lead_id)
    record_access("lead.read", "lead", lead_id)
    return LeadPublic.model_validate(row)


@router.post("/{lead_id}/score", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def score_lead(
    lead_id: UUID,
    body: ScoreLeadRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Score the lead from 0 to 100 (a converted lead is final: 409)."""
    commands.lead(lead_id, visible)
    result = commands.run(
        commands.crm.score_lead,
        lead_id,
        body.score,
        body.reasons,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{lead_id}/assign", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def assign_lead(
    lead_id: UUID,
    body: AssignLeadRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Give the lead to an owner; the caller must be allowed to see it afterwards (else 403)."""
    lead = commands.lead(lead_id, visible)
    if not visible.admits(region=lead.region, owner=body.owner):
        raise HTTPException(403, "You may not give a lead to someone whose leads you cannot see")
    result = commands.run(
        commands.crm.assign_lead,
        lead_id,
        body.owner,
        explanation=body.explanation,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{lead_id}/activities", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def log_lead_activity(
    lead_id: UUID,
    body: LogLeadActivityRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Log a call, email, message, meeting, visit or note with the lead."""
    commands.lead(lead_id, visible)
    result = commands.run(
        commands.crm.log_lead_activity,
        lead_id,
        kind=body.kind,
        summary=body.summary,
        occurred_at=body.occurred_at,
        activity_id=body.id,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{lead_id}/qualify", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def qualify_lead(
    lead_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Mark the lead a real opportunity (a disqualified one must be reopened first: 409)."""
    commands.lead(lead_id, visible)
    result = commands.run(
        commands.crm.qualify_lead, lead_id, expected_version=commands.expected_version
    )
    return reply(result, response)


@router.post("/{lead_id}/disqualify", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def disqualify_lead(
    lead_id: UUID,
    body: DisqualifyLeadRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Stop pursuing the lead, for a reason."""
    commands.lead(lead_id, visible)
    result = commands.run(
        commands.crm.disqualify_lead,
        lead_id,
        body.reason,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{lead_id}/reopen", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def reopen_lead(
    lead_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Work a disqualified lead again (any other open lead is left as it is)."""
    commands.lead(lead_id, visible)
    result = commands.run(
        commands.crm.reopen_lead, lead_id, expected_version=commands.expected_version
    )
    return reply(result, response)


@router.post("/{lead_id}/convert", response_model=CommandPublic, responses=CONVERT_RESPONSES)
def convert_lead(
    lead_id: UUID,
    response: Response,
    commands: CommanderDep,
    user: CurrentUser,
    visible: Writable,
    body: Annotated[ConvertLeadRequest | None, Body(openapi_examples=CONVERT_EXAMPLES)] = None,
) -> CommandPublic:
    """Record that the qualified lead became this customer (and opportunity); it is final.

    Without `customer_id` (or without a body) the conversion is only requested (202): the lead
    conversion saga then finds or registers the customer and opens the opportunity.
    """
    commands.lead(lead_id, visible)
    if body is None or body.customer_id is None:
        result = commands.run(
            commands.crm.request_lead_conversion,
            lead_id,
            expected_version=commands.expected_version,
        )
        response.status_code = 202
        return reply(result, response)
    # The records it links to must be ones the caller may see, else they answer 404 as well.
    commands.customer(body.customer_id, visibility(user, "customers"))
    if body.opportunity_id is not None:
        if not permits(user, "opportunities", "read"):
            raise HTTPException(403, f"A {user.role} may not read opportunities")
        commands.opportunity(body.opportunity_id, visibility(user, "opportunities"))
    result = commands.run(
        commands.crm.convert_lead,
        lead_id,
        body.customer_id,
        body.opportunity_id,
        expected_version=commands.expected_version,
    )
    return reply(result, response)
