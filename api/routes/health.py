"""Liveness and dependency health: is the event store reachable, is NATS up, and (given the
CRM) do the read models, the relay and the sagas run."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from api.deps import PUBLIC, HealthChecks

router = APIRouter(prefix="/health", tags=["health"])


class DependencyHealth(BaseModel):
    """State of one dependency."""

    ok: bool
    detail: str
    url: str | None = None


class HealthPublic(BaseModel):
    """Overall state; `status` is `ok` only when every dependency is."""

    status: str
    checks: dict[str, DependencyHealth]


@router.get(
    "", response_model=HealthPublic, responses={503: {"model": HealthPublic}}, dependencies=[PUBLIC]
)
def read_health(request: Request, response: Response, checks: HealthChecks) -> HealthPublic:
    """Report each dependency's state; 503 if the database is down, `degraded` if anything
    else is not ok (NATS down, a read model or saga stopped or not running, the relay behind)."""
    results = {name: DependencyHealth(**check().__dict__) for name, check in checks.items()}
    essential_ok = results["database"].ok if "database" in results else True
    if not essential_ok:
        response.status_code = 503
    status = "ok" if all(r.ok for r in results.values()) else "degraded"
    return HealthPublic(status=status if essential_ok else "down", checks=results)
