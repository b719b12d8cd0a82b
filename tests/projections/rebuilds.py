"""Rebuilding a read model from zero, to compare its rows with those the live projection built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from hypothesis import HealthCheck, settings
from psycopg.sql import SQL

from domain.application import CRM
from projections.readmodel import ReadModelProjection, ReadModelView, Row
from projections.replay import replay

V = TypeVar("V", bound=ReadModelView)

# Every example replays a log that grows with each one, so examples are few and may be slow.
REBUILD_EXAMPLES = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@contextmanager
def rebuilt_from_zero(
    crm: CRM, live: V, projection_class: type[ReadModelProjection], *, page_size: int = 7
) -> Iterator[V]:
    """The next version of `live`'s read model, built from the whole log as `crm projections
    rebuild` builds it (in memory, if the read model has a bulk rebuild), in small pages so
    that appended rows are written across several; dropped afterwards."""
    rebuilt = type(live)(live.datastore, version=live.version + 1)
    rebuilt.create_table()
    try:
        replay([projection_class(view=rebuilt)], crm.recorder, crm.mapper, page_size=page_size)
        yield rebuilt
    finally:
        rebuilt.drop()


def rows_of(view: ReadModelView, logical: str) -> list[Row]:
    """Every row of one of this version's tables, in a stable order."""
    return view.fetch(SQL("SELECT * FROM {} t ORDER BY t::text").format(view.table(logical)))
