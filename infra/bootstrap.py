"""The composition root: settings in, a wired CRM application and HTTP API out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from api.deps import Health, HealthCheck
from api.main import create_api
from domain.application import CRM, CRMConfig
from domain.shared import Clock
from domain.sla import DEFAULT_POLICY, BusinessCalendar
from infra.persistence import event_store_env, migrate
from infra.services import ManagedServices, ServiceURLs, check_nats, check_postgres
from infra.settings import Settings


def crm_config(settings: Settings) -> CRMConfig:
    """The application's business defaults from settings."""
    return CRMConfig(
        phone_region=settings.phone_region,
        stage_probabilities=dict(settings.stage_probabilities),
        command_retries=settings.command_retries,
        sla_policy=DEFAULT_POLICY,
        calendar=BusinessCalendar(time_zone=settings.sla_timezone),
    )


def build_crm(settings: Settings, database_url: str | None, *, clock: Clock | None = None) -> CRM:
    """The CRM application on the configured event store (tables must exist: `crm migrate`)."""
    return CRM(
        env=event_store_env(settings, database_url), clock=clock, config=crm_config(settings)
    )


def health_checks(urls: ServiceURLs) -> dict[str, HealthCheck]:
    """Probes of the database and NATS for GET /health."""

    def database() -> Health:
        status = check_postgres(urls.database_url)
        return Health(ok=status.running, detail=status.detail, url=status.url)

    def nats() -> Health:
        status = check_nats(urls.nats_url)
        return Health(ok=status.running, detail=status.detail, url=status.url)

    return {"database": database, "nats": nats}


def managed_services(settings: Settings) -> ManagedServices:
    """External services from settings, embedded ones under `data_dir` for the rest."""
    return ManagedServices(
        settings.data_dir, database_url=settings.database_url, nats_url=settings.nats_url
    )


@dataclass
class Runtime:
    """Everything a running CRM process holds."""

    settings: Settings
    urls: ServiceURLs
    crm: CRM
    api: FastAPI


@contextmanager
def running(settings: Settings, *, run_migrations: bool = False) -> Iterator[Runtime]:
    """Find or start the services, build the app and API; stop what was started on exit."""
    services = managed_services(settings)
    with services as urls:
        if run_migrations:
            migrate(settings, urls.database_url)
        crm = build_crm(settings, urls.database_url)
        try:
            yield Runtime(settings, urls, crm, create_api(crm, health_checks(urls)))
        finally:
            crm.close()
