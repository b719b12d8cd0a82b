"""Handoffs: how long each step from cause to effect takes, p50/p90 per kind, team and month.

A sales user's figures count only the handoffs they own, a manager's only their region's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import MinPosition, ReadModelsDep, allow
from api.errors import QUERY_PROBLEMS
from api.routes.tickets import NO_NUL
from projections.visibility import Visibility

router = APIRouter(prefix="/analytics", tags=["analytics"])

Readable = Annotated[Visibility, allow("analytics", "read")]

HandoffKind = Literal[
    "capture_to_assignment",
    "assignment_to_first_activity",
    "qualification_to_conversion",
    "win_to_onboarding",
    "breach_to_escalation",
]
MONTH_PATTERN = r"^(19|2\d)\d{2}-(0[1-9]|1[0-2])$"


class HandoffStatsPublic(BaseModel):
    """The handoffs of one kind, team and month (of their cause): how many, how fast."""

    kind: HandoffKind
    team: str | None = Field(
        description="The team the handoff went to: a ticket's team, or for leads and deals the "
        "owner's team as lead routing named it; else the owner (null: not yet owned)."
    )
    month: str = Field(description="The calendar month (UTC) of the cause, `YYYY-MM`.")
    count: int
    completed: int
    open: int = Field(description="Handoffs whose effect has not happened yet.")
    p50_seconds: float | None = Field(description="Median time from cause to effect.")
    p90_seconds: float | None


class HandoffsPublic(BaseModel):
    """Handoff times per kind, team and month, oldest month first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "kind": "capture_to_assignment",
                            "team": "li",
                            "month": "2026-03",
                            "count": 12,
                            "completed": 11,
                            "open": 1,
                            "p50_seconds": 540.0,
                            "p90_seconds": 3600.0,
                        }
                    ]
                }
            ]
        }
    )

    data: list[HandoffStatsPublic]


@router.get("/handoffs", response_model=HandoffsPublic, responses=QUERY_PROBLEMS)
def read_handoffs(
    read_models: ReadModelsDep,
    visible: Readable,
    kind: HandoffKind | None = None,
    team: Annotated[str | None, Query(min_length=1, max_length=100, pattern=NO_NUL)] = None,
    month: Annotated[
        str | None, Query(pattern=MONTH_PATTERN, description="`YYYY-MM`", examples=["2026-03"])
    ] = None,
    min_position: MinPosition = None,
) -> HandoffsPublic:
    """Time from cause to effect (capture -> assignment, assignment -> first activity,
    qualification -> conversion, win -> onboarding ticket, SLA breach and escalation -> the first
    action of a person on the ticket): count, open, p50 and p90."""
    rows = read_models.handoffs.handoffs(
        kind=kind, team=team, month=month, visible=visible, min_position=min_position
    )
    return HandoffsPublic(data=[HandoffStatsPublic(**row) for row in rows])
