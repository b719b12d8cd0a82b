"""Business defaults of the application, filled from settings by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.sla import DEFAULT_CALENDAR, DEFAULT_POLICY, BusinessCalendar, SlaPolicy
from domain.values import DEFAULT_PHONE_REGION


@dataclass(frozen=True)
class CRMConfig:
    """Business defaults the composition root reads from settings."""

    phone_region: str = DEFAULT_PHONE_REGION
    stage_probabilities: Mapping[str, int] = field(default_factory=dict)
    command_retries: int = 5
    sla_policy: SlaPolicy = DEFAULT_POLICY
    calendar: BusinessCalendar = DEFAULT_CALENDAR
