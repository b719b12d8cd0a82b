"""Rebuilding a read model from zero, to compare its rows with those the live projection built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from hypothesis import HealthCheck, settings
from psycopg.sql import SQL

from domain.application import CRM
from projections.catchup import catch_up
from projections.readmodel import ReadModelProjection, ReadModelView, Row

V = TypeVar("V", bound=ReadModelView)

# Every example replays a log that grows with each one, so examples are few and may be slow.
REBUILD_EXAMPLES = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@contextmanager
def rebuilt_from_zero(
    crm: CRM, live: V, projection_class: type[ReadModelProjection]
) -> Iterator[V]:
    """The next version of `live`'s read model, built from the whole log; dropped afterwards."""
    rebuilt = type(live)(live.datastore, version=live.version + 1)
    rebuilt.create_table()
    try:
        catch_up(projection_class(view=rebuilt), crm.recorder, crm.mapper, live=False)
        yield rebuilt
    finally:
        rebuilt.drop()


def rows_of(view: ReadModelView, logical: str) -> list[Row]:
    """Every row of one of this version's tables, in a stable order."""
    return view.fetch(SQL("SELECT * FROM {} t ORDER BY t::text").format(view.table(logical)))
