"""GET /health reports the real database and NATS; /docs and the OpenAPI schema are served."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_api
from domain.shared import Aggregate, DomainEvent
from infra.bootstrap import api_services, build_crm, health_checks
from infra.persistence import migrate
from infra.projections import ProjectionSupervisor
from infra.sagas import SagaSettings, SagaSupervisor, build_sagas
from infra.services import ServiceURLs
from infra.settings import Settings
from projections.catalog import READ_MODELS
from sagas.base import Records
from sagas.lead_routing import LeadRoutingSaga

DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/crm?connect_timeout=1"
DEAD_NATS = "nats://127.0.0.1:1"


def client_for(urls: ServiceURLs, database_url: str) -> TestClient:
    settings = Settings()
    migrate(settings, database_url)
    crm = build_crm(settings, database_url)
    return TestClient(create_api(api_services(settings, crm, health_checks(urls))))


@pytest.fixture
def client(database_url: str, nats_url: str) -> Iterator[TestClient]:
    with client_for(ServiceURLs(database_url, nats_url), database_url) as test_client:
        yield test_client


def test_health_is_ok_when_database_and_nats_answer(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert "PostgreSQL" in body["checks"]["database"]["detail"]
    assert body["checks"]["nats"]["ok"] is True


def test_health_is_degraded_but_up_when_nats_is_down(database_url: str) -> None:
    with client_for(ServiceURLs(database_url, DEAD_NATS), database_url) as client:
        response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["nats"]["ok"] is False


def test_health_is_503_when_the_database_is_down(database_url: str, nats_url: str) -> None:
    with client_for(ServiceURLs(DEAD_POSTGRES, nats_url), database_url) as client:
        response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "down"


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert "/health" in schema["paths"]


def test_unknown_routes_are_problem_json_404s(client: TestClient) -> None:
    response = client.get("/no-such-thing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-found")


def test_health_reports_read_model_lag_and_a_stopped_supervisor(
    database_url: str, nats_url: str
) -> None:
    settings = Settings()
    migrate(settings, database_url)
    crm = build_crm(settings, database_url)
    checks = health_checks(ServiceURLs(database_url, nats_url), crm)
    client = TestClient(create_api(api_services(settings, crm, checks)))
    crm.register_customer(kind="person", name="Li Lei", region="east", owner="u:1")

    without_workers = client.get("/health").json()
    with ProjectionSupervisor(crm, database_url) as supervisor:
        for worker in supervisor.workers:
            assert worker.is_leader.wait(10)
        deadline = time.monotonic() + 10
        while (
            "max lag 0 events"
            not in client.get("/health").json()["checks"]["projections"]["detail"]
        ):
            assert time.monotonic() < deadline, "read models did not catch up"
            time.sleep(0.05)
        running = client.get("/health").json()
    crm.close()

    assert without_workers["status"] == "degraded"
    assert without_workers["checks"]["projections"]["ok"] is False
    assert "not running" in without_workers["checks"]["projections"]["detail"]
    assert running["checks"]["projections"]["ok"] is True
    detail = running["checks"]["projections"]["detail"]
    assert detail.startswith(f"{len(READ_MODELS)} read models; max lag 0")


def test_health_is_degraded_while_a_saga_is_stopped_at_an_event_it_keeps_failing_on(
    database_url: str, nats_url: str
) -> None:
    settings = Settings()
    migrate(settings, database_url)
    crm = build_crm(settings, database_url)
    checks = health_checks(ServiceURLs(database_url, nats_url), crm)
    client = TestClient(create_api(api_services(settings, crm, checks)))
    sagas = build_sagas(crm)

    class BrokenRouting(LeadRoutingSaga):
        def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
            raise RuntimeError("routing rules unreadable")

    broken = [BrokenRouting(SagaSettings().lead_routing, crm.config.calendar)]
    others = [saga for saga in sagas if saga.name != LeadRoutingSaga.name]
    with SagaSupervisor(crm, database_url, [*broken, *others]):
        healthy = wait_for_sagas(client, lambda detail: "not running" not in detail)
        position = crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
        stopped = wait_for_sagas(client, lambda detail: "stopped with error" in detail)
    crm.close()

    assert healthy["checks"]["sagas"]["detail"] == f"{len(sagas)} sagas; 0 events pending"
    assert healthy["checks"]["sagas"]["ok"] is True
    assert stopped["status"] == "degraded"
    assert stopped["checks"]["sagas"]["ok"] is False
    assert stopped["checks"]["sagas"]["detail"] == (
        f"{len(sagas)} sagas; 1 events pending; "
        f"lead_routing stopped with error at position {position.position}"
    )


def wait_for_sagas(client: TestClient, seen: Callable[[str], bool]) -> dict[str, Any]:
    """GET /health until the sagas' detail is as `seen` wants it."""
    deadline = time.monotonic() + 15
    while not seen((body := client.get("/health").json())["checks"]["sagas"]["detail"]):
        assert time.monotonic() < deadline, body["checks"]["sagas"]
        time.sleep(0.05)
    return body
