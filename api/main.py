"""Builds the FastAPI application from already-composed services (see infra.bootstrap)."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.guards import NulGuard
from api.idempotency import IdempotencyMiddleware
from api.metrics import install_metrics
from api.routes import (
    analytics,
    audit,
    auth,
    campaigns,
    customers,
    events,
    handoffs,
    health,
    leads,
    metrics,
    opportunities,
    privacy,
    sla,
    tasks,
    tickets,
)
from api.services import ApiServices

DESCRIPTION = """
Event-sourced CRM: customers, leads, opportunities and service tickets with SLAs.

* Every change is an immutable event; commands answer `{id, version, position}` with an `ETag`.
* Send `If-Match: "<version>"` to make a command fail with 412 if the record changed meanwhile.
* Send `Idempotency-Key` on any POST: a repeat within 24 h replays the first answer.
* Pass a command's `position` as `?min_position=` (or `X-Min-Position`) to read your own write.
* Errors are RFC 9457 `application/problem+json`.
* Log in at `POST /auth/token` and send `Authorization: Bearer <token>`.
"""

ROUTERS = (
    health,
    auth,
    customers,
    campaigns,
    privacy,
    leads,
    opportunities,
    tickets,
    tasks,
    analytics,
    handoffs,
    sla,
    audit,
    events,
    metrics,
)


def create_api(services: ApiServices) -> FastAPI:
    """The HTTP API over the CRM, its read models and the API's own stores."""

    api = FastAPI(title="CRM", version="0.1.0", description=DESCRIPTION)
    api.state.services = services
    install_error_handlers(api)
    for module in ROUTERS:
        api.include_router(module.router)
    api.add_middleware(IdempotencyMiddleware, store=services.idempotency, tokens=services.tokens)
    api.add_middleware(NulGuard)
    install_metrics(api, services)  # outermost: idempotent replays are counted too
    return api
