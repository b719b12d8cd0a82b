"""Annotated dependencies the routes ask for (the composition root fills `app.state`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from domain.application import CRM


@dataclass(frozen=True)
class Health:
    """Result of one health probe."""

    ok: bool
    detail: str
    url: str | None = None


HealthCheck = Callable[[], Health]


def get_crm(request: Request) -> CRM:
    crm: CRM = request.app.state.crm
    return crm


def get_health_checks(request: Request) -> Mapping[str, HealthCheck]:
    checks: Mapping[str, HealthCheck] = request.app.state.health_checks
    return checks


CRMDep = Annotated[CRM, Depends(get_crm)]
HealthChecks = Annotated[Mapping[str, HealthCheck], Depends(get_health_checks)]
