"""Where an open ticket stands against its SLA at a given instant: on track, at risk or breached."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.sla import ZERO, BusinessCalendar, Priority, SlaPolicy
from projections.readmodel import Row

FIRST_RESPONSE, RESOLUTION = "first_response", "resolution"  # the two measures of an SLA

# The board's state is computed when it is read, from the stored due times, the policy's targets
# and the caller's `now`, so it is right even when no event has happened for hours. The clock that
# counts is the nearest pending one: the first response's until it is given, then the resolution's.
# At risk means less than AT_RISK_SHARE of the priority's policy target is left (the policy target,
# not the time since the clock last restarted: the due times are the opening plus the target plus
# the pauses, so the target is the whole budget, and a resume does not reset the 25 % threshold).
# Breached means no business time is left (`now` at or past the due time). While a ticket waits
# on the customer its remaining time is frozen at its value when the pause began.
AT_RISK_SHARE = 0.25


class SlaState(StrEnum):
    """Where a ticket stands against its nearest pending due time."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"


def sla_status(
    row: Row, now: datetime, calendar: BusinessCalendar, policy: SlaPolicy
) -> dict[str, Any]:
    """The computed fields of a board row: which clock counts, time left, target and state."""
    measure = FIRST_RESPONSE if row["first_responded_at"] is None else RESOLUTION
    target: timedelta = getattr(policy.targets[Priority(row["priority"])], measure)
    paused = row["status"] == "waiting_on_customer"
    clock = row["paused_at"] if paused else now  # a paused clock shows when it stopped
    remaining = calendar.business_time_between(clock, row["next_due"])
    if remaining <= ZERO:
        state = SlaState.BREACHED
    elif remaining < target * AT_RISK_SHARE:
        state = SlaState.AT_RISK
    else:
        state = SlaState.ON_TRACK
    return {
        "sla": measure,
        "paused": paused,
        "remaining": remaining,
        "target": target,
        "state": state,
    }
