"""One pass over the log rebuilds every read model with the rows its live projection gives."""

from __future__ import annotations

import pickle
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification

import infra.projections
from domain.application import CRM
from domain.lead import LeadScored
from domain.shared import FixedClock
from infra.projections import rebuild_many
from projections.catalog import READ_MODELS
from projections.catchup import EventFailed, catch_up
from projections.lead_queue import LeadQueueProjection, LeadQueueRebuild
from projections.readmodel import ReadModelProjection, ReadModelView, create_registry, install
from projections.replay import NotEmpty, replay
from projections.second_process import ReplayFailed, SecondProcess
from tests.projections.rebuilds import rows_of
from tests.tour import exercise_every_command


def live_read_models(crm: CRM) -> list[ReadModelView]:
    """Every read model, installed and caught up by its live handlers."""
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    create_registry(datastore)
    views = []
    for spec in READ_MODELS:
        view = install(spec.view, datastore)
        catch_up(spec.projection(view=view), crm.recorder, crm.mapper, batch_size=3)
        views.append(view)
    return views


def next_versions(live: list[ReadModelView], step: int = 1) -> list[ReadModelView]:
    versions = []
    for view in live:
        new = type(view)(view.datastore, version=view.version + step)
        new.create_table()
        versions.append(new)
    return versions


def without_bulk(projection_class: type[ReadModelProjection]) -> type[ReadModelProjection]:
    """The same read model, rebuilt through its live handlers."""
    return type(f"Handlers{projection_class.__name__}", (projection_class,), {"bulk": None})


def assert_same_rows(live: list[ReadModelView], rebuilt: list[ReadModelView]) -> None:
    for old, new in zip(live, rebuilt, strict=True):
        for table in old.tables:
            assert rows_of(new, table) == rows_of(old, table), f"{old.name}.{table}"
        assert new.position() == old.position()


@pytest.mark.parametrize("page_size", [4, 10_000])
def test_one_pass_over_a_tour_of_every_event_type_rebuilds_every_read_model_as_live(
    crm: CRM, clock: FixedClock, page_size: int
) -> None:
    exercise_every_command(crm, clock)
    live = live_read_models(crm)
    rebuilt = next_versions(live)

    position = replay(
        [spec.projection(view=v) for spec, v in zip(READ_MODELS, rebuilt, strict=True)],
        crm.recorder,
        crm.mapper,
        page_size=page_size,
    )

    assert position == crm.recorder.max_notification_id()
    assert_same_rows(live, rebuilt)
    for view in rebuilt:
        view.drop()


def test_read_models_without_a_bulk_rebuild_are_replayed_through_their_handlers(
    crm: CRM, clock: FixedClock
) -> None:
    exercise_every_command(crm, clock)
    live = live_read_models(crm)
    rebuilt = next_versions(live)

    replay(
        [
            without_bulk(spec.projection)(view=v)
            for spec, v in zip(READ_MODELS, rebuilt, strict=True)
        ],
        crm.recorder,
        crm.mapper,
        page_size=5,
    )

    assert_same_rows(live, rebuilt)


def test_every_read_model_rebuilds_in_memory_for_every_event_its_live_handlers_handle() -> None:
    for spec in READ_MODELS:
        bulk = spec.projection.bulk
        assert bulk is not None, spec.name
        assert set(bulk.handlers) == set(spec.projection.handlers), spec.name


def test_a_replay_refuses_a_version_that_is_not_empty(crm: CRM, clock: FixedClock) -> None:
    exercise_every_command(crm, clock)
    (view, *_) = live_read_models(crm)

    with pytest.raises(NotEmpty):
        replay([LeadQueueProjection(view=view)], crm.recorder, crm.mapper)


def test_an_event_a_bulk_rebuild_cannot_apply_is_named(
    crm: CRM, clock: FixedClock, monkeypatch: Any
) -> None:
    exercise_every_command(crm, clock)
    (live, *_) = live_read_models(crm)
    (rebuilt,) = next_versions([live])

    def fail(self: Any, event: Any) -> None:
        raise RuntimeError("cannot score")

    monkeypatch.setitem(LeadQueueRebuild.handlers, LeadScored, fail)
    with pytest.raises(EventFailed, match="crm.lead.scored.v1"):
        replay([LeadQueueProjection(view=rebuilt)], crm.recorder, crm.mapper)


def test_rebuilding_every_read_model_at_once_in_two_processes_gives_the_live_rows(
    crm: CRM, clock: FixedClock, monkeypatch: Any
) -> None:
    exercise_every_command(crm, clock)
    live = live_read_models(crm)
    expected = {(v.name, table): rows_of(v, table) for v in live for table in v.tables}
    started: list[list[tuple[str, int]]] = []

    class Spied(SecondProcess):
        def __init__(self, app: Any, env: Any, views: list[tuple[str, int]], topics: Any):
            started.append(views)
            super().__init__(app, env, views, topics)

    monkeypatch.setattr(infra.projections, "SecondProcess", Spied)
    monkeypatch.setattr("os.cpu_count", lambda: 2)

    versions = rebuild_many(crm, READ_MODELS)

    assert [name for name, _ in started[0]] == [
        s.name for s in READ_MODELS if s.name != "customer_360"
    ]
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    for spec in READ_MODELS:
        view = spec.view(datastore, versions[spec.name])
        for table in view.tables:
            assert rows_of(view, table) == expected[spec.name, table], f"{spec.name}.{table}"
        assert view.position() == crm.recorder.max_notification_id()


def test_a_second_process_that_fails_says_why(crm: CRM) -> None:
    with (
        pytest.raises(ReplayFailed, match="KeyError: .*no read model 'nonesuch'"),
        SecondProcess(type(crm), dict(crm.env), [("nonesuch", 2)], []) as second,
    ):
        second.result()


def test_an_event_that_failed_in_a_second_process_crosses_back_whole() -> None:
    notification = Notification(
        id=42, originator_id=uuid4(), originator_version=3, topic="crm.lead.scored.v1", state=b""
    )
    failed = EventFailed("lead_queue", notification, RuntimeError("cannot score"))

    crossed = pickle.loads(pickle.dumps(failed))

    assert (str(crossed), crossed.read_model, crossed.position) == (str(failed), "lead_queue", 42)
    assert "crm.lead.scored.v1" in str(crossed)
