"""GET /metrics: Prometheus text with request metrics by route template, the log head, lag."""

from __future__ import annotations

from uuid import uuid4

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_api
from infra.bootstrap import api_services, build_crm
from infra.persistence import migrate
from infra.settings import Settings
from tests.api.conftest import Api


def scrape(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = api.client.get("/metrics")  # public: scrapers carry no token
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def test_requests_are_counted_and_timed_by_route_template_and_status(api: Api) -> None:
    for _ in range(2):
        api.client.get(f"/audit/customer/{uuid4()}/events", headers=api.admin)
    api.client.get(f"/audit/customer/{uuid4()}/events")
    api.client.get(f"/no-such-path/{uuid4()}")

    samples = scrape(api)

    route = "/audit/{kind}/{record_id}/events"
    not_found = labels(method="GET", route=route, status="404")
    assert samples[("crm_http_requests_total", not_found)] == 2
    assert samples[("crm_http_requests_total", labels(method="GET", route=route, status="401"))]
    assert samples[("crm_http_request_duration_seconds_count", not_found)] == 2
    assert samples[("crm_http_request_duration_seconds_bucket", not_found | {("le", "+Inf")})] == 2
    unmatched = labels(method="GET", route="unmatched", status="404")
    assert samples[("crm_http_requests_total", unmatched)] == 1
    assert not any("no-such-path" in value for _, ls in samples for _, value in ls)


def test_the_log_head_and_every_read_models_position_and_lag_are_exposed(api: Api) -> None:
    result = api.crm.register_customer(kind="company", name="Acme", region="east", owner="ann")
    head = api.crm.recorder.max_notification_id()
    assert result.position is not None and head is not None
    api.services.read_models.customers.wait_for(result.position)

    samples = scrape(api)

    assert samples[("crm_metrics_event_log_up", labels())] == 1
    assert samples[("crm_event_log_head_position", labels())] == head
    names = {dict(ls)["name"] for name, ls in samples if name == "crm_read_model_position"}
    assert {"customer_360", "lead_queue", "sla_board", "sales_funnel"} <= names
    customers = labels(name="customer_360")
    assert samples[("crm_read_model_position", customers)] >= result.position
    assert samples[("crm_read_model_lag_events", customers)] == 0
    assert samples[("crm_read_model_lag_seconds", customers)] == 0


def test_read_models_behind_the_log_show_their_lag(
    database_url: str, api_settings: Settings
) -> None:
    migrate(api_settings, database_url)
    crm = build_crm(api_settings, database_url)
    try:
        # No supervisor runs: every read model stays at position 0.
        crm.register_customer(
            kind="company", name="Acme", region="east", owner="ann", email="b@acme.example"
        )
        with TestClient(create_api(api_services(api_settings, crm))) as client:
            response = client.get("/metrics")
    finally:
        crm.close()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    customers = labels(name="customer_360")
    assert samples[("crm_read_model_position", customers)] == 0
    # The customer was registered with a claim on its email: two events, one of its types.
    assert samples[("crm_event_log_head_position", labels())] == 2
    assert samples[("crm_read_model_lag_events", customers)] == 1
    assert samples[("crm_read_model_lag_seconds", customers)] > 0
