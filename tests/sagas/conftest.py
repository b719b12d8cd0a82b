"""A migrated CRM on a fresh database with a fake clock, and the lead-routing saga's runner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.application import CRM
from domain.shared import FixedClock
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.sagas import SagaRunner
from infra.settings import Settings
from sagas.lead_routing import LeadRoutingSaga
from sagas.routing import RoutingRules, SalesUser, Territory
from tests.domain.scenario import MONDAY_9AM

RULES = RoutingRules(
    version=3,
    territories=(
        Territory(id="territory-east", regions=("east", "central"), team="east-sales"),
        Territory(id="territory-north", regions=("north",), team="north-sales"),
    ),
    sales_users=(
        SalesUser(username="alice", team="east-sales", capacity=2),
        SalesUser(username="bob", team="east-sales", capacity=1),
        SalesUser(username="dana", team="east-sales", capacity=0),
        SalesUser(username="chen", team="north-sales", capacity=1),
    ),
    fallback_team="sales",
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_9AM)


@pytest.fixture
def crm(database_url: str, clock: FixedClock) -> Iterator[CRM]:
    settings = Settings(customer_snapshot_interval=0)
    migrate(settings, database_url)
    app = build_crm(settings, database_url, clock=clock)
    yield app
    app.close()


@pytest.fixture
def saga(crm: CRM) -> LeadRoutingSaga:
    return LeadRoutingSaga(RULES, crm.config.calendar)


@pytest.fixture
def runner(saga: LeadRoutingSaga, crm: CRM) -> SagaRunner:
    return SagaRunner(saga, crm)
