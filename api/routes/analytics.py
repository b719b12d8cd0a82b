"""Sales analytics: the funnel (stages, conversion, days in stage, stalled deals) and forecast.

A sales user's figures count only their own records, a manager's only their region's; amounts
are summed per currency, never converted.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CRMDep, Cursor, Limit, MinPosition, ReadModelsDep, allow
from api.errors import QUERY_PROBLEMS
from api.routes.tickets import NO_NUL
from domain.opportunity import OpenStage, Stage
from projections.sales_funnel import Period
from projections.visibility import Visibility

router = APIRouter(prefix="/analytics", tags=["analytics"])

Readable = Annotated[Visibility, allow("analytics", "read")]
# Deal-level figures (each deal's owner and amount, the forecast): for roles that see deals.
PipelineReadable = Annotated[Visibility, allow("pipeline", "read")]

PERIOD_PATTERN = r"^(19|2\d)\d{2}-(0[1-9]|1[0-2]|W(0[1-9]|[1-4]\d|5[0-3]))$"
PeriodParam = Annotated[
    str | None,
    Query(
        pattern=PERIOD_PATTERN,
        description="A calendar month (`2026-03`) or ISO week (`2026-W10`) in the business's "
        "time zone.",
        examples=["2026-03"],
    ),
]
LAST_MONTH = date.max.replace(day=1)
Filter = Annotated[str | None, Query(min_length=1, max_length=100, pattern=NO_NUL)]


def period_of(text: str | None, time_zone: str) -> Period | None:
    """`2026-03` as that month, `2026-W10` as that ISO week; 422 for a week the year lacks."""
    if text is None:
        return None
    year, rest = text.split("-", 1)
    try:
        if not rest.startswith("W"):
            return Period.month(int(year), int(rest), time_zone)
        return Period.week_of(date.fromisocalendar(int(year), int(rest[1:]), 1), time_zone)
    except ValueError:
        raise HTTPException(422, f"There is no period {text}") from None


# --- the funnel ----------------------------------------------------------------------------------


class FunnelStagePublic(BaseModel):
    """Opportunities now in a stage, in one currency."""

    stage: Stage
    currency: str
    count: int
    amount: Decimal


class ConversionPublic(BaseModel):
    """Counts at each step from lead to won, and each step's rate (null when nothing to count)."""

    leads: int
    qualified: int
    converted: int
    converted_with_opportunity: int
    opportunities: int
    won: int
    lost: int
    lead_to_qualified: float | None
    qualified_to_converted: float | None
    converted_to_opportunity: float | None
    opportunity_to_won: float | None
    win_rate: float | None


class DaysInStagePublic(BaseModel):
    """How long deals stayed in an open stage, on average."""

    stage: OpenStage
    periods: int
    average_days: float


class FunnelPublic(BaseModel):
    """The sales funnel of a slice: stages, conversion and average days in each stage."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stages": [
                        {"stage": "proposal", "currency": "CNY", "count": 3, "amount": "450000"}
                    ],
                    "conversion": {
                        "leads": 40,
                        "qualified": 20,
                        "converted": 10,
                        "converted_with_opportunity": 9,
                        "opportunities": 12,
                        "won": 3,
                        "lost": 2,
                        "lead_to_qualified": 0.5,
                        "qualified_to_converted": 0.5,
                        "converted_to_opportunity": 0.9,
                        "opportunity_to_won": 0.25,
                        "win_rate": 0.6,
                    },
                    "days_in_stage": [
                        {"stage": "qualification", "periods": 8, "average_days": 6.5}
                    ],
                }
            ]
        }
    )

    stages: list[FunnelStagePublic]
    conversion: ConversionPublic
    days_in_stage: list[DaysInStagePublic]


@router.get("/funnel", response_model=FunnelPublic, responses=QUERY_PROBLEMS)
def read_funnel(
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: Readable,
    period: PeriodParam = None,
    owner: Filter = None,
    region: Filter = None,
    channel: Filter = None,
    campaign: Filter = None,
    include_current_stays: Annotated[
        bool, Query(description="Count deals still in a stage, up to now, in days in stage.")
    ] = False,
    min_position: MinPosition = None,
) -> FunnelPublic:
    """Stages, conversion from lead to won, and days in stage, for records entered in `period`."""
    funnel = read_models.funnel
    sliced = period_of(period, crm.config.calendar.time_zone)
    stages = funnel.stages(
        period=sliced,
        owner=owner,
        region=region,
        channel=channel,
        campaign=campaign,
        visible=visible,
        min_position=min_position,
    )
    conversion = funnel.conversion(
        period=sliced,
        owner=owner,
        region=region,
        channel=channel,
        campaign=campaign,
        visible=visible,
    )
    days = funnel.average_days_in_stage(
        now=crm.clock.now() if include_current_stays else None,
        period=sliced,
        owner=owner,
        region=region,
        channel=channel,
        campaign=campaign,
        visible=visible,
    )
    return FunnelPublic(
        stages=[FunnelStagePublic(**row) for row in stages],
        conversion=ConversionPublic.model_validate(conversion),
        days_in_stage=[DaysInStagePublic(**row) for row in days],
    )


class StalledDealPublic(BaseModel):
    """An open deal longer in its stage than the stage's threshold."""

    opportunity_id: UUID
    title: str
    owner: str
    region: str | None
    stage: OpenStage
    amount: Decimal
    currency: str
    stage_entered_at: datetime
    threshold_days: int
    days_in_stage: float
    stalled_since: datetime


class StalledDealsPublic(BaseModel):
    """A page of stalled deals, longest overdue first, and the cursor of the next page."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "opportunity_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                            "title": "Acme ERP rollout",
                            "owner": "li",
                            "region": "east",
                            "stage": "proposal",
                            "amount": "120000",
                            "currency": "CNY",
                            "stage_entered_at": "2026-01-05T02:00:00Z",
                            "threshold_days": 30,
                            "days_in_stage": 41.3,
                            "stalled_since": "2026-02-04T02:00:00Z",
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    data: list[StalledDealPublic]
    next_cursor: str | None


@router.get("/funnel/stalled", response_model=StalledDealsPublic, responses=QUERY_PROBLEMS)
def list_stalled_deals(
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: PipelineReadable,
    owner: Filter = None,
    region: Filter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> StalledDealsPublic:
    """Open deals that sat in their stage past its threshold, longest overdue first."""
    rows, next_cursor = read_models.funnel.stalled_deals(
        crm.clock.now(),
        owner=owner,
        region=region,
        visible=visible,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
    )
    data = [StalledDealPublic(**row) for row in rows]
    return StalledDealsPublic(data=data, next_cursor=next_cursor)


# --- the forecast --------------------------------------------------------------------------------


class ForecastRowPublic(BaseModel):
    """One expected-close month of one owner, region and currency."""

    month: date
    owner: str
    region: str | None
    currency: str
    open_count: int
    open_amount: Decimal
    weighted_amount: Decimal = Field(description="Open amounts times their stage's probability.")
    committed_amount: Decimal = Field(description="Open amounts in negotiation.")
    won_count: int
    won_amount: Decimal


class ForecastPublic(BaseModel):
    """The pipeline forecast by expected-close month, owner, region and currency."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "month": "2026-04-01",
                            "owner": "li",
                            "region": "east",
                            "currency": "CNY",
                            "open_count": 4,
                            "open_amount": "600000",
                            "weighted_amount": "210000",
                            "committed_amount": "150000",
                            "won_count": 1,
                            "won_amount": "80000",
                        }
                    ]
                }
            ]
        }
    )

    data: list[ForecastRowPublic]


@router.get("/forecast", response_model=ForecastPublic, responses=QUERY_PROBLEMS)
def read_forecast(
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: PipelineReadable,
    owner: Filter = None,
    region: Filter = None,
    from_month: Annotated[
        date | None, Query(description="First expected-close month (any of its days).")
    ] = None,
    to_month: Annotated[
        date | None, Query(description="Last expected-close month (any of its days).")
    ] = None,
    min_position: MinPosition = None,
) -> ForecastPublic:
    """Open, weighted, committed and won amounts per expected-close month (lost deals left out)."""
    if to_month is not None and to_month >= LAST_MONTH:
        to_month = None  # up to the last month a date can name: no upper bound at all
    rows = read_models.forecast.forecast(
        probabilities=crm.config.stage_probabilities,
        owner=owner,
        region=region,
        from_month=from_month,
        to_month=to_month,
        visible=visible,
        min_position=min_position,
    )
    return ForecastPublic(data=[ForecastRowPublic(**row) for row in rows])
