"""Service levels: the SLA board (open tickets, most urgent first) and SLA compliance."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from api.deps import CRMDep, Cursor, Limit, MinPosition, ReadModelsDep, allow
from api.errors import QUERY_PROBLEMS
from api.responses import json_response
from api.routes.analytics import PeriodParam, period_of
from api.routes.tickets import (
    NameFilter,
    SlaPublic,
    TicketPublic,
    TicketsPublic,
    wait_for_customers,
)
from domain.sla import Priority
from domain.ticket import Channel
from projections.readmodel import Row
from projections.sla_board import SlaState
from projections.visibility import Visibility

router = APIRouter(prefix="/sla", tags=["sla"])

Readable = Annotated[Visibility, allow("sla", "read")]


@router.get("/board", response_model=TicketsPublic, responses=QUERY_PROBLEMS)
def read_board(
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: Readable,
    team: NameFilter = None,
    agent: NameFilter = None,
    priority: Priority | None = None,
    state: SlaState | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> Response:
    """Open and waiting tickets, nearest due first, each on track, at risk or breached now."""
    if not visible.unrestricted:  # tickets' customers are looked up in customer 360
        read_models.customers.wait_for(min_position)
    now = crm.clock.now()
    rows, next_cursor = read_models.sla.board_page(
        now,
        crm.config.calendar,
        crm.config.sla_policy,
        team=team,
        agent=agent,
        priority=priority,
        state=state,
        visible=visible,
        limit=limit,
        cursor=cursor,
        min_position=min_position,
    )
    board = TicketsPublic(data=[board_entry(row) for row in rows], next_cursor=next_cursor)
    return json_response(board)


def board_entry(row: Row) -> TicketPublic:
    """A board row as a ticket: its SLA state is the one the board computed for the row."""
    sla = SlaPublic(**{name: row[name] for name in SlaPublic.model_fields})
    fields = {name: row[name] for name in TicketPublic.model_fields if name in row}
    return TicketPublic(**{**fields, "sla": sla})


class ComplianceRowPublic(BaseModel):
    """Met and breached first responses and resolutions of one group, with % met."""

    key: str | None
    first_response_met: int
    first_response_breached: int
    first_response_pct: float | None
    resolution_met: int
    resolution_breached: int
    resolution_pct: float | None


class CompliancePublic(BaseModel):
    """SLA outcomes grouped by team, priority or month (null percentages: nothing to count)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "key": "2026-03",
                            "first_response_met": 41,
                            "first_response_breached": 3,
                            "first_response_pct": 93.2,
                            "resolution_met": 30,
                            "resolution_breached": 5,
                            "resolution_pct": 85.7,
                        }
                    ]
                }
            ]
        }
    )

    data: list[ComplianceRowPublic]


@router.get("/compliance", response_model=CompliancePublic, responses=QUERY_PROBLEMS)
def read_compliance(
    read_models: ReadModelsDep,
    crm: CRMDep,
    visible: Readable,
    by: Literal["team", "priority", "month"] = "month",
    period: PeriodParam = None,
    team: NameFilter = None,
    priority: Priority | None = None,
    channel: Channel | None = None,
    region: NameFilter = None,
    min_position: MinPosition = None,
) -> CompliancePublic:
    """SLA compliance of the outcomes in `period`, by team, priority or month."""
    wait_for_customers(read_models, visible, min_position)
    time_zone = crm.config.calendar.time_zone
    sliced = period_of(period, time_zone)
    since, until = (None, None) if sliced is None else sliced.bounds()
    rows = read_models.sla.compliance(
        by,
        since=since,
        until=until,
        time_zone=time_zone,
        team=team,
        priority=priority,
        channel=channel,
        region=region,
        visible=visible,
        min_position=min_position,
    )
    return CompliancePublic(data=[ComplianceRowPublic(**row) for row in rows])
