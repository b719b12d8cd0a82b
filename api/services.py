"""Everything the HTTP API runs on, handed over by the composition root (infra.bootstrap)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from api.ports import AccessLog, IdempotencyStore, UserDirectory
from api.security import TokenService
from domain.application import CRM
from projections.customer_360 import Customer360View
from projections.handoffs import HandoffsView
from projections.lead_queue import LeadQueueView
from projections.pipeline_forecast import PipelineForecastView
from projections.sales_funnel import SalesFunnelView
from projections.sla_board import SlaBoardView
from projections.task_list import TaskListView


@dataclass(frozen=True)
class Health:
    """Result of one health probe."""

    ok: bool
    detail: str
    url: str | None = None


HealthCheck = Callable[[], Health]


@dataclass(frozen=True)
class ReadModels:
    """The views query routes read (any version object reads the active version)."""

    customers: Customer360View
    leads: LeadQueueView
    funnel: SalesFunnelView
    forecast: PipelineForecastView
    sla: SlaBoardView
    tasks: TaskListView
    handoffs: HandoffsView


@dataclass
class ApiServices:
    """The application, its read models and the stores the API keeps for itself."""

    crm: CRM
    read_models: ReadModels
    users: UserDirectory
    tokens: TokenService
    idempotency: IdempotencyStore
    access_log: AccessLog
    health_checks: Mapping[str, HealthCheck] = field(default_factory=dict)
