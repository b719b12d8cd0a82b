"""Opportunities: open, move through the pipeline, win, lose, reopen; read from sales_funnel."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from api.access import visibility
from api.commands import CommanderDep, CommandPublic, check_new_record, reply
from api.deps import CurrentUser, Cursor, Limit, MinPosition, ReadModelsDep, allow
from api.errors import COMMAND_PROBLEMS, QUERY_PROBLEMS
from domain.opportunity import OpenStage, Stage
from domain.shared import NotFound
from projections.visibility import Visibility

router = APIRouter(prefix="/opportunities", tags=["opportunities"])

Readable = Annotated[Visibility, allow("opportunities", "read")]
Writable = Annotated[Visibility, allow("opportunities", "write")]

OPPORTUNITY_ID = "16fd2706-8baf-433b-82eb-8c7fada847da"
CUSTOMER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
LEAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"

Amount = Annotated[Decimal, Field(ge=0, description='Exact amount, e.g. `"12500.00"`.')]
Currency = Annotated[str, Field(min_length=3, max_length=3, description="ISO 4217 code.")]


def _examples(*examples: JsonDict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


class OpenOpportunityRequest(BaseModel):
    """A deal with a customer the caller may see; `owner` defaults to the caller."""

    model_config = _examples(
        {
            "customer_id": CUSTOMER_ID,
            "title": "500 units, annual contract",
            "amount": "12500.00",
            "currency": "CNY",
            "expected_close": "2025-06-30",
            "source_lead_id": LEAD_ID,
        }
    )

    customer_id: UUID
    title: str = Field(min_length=1, max_length=200)
    amount: Amount
    currency: Currency
    expected_close: date
    owner: str | None = Field(default=None, min_length=1, max_length=64)
    source_lead_id: UUID | None = None
    id: UUID | None = Field(default=None, description="Choose the id (else one is generated).")


class MoveStageRequest(BaseModel):
    """The open stage the deal moves to (forwards or back)."""

    model_config = _examples({"stage": "proposal"})

    stage: OpenStage


class ChangeAmountRequest(BaseModel):
    """The deal's new expected value (the currency may change too)."""

    model_config = _examples({"amount": "15000.00", "currency": "CNY"})

    amount: Amount
    currency: Currency


class ChangeCloseDateRequest(BaseModel):
    """When the deal is now expected to close."""

    model_config = _examples({"expected_close": "2025-07-31"})

    expected_close: date


class WinOpportunityRequest(BaseModel):
    """The final amount and the signed contract's reference."""

    model_config = _examples(
        {"amount": "14800.00", "currency": "CNY", "contract_reference": "C-2025-0042"}
    )

    amount: Amount
    currency: Currency
    contract_reference: str = Field(min_length=1, max_length=100)


class LoseOpportunityRequest(BaseModel):
    """Why the deal fell through, and to whom."""

    model_config = _examples({"reason": "price", "competitor": "Globex"})

    reason: str = Field(min_length=1, max_length=500)
    competitor: str | None = Field(default=None, max_length=200)


OPPORTUNITY_EXAMPLE: JsonDict = {
    "opportunity_id": OPPORTUNITY_ID,
    "title": "500 units, annual contract",
    "customer_id": CUSTOMER_ID,
    "lead_id": LEAD_ID,
    "owner": "mei",
    "region": "east",
    "channel": "web_form",
    "campaign": "spring-expo",
    "stage": "proposal",
    "amount": "12500.00",
    "currency": "CNY",
    "opened_at": "2025-03-02T10:00:00Z",
    "stage_entered_at": "2025-03-10T15:00:00Z",
    "closed_at": None,
}


class OpportunityPublic(BaseModel):
    """An opportunity as the sales funnel shows it (region is its customer's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [OPPORTUNITY_EXAMPLE]})

    opportunity_id: UUID
    title: str
    customer_id: UUID
    lead_id: UUID | None
    owner: str
    region: str | None
    channel: str | None
    campaign: str | None
    stage: Stage
    amount: Decimal
    currency: str
    opened_at: datetime
    stage_entered_at: datetime
    closed_at: datetime | None


class OpportunitiesPublic(BaseModel):
    """A page of opportunities, newest first; pass `next_cursor` as `cursor` for the next."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": [OPPORTUNITY_EXAMPLE], "next_cursor": None}]}
    )

    data: list[OpportunityPublic]
    next_cursor: str | None


@router.post("", status_code=201, response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def open_opportunity(
    body: OpenOpportunityRequest,
    response: Response,
    commands: CommanderDep,
    user: CurrentUser,
    visible: Writable,
) -> CommandPublic:
    """Open a deal, in `qualification`, for a live customer the caller may see."""
    customer = commands.customer(body.customer_id, visibility(user, "customers"))
    owner = body.owner or user.username
    check_new_record(visible, region=customer.region, owner=owner)
    if body.source_lead_id is not None:
        commands.lead(body.source_lead_id, visibility(user, "leads"))
    result = commands.run(
        commands.crm.open_opportunity,
        customer_id=body.customer_id,
        title=body.title,
        amount=body.amount,
        currency=body.currency,
        expected_close=body.expected_close,
        owner=owner,
        source_lead_id=body.source_lead_id,
        opportunity_id=body.id,
    )
    response.headers["Location"] = f"/opportunities/{result.id}"
    return reply(result, response)


@router.get("", response_model=OpportunitiesPublic, responses=QUERY_PROBLEMS)
def list_opportunities(
    read_models: ReadModelsDep,
    visible: Readable,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    stage: Stage | None = None,
    customer_id: UUID | None = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> OpportunitiesPublic:
    """Opportunities the caller may see, newest first, by owner, stage, customer or region."""
    rows, next_cursor = read_models.funnel.opportunities(
        owner=owner,
        stage=stage,
        customer_id=customer_id,
        region=region,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
        visible=visible,
    )
    return OpportunitiesPublic(
        data=[OpportunityPublic.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/{opportunity_id}", response_model=OpportunityPublic, responses=QUERY_PROBLEMS)
def read_opportunity(
    opportunity_id: UUID,
    read_models: ReadModelsDep,
    visible: Readable,
    min_position: MinPosition = None,
) -> OpportunityPublic:
    """One opportunity: its customer, owner, stage and amount."""
    row = read_models.funnel.opportunity(opportunity_id, min_position=min_position)
    if row is None or not visible.admits(region=row["region"], owner=row["owner"]):
        raise NotFound("opportunity", opportunity_id)
    return OpportunityPublic.model_validate(row)


@router.post("/{opportunity_id}/stage", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def move_stage(
    opportunity_id: UUID,
    body: MoveStageRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Move an open deal to another open stage (won and lost have their own routes)."""
    commands.opportunity(opportunity_id, visible)
    result = commands.run(
        commands.crm.move_opportunity_stage,
        opportunity_id,
        body.stage,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{opportunity_id}/amount", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def change_amount(
    opportunity_id: UUID,
    body: ChangeAmountRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Change an open deal's expected value."""
    commands.opportunity(opportunity_id, visible)
    result = commands.run(
        commands.crm.change_opportunity_amount,
        opportunity_id,
        body.amount,
        body.currency,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post(
    "/{opportunity_id}/close-date", response_model=CommandPublic, responses=COMMAND_PROBLEMS
)
def change_close_date(
    opportunity_id: UUID,
    body: ChangeCloseDateRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Move the date an open deal is expected to close."""
    commands.opportunity(opportunity_id, visible)
    result = commands.run(
        commands.crm.change_opportunity_expected_close,
        opportunity_id,
        body.expected_close,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{opportunity_id}/win", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def win_opportunity(
    opportunity_id: UUID,
    body: WinOpportunityRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Win a deal at `proposal` or `negotiation`, for the final amount."""
    commands.opportunity(opportunity_id, visible)
    result = commands.run(
        commands.crm.win_opportunity,
        opportunity_id,
        amount=body.amount,
        currency=body.currency,
        contract_reference=body.contract_reference,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{opportunity_id}/lose", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def lose_opportunity(
    opportunity_id: UUID,
    body: LoseOpportunityRequest,
    response: Response,
    commands: CommanderDep,
    visible: Writable,
) -> CommandPublic:
    """Lose an open deal, for a reason (maybe to a competitor)."""
    commands.opportunity(opportunity_id, visible)
    result = commands.run(
        commands.crm.lose_opportunity,
        opportunity_id,
        reason=body.reason,
        competitor=body.competitor,
        expected_version=commands.expected_version,
    )
    return reply(result, response)


@router.post("/{opportunity_id}/reopen", response_model=CommandPublic, responses=COMMAND_PROBLEMS)
def reopen_opportunity(
    opportunity_id: UUID, response: Response, commands: CommanderDep, visible: Writable
) -> CommandPublic:
    """Put a lost deal back in the pipeline, at the stage it was lost from."""
    commands.opportunity(opportunity_id, visible)
    result = commands.run(
        commands.crm.reopen_opportunity,
        opportunity_id,
        expected_version=commands.expected_version,
    )
    return reply(result, response)
