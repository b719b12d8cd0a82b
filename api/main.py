"""Builds the FastAPI application from an already-composed CRM (see infra.bootstrap)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from api.deps import HealthCheck
from api.errors import install_error_handlers
from api.routes import health
from domain.application import CRM

DESCRIPTION = """
Event-sourced CRM: customers, leads, opportunities and service tickets with SLAs.
Every change is an immutable event; errors are RFC 9457 `application/problem+json`.
"""


def create_api(crm: CRM, health_checks: Mapping[str, HealthCheck]) -> FastAPI:
    """The HTTP API over `crm`; `health_checks` probe the infrastructure for /health."""
    api = FastAPI(title="CRM", version="0.1.0", description=DESCRIPTION)
    api.state.crm = crm
    api.state.health_checks = dict(health_checks)
    install_error_handlers(api)
    api.include_router(health.router)
    return api
