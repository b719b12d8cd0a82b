"""The composition root: settings in, a wired CRM application and HTTP API out."""

from __future__ import annotations

import gc
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from api.main import create_api
from api.services import ApiServices, Health, HealthCheck, ReadModels
from api.token_cache import CachingTokenService
from domain.application import CRM, CRMConfig
from domain.shared import Clock
from domain.sla import DEFAULT_POLICY, BusinessCalendar
from infra.api_stores import PostgresAccessLog, PostgresIdempotencyStore
from infra.persistence import event_store_env, migrate
from infra.projections import projection_status
from infra.relay.status import relay_status
from infra.sagas import saga_status
from infra.services import ManagedServices, ServiceURLs, check_nats, check_postgres
from infra.services.status import describe
from infra.settings import Settings
from infra.users import UserStore
from projections.customer_360 import Customer360View
from projections.handoffs import HandoffsView
from projections.lead_queue import LeadQueueView
from projections.pipeline_forecast import PipelineForecastView
from projections.sales_funnel import SalesFunnelView
from projections.sla_board import SlaBoardView
from projections.task_list import TaskListView


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


def health_checks(
    urls: ServiceURLs, crm: CRM | None = None, stream: str = "CRM"
) -> dict[str, HealthCheck]:
    """Probes of the database and NATS (and the event relay's lag, given the CRM) for /health."""

    def database() -> Health:
        status = check_postgres(urls.database_url)
        return Health(ok=status.running, detail=status.detail, url=status.url)

    def nats() -> Health:
        status = check_nats(urls.nats_url)
        return Health(ok=status.running, detail=status.detail, url=status.url)

    checks = {"database": database, "nats": nats}
    if crm is not None:
        checks["projections"] = projections_health(crm)
        checks["relay"] = relay_health(crm, stream)
        checks["sagas"] = sagas_health(crm)
    return checks


def projections_health(crm: CRM) -> HealthCheck:
    """Every read model's state and lag; not essential: queries answer from what is there."""

    def projections() -> Health:
        try:
            statuses = projection_status(crm)
        except Exception as error:  # a health check reports every failure instead of raising it
            return Health(ok=False, detail=f"unknown: {describe(error)}")
        troubled = [s for s in statuses if s.state not in ("running", "catching up")]
        worst = max(statuses, key=lambda s: s.lag_events, default=None)
        detail = f"{len(statuses)} read models"
        if worst is not None:
            detail += f"; max lag {worst.lag_events} events ({worst.name})"
        if troubled:
            detail += "; " + ", ".join(f"{s.name} {s.state}" for s in troubled)
        return Health(ok=not troubled, detail=detail)

    return projections


def sagas_health(crm: CRM) -> HealthCheck:
    """Every saga's state and backlog; not essential, but a stopped saga drops handoffs."""

    def sagas() -> Health:
        try:
            statuses = saga_status(crm)
        except Exception as error:  # a health check reports every failure instead of raising it
            return Health(ok=False, detail=f"unknown: {describe(error)}")
        detail = f"{len(statuses)} sagas; {sum(s.pending for s in statuses)} events pending"
        troubled = [s for s in statuses if not s.healthy]
        for s in troubled:
            at = "" if s.failed_position is None else f" at position {s.failed_position}"
            detail += f"; {s.name} {s.state}{at}"
        return Health(ok=not troubled, detail=detail)

    return sagas


def relay_health(crm: CRM, stream: str) -> HealthCheck:
    """The relay's state and lag; not essential: the API works on while the relay lags."""

    def relay() -> Health:
        try:
            status = relay_status(crm, stream)
        except Exception as error:  # a health check reports every failure instead of raising it
            return Health(ok=False, detail=f"unknown: {describe(error)}")
        return Health(ok=status.healthy, detail=status.summary())

    return relay


def managed_services(settings: Settings) -> ManagedServices:
    """External services from settings, embedded ones under `data_dir` for the rest."""
    return ManagedServices(
        settings.data_dir, database_url=settings.database_url, nats_url=settings.nats_url
    )


def token_secret(settings: Settings) -> str:
    """The configured token secret, or one generated once and kept in the data directory."""
    if settings.token_secret:
        return settings.token_secret
    path = settings.data_dir / "token-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def api_services(
    settings: Settings, crm: CRM, checks: dict[str, HealthCheck] | None = None
) -> ApiServices:
    """What the HTTP API runs on, over the CRM's own PostgreSQL connection pool."""
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    return ApiServices(
        crm=crm,
        read_models=ReadModels(
            customers=Customer360View(datastore),
            leads=LeadQueueView(datastore),
            funnel=SalesFunnelView(datastore),
            forecast=PipelineForecastView(datastore),
            sla=SlaBoardView(datastore),
            tasks=TaskListView(datastore),
            handoffs=HandoffsView(datastore),
        ),
        users=UserStore(datastore),
        tokens=CachingTokenService(
            token_secret(settings), timedelta(minutes=settings.token_lifetime_minutes)
        ),
        idempotency=PostgresIdempotencyStore(datastore),
        access_log=PostgresAccessLog(datastore),
        health_checks=checks or {},
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
        crm, wiring = build_api(settings, urls)
        try:
            runtime = Runtime(settings, urls, crm, create_api(wiring))
            settle_heap()
            yield runtime
        finally:
            wiring.access_log.close()
            crm.close()


def build_api(settings: Settings, urls: ServiceURLs) -> tuple[CRM, ApiServices]:
    """The CRM application and the API's services on these services' URLs."""
    crm = build_crm(settings, urls.database_url)
    try:
        return crm, api_services(settings, crm, health_checks(urls, crm, settings.relay_stream))
    except BaseException:
        crm.close()
        raise


WORKER_API = "infra.bootstrap:worker_api"  # what `crm api --workers N` has uvicorn import


def worker_api() -> FastAPI:
    """The API of one worker process among several (`crm api --workers N`).

    The parent process found or started the services, made the key files, and put the
    services' URLs in the environment; each worker builds its own application and pools,
    and on shutdown writes out its access-log buffer and closes them.
    """
    settings = Settings()
    if not settings.database_url or not settings.nats_url:
        raise RuntimeError("a worker needs CRM_DATABASE_URL and CRM_NATS_URL from its parent")
    crm, wiring = build_api(settings, ServiceURLs(settings.database_url, settings.nats_url))
    api = create_api(wiring)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            wiring.access_log.close()
            crm.close()

    api.router.lifespan_context = lifespan
    settle_heap()
    return api


def settle_heap() -> None:
    """Keep what start-up built (modules, the app and its routes, schemas, pools) out of the
    garbage collector's full passes: they last as long as the process, and walking them made
    each full pass under load stop every request for ~80 ms; ~10 ms after this."""
    gc.collect()
    gc.freeze()
