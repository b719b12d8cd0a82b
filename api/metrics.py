"""Prometheus metrics of the API: requests by route template and status, and the log's state.

Each app has its own registry (tests build many apps in one process). Request metrics are
labelled with the route *template* (`/customers/{customer_id}`), never the raw path, so ids do
not multiply the series; a request no route matched is labelled `unmatched`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import FastAPI
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services import ApiServices
from projections.event_log import head, read_model_lags

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ApiMetrics:
    """The registry `GET /metrics` exposes, and the request metrics the middleware feeds."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "crm_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "crm_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


class MetricsMiddleware:
    """Counts and times every request (pure ASGI, so streamed responses pass through as is)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped to the server

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router records the matched route in the (shared) scope.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


class EventLogCollector(Collector):
    """The log's head and each read model's position and lag, read at scrape time."""

    def __init__(self, services: ApiServices) -> None:
        self.services = services

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are not claimed up front, so registering reads no database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "crm_metrics_event_log_up", "1 when the event log could be read for this scrape."
        )
        try:
            crm = self.services.crm
            log_head = head(crm.recorder)
            lags = read_model_lags(crm.recorder, crm.mapper, log_head=log_head)
        except Exception:  # a scrape must still answer (with up 0) when the database is away
            logger.exception("could not read the event log for /metrics")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "crm_event_log_head_position", "Position of the newest committed event.", log_head
        )
        position = GaugeMetricFamily(
            "crm_read_model_position", "Last log position a read model applied.", labels=["name"]
        )
        lag_events = GaugeMetricFamily(
            "crm_read_model_lag_events",
            "Events of its types a read model has still to apply.",
            labels=["name"],
        )
        lag_seconds = GaugeMetricFamily(
            "crm_read_model_lag_seconds",
            "Age of the oldest event a read model has still to apply (0 when caught up).",
            labels=["name"],
        )
        for lag in lags:
            position.add_metric([lag.name], lag.position)
            lag_events.add_metric([lag.name], lag.lag_events)
            lag_seconds.add_metric([lag.name], lag.lag_seconds)
        yield from (position, lag_events, lag_seconds)


def install_metrics(app: FastAPI, services: ApiServices) -> ApiMetrics:
    """Measure every request of `app` and expose the log's state; `GET /metrics` serves both."""
    metrics = ApiMetrics()
    metrics.registry.register(EventLogCollector(services))
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics
