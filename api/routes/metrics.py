"""Prometheus scrape endpoint: request counts and latencies, the log's head, read-model lag.

Public, like `/health`: Prometheus scrapers carry no user token, and the metrics hold no
personal data (route templates, statuses, positions, counts). Deployments that expose the API
to the internet keep `/metrics` on the internal network at the proxy.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import PUBLIC
from api.metrics import ApiMetrics

router = APIRouter(tags=["ops"])

EXAMPLE = """# HELP crm_http_requests_total HTTP requests answered, by method, route and status.
# TYPE crm_http_requests_total counter
crm_http_requests_total{method="GET",route="/customers/{customer_id}",status="200"} 42.0
# HELP crm_event_log_head_position Position of the newest committed event.
# TYPE crm_event_log_head_position gauge
crm_event_log_head_position 1042.0
# HELP crm_read_model_lag_events Events of its types a read model has still to apply.
# TYPE crm_read_model_lag_events gauge
crm_read_model_lag_events{name="lead_queue"} 0.0
"""


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[PUBLIC],
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
)
def read_metrics(request: Request) -> Response:
    """Request metrics by route template and status, the log's head and each read model's lag."""
    metrics: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
