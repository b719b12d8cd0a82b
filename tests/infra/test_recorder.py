"""The one-round-trip recorder keeps the library's guarantees on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.application import CRM
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.recorder import OneTripApplicationRecorder
from infra.settings import Settings

WRITERS = 16


@pytest.fixture(params=[True, False], ids=["group-commit", "one-save-per-transaction"])
def crm(database_url: str, request: pytest.FixtureRequest) -> Iterator[CRM]:
    settings = Settings(db_pool_size=WRITERS + 2, group_commit=request.param)
    migrate(settings, database_url)
    app = build_crm(settings, database_url)
    yield app
    app.close()


def event(originator_version: int = 1) -> StoredEvent:
    return StoredEvent(uuid4(), originator_version, "crm.test.written.v1", b"{}")


def test_the_crm_uses_the_one_round_trip_recorder(crm: CRM) -> None:
    assert isinstance(crm.recorder, OneTripApplicationRecorder)


def test_a_save_returns_the_positions_of_its_events_in_order(crm: CRM) -> None:
    first = crm.recorder.insert_events([event(), event()])
    second = crm.recorder.insert_events([event()])

    assert first is not None and second is not None
    assert len(first) == 2 and first[1] == first[0] + 1
    assert second[0] > first[1]


def test_a_version_clash_raises_integrity_error_and_records_nothing(crm: CRM) -> None:
    original = event()
    crm.recorder.insert_events([original])
    clash = StoredEvent(original.originator_id, 1, original.topic, original.state)

    with pytest.raises(IntegrityError):
        crm.recorder.insert_events([event(), clash])

    assert crm.recorder.max_notification_id() == 1
    assert crm.recorder.insert_events([event()])  # the pooled connection is usable again


def test_a_reader_tailing_the_log_never_skips_a_position_that_commits_later(crm: CRM) -> None:
    stop, writers_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def write() -> None:
        while not stop.is_set():
            crm.recorder.insert_events([event(), event()])

    def tail() -> None:
        while not writers_done.is_set() or (seen[-1] if seen else 0) < (
            crm.recorder.max_notification_id() or 0
        ):
            after = seen[-1] if seen else 0
            batch = crm.recorder.select_notifications(after, 500, inclusive_of_start=False)
            seen.extend(n.id for n in batch)

    writers = [threading.Thread(target=write) for _ in range(WRITERS)]
    reader = threading.Thread(target=tail)
    for thread in [*writers, reader]:
        thread.start()
    time.sleep(2.0)
    stop.set()
    for thread in writers:
        thread.join()
    writers_done.set()
    reader.join()

    everything = [n.id for n in crm.recorder.select_notifications(1, 1_000_000)]
    assert len(everything) > 100
    assert seen == everything  # nothing passed over, nothing out of order
    recorder = crm.recorder
    assert isinstance(recorder, OneTripApplicationRecorder)
    if recorder.group_commit:
        assert recorder._group.batches < recorder._group.saves  # noqa: SLF001 - saves gathered
