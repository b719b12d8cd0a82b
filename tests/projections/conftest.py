"""A CRM on a fresh database, plus a way to bring any read model up to date with its log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from domain.application import CRM
from domain.shared import FixedClock
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.settings import Settings
from projections.catchup import catch_up
from projections.readmodel import ReadModelProjection, ReadModelView, create_registry, install
from tests.domain.scenario import MONDAY_9AM

V = TypeVar("V", bound=ReadModelView)


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


ReadModel = Callable[[type[V], type[ReadModelProjection]], tuple[V, Callable[[], int]]]


@pytest.fixture
def read_model(crm: CRM) -> ReadModel[Any]:
    """Install a read model; returns its view and a function that catches it up with the log."""
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    create_registry(datastore)

    def make(view_class: type[V], projection_class: type[ReadModelProjection]) -> tuple[V, Any]:
        view = install(view_class, datastore)
        projection = projection_class(view=view)
        return view, lambda: catch_up(projection, crm.recorder, crm.mapper)

    return make  # type: ignore[return-value]
