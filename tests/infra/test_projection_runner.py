"""The projection supervisor on real PostgreSQL: tailing, failures, standby, rebuild, status."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

import infra.projections
from domain.application import CRM
from domain.customer import Customer, CustomerRegistered, CustomerTagged
from domain.shared import ConcurrencyConflict
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.projections import (
    ProjectionSupervisor,
    RebuildInProgress,
    lock_key,
    projection_status,
    rebuild,
)
from infra.settings import Settings
from infra.workers import FEED_APPLICATION_NAME, LogFeed, wake_listeners
from projections.catalog import ReadModelSpec, read_model
from projections.catchup import catch_up
from projections.lead_queue import LeadQueueView
from projections.readmodel import (
    REGISTRY_TABLE,
    ActiveVersionNotDropped,
    PositionMoved,
    ReadModelMoved,
    ReadModelNotCaughtUp,
    ReadModelProjection,
    ReadModelView,
    active_version,
    handles,
    install,
)


class TagCountView(ReadModelView):
    """A test read model: how many times each customer was tagged."""

    name: ClassVar[str] = "test_tag_counts"
    tables: ClassVar[dict[str, str]] = {
        "counts": "customer_id uuid PRIMARY KEY, name text, tagged int NOT NULL DEFAULT 0"
    }

    def counts(self) -> dict[str, int]:
        rows = self.fetch(SQL("SELECT name, tagged FROM {}").format(self.reader("counts")))
        return {r["name"]: r["tagged"] for r in rows}

    def total(self) -> int:
        return sum(self.counts().values())


class TagCountProjection(ReadModelProjection):
    fail: ClassVar[Callable[[Any], bool]] = staticmethod(lambda event: False)

    @handles(CustomerRegistered)
    def registered(self, curs: Cursor[DictRow], event: CustomerRegistered) -> None:
        curs.execute(
            SQL("INSERT INTO {} (customer_id, name) VALUES (%s, %s)").format(
                self.view.table("counts")
            ),
            (event.originator_id, event.name),
        )

    @handles(CustomerTagged)
    def tagged(self, curs: Cursor[DictRow], event: CustomerTagged) -> None:
        if type(self).fail(event):
            raise RuntimeError(f"cannot count tag {event.tag}")
        curs.execute(
            SQL("UPDATE {} SET tagged = tagged + 1 WHERE customer_id = %s").format(
                self.view.table("counts")
            ),
            (event.originator_id,),
        )


SPEC = ReadModelSpec(TagCountView, TagCountProjection)


@pytest.fixture
def crm(database_url: str) -> Iterator[CRM]:
    settings = Settings(db_pool_size=12, customer_snapshot_interval=0)
    migrate(settings, database_url)
    app = build_crm(settings, database_url)
    yield app
    app.close()


@pytest.fixture(autouse=True)
def no_failures() -> Iterator[None]:
    yield
    TagCountProjection.fail = staticmethod(lambda event: False)


def view(crm: CRM) -> TagCountView:
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    return TagCountView(datastore, active_version(datastore, SPEC.name) or 1)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not holds(check):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:  # e.g. the read model's tables are not installed yet
        return False


def customer(crm: CRM, name: str) -> Any:
    return crm.register_customer(kind="person", name=name, region="east", owner="user:a").id


def test_a_running_supervisor_projects_new_events_live(crm: CRM, database_url: str) -> None:
    with ProjectionSupervisor(crm, database_url, [SPEC]):
        li = customer(crm, "Li")
        result = crm.tag_customer(li, "vip")
        eventually(lambda: view(crm).position() >= (result.position or 0))

        assert view(crm).counts() == {"Li": 1}


def test_a_batch_that_fails_once_is_retried_and_applied_exactly_once(
    crm: CRM, database_url: str
) -> None:
    li = customer(crm, "Li")
    for tag in ("a", "b", "c", "d"):
        crm.tag_customer(li, tag)
    failed = threading.Event()

    def fail_once_on_c(event: Any) -> bool:
        if event.tag == "c" and not failed.is_set():
            failed.set()
            return True
        return False

    TagCountProjection.fail = staticmethod(fail_once_on_c)
    with ProjectionSupervisor(crm, database_url, [SPEC]):
        eventually(lambda: failed.is_set())
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())

    assert view(crm).counts() == {"Li": 4}


def test_an_event_that_keeps_failing_stops_its_read_model_naming_the_event(
    crm: CRM, database_url: str
) -> None:
    li = customer(crm, "Li")
    crm.tag_customer(li, "poison")
    TagCountProjection.fail = staticmethod(lambda event: event.tag == "poison")

    supervisor = ProjectionSupervisor(crm, database_url, [SPEC])
    supervisor.workers[0].max_backoff = 0.1
    with supervisor:
        eventually(lambda: not supervisor.workers[0].is_alive())

    [status] = projection_status(crm, [SPEC])
    assert status.state == "stopped with error"
    assert status.error is not None and "crm.customer.tagged.v1" in status.error
    assert str(li) in status.error


def test_a_standby_supervisor_takes_over_when_the_leader_stops(crm: CRM, database_url: str) -> None:
    first = ProjectionSupervisor(crm, database_url, [SPEC])
    second = ProjectionSupervisor(crm, database_url, [SPEC])
    first.start()
    eventually(lambda: first.workers[0].is_leader.is_set())
    second.start()
    time.sleep(1.5)
    assert not second.workers[0].is_leader.is_set()

    first.stop()
    eventually(lambda: second.workers[0].is_leader.is_set())
    li = customer(crm, "Li")
    result = crm.tag_customer(li, "vip")
    view(crm).wait_for(result.position, timeout=10)
    second.stop()

    assert view(crm).counts() == {"Li": 1}


def test_no_event_is_skipped_while_writers_race_and_some_roll_back(
    crm: CRM, database_url: str
) -> None:
    ids = [customer(crm, f"C{n}") for n in range(8)]
    committed = [0] * 8
    stop = threading.Event()

    def write(n: int) -> None:
        while not stop.is_set():
            try:  # half the writers fight over one customer: conflicts roll back
                target = ids[0] if n % 2 else ids[n]
                expected = crm.state_at(Customer, target).version
                crm.tag_customer(target, f"t{time.monotonic_ns()}", expected_version=expected)
                committed[n] += 1
            except ConcurrencyConflict:
                pass

    with ProjectionSupervisor(crm, database_url, [SPEC]):
        writers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in writers:
            thread.start()
        time.sleep(2.0)
        stop.set()
        for thread in writers:
            thread.join()
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())

    assert view(crm).total() == sum(committed) > 0
    group = crm.recorder._group  # type: ignore[attr-defined]  # noqa: SLF001
    assert group.batches < group.saves  # the writers' saves shared transactions


def test_rebuild_switches_readers_to_a_new_version_with_the_same_rows(crm: CRM) -> None:
    li, wang = customer(crm, "Li"), customer(crm, "Wang")
    crm.tag_customer(li, "a")
    crm.tag_customer(wang, "b")
    crm.tag_customer(wang, "c")
    seen: list[tuple[int, int]] = []

    version = rebuild(
        crm, SPEC, on_batch=lambda position, head, applied: seen.append((position, head))
    )
    again = rebuild(crm, SPEC)

    assert (version, again) == (2, 3)
    assert seen and seen[-1][0] == seen[-1][1]
    assert view(crm).version == 3
    assert view(crm).counts() == {"Li": 1, "Wang": 2}
    old = TagCountView(crm.recorder.datastore, 2)  # type: ignore[attr-defined]
    with pytest.raises(Exception):  # noqa: B017 - the old version's tables are gone
        old.fetch(SQL("SELECT * FROM {}").format(old.table("counts")))
    statistics = view(crm).fetch(  # the planner knows the new rows from the switch on
        SQL("SELECT count(*) AS n FROM pg_stats WHERE tablename = %s"),
        [view(crm).physical("counts")],
    )
    assert statistics[0]["n"] > 0


def test_a_crash_mid_rebuild_leaves_the_old_version_serving(crm: CRM) -> None:
    li = customer(crm, "Li")
    crm.tag_customer(li, "a")
    rebuild(crm, SPEC)
    crm.tag_customer(li, "crash")
    TagCountProjection.fail = staticmethod(lambda event: event.tag == "crash")

    with pytest.raises(Exception):  # noqa: B017 - the rebuild dies half way
        rebuild(crm, SPEC)

    assert view(crm).version == 2
    assert view(crm).counts() == {"Li": 1}  # v2 was never caught up past "crash" here
    TagCountProjection.fail = staticmethod(lambda event: False)
    assert rebuild(crm, SPEC) == 4
    assert view(crm).counts() == {"Li": 2}


def test_status_reports_position_head_lag_and_state(crm: CRM, database_url: str) -> None:
    li = customer(crm, "Li")
    crm.tag_customer(li, "a")

    [before] = projection_status(crm, [SPEC])
    with ProjectionSupervisor(crm, database_url, [SPEC]):
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())
        eventually(lambda: projection_status(crm, [SPEC])[0].state == "running")
        [during] = projection_status(crm, [SPEC])

    assert before.lag_events == 2 and before.lag_ms is not None
    assert during.position == during.head and during.lag_events == 0
    assert during.version == 1 and during.error is None


def test_killing_the_leading_process_lets_a_standby_in_another_take_over(
    crm: CRM, database_url: str, nats_url: str
) -> None:
    env = {**os.environ, "CRM_DATABASE_URL": database_url, "CRM_NATS_URL": nats_url}
    leader = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "projections", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: f":{leader.pid}:" in (registry_worker(crm, "lead_queue") or ""), 20)
        standby = ProjectionSupervisor(crm, database_url, [read_model("lead_queue")])
        with standby:
            time.sleep(1.5)
            assert not standby.workers[0].is_leader.is_set()

            leader.kill()  # no goodbye: PostgreSQL ends its session and frees the lock
            leader.wait(10)
            eventually(lambda: standby.workers[0].is_leader.is_set(), 20)
            result = crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
            queue = install(LeadQueueView, crm.recorder.datastore)  # type: ignore[attr-defined]
            queue.wait_for(result.position, timeout=10)
    finally:
        leader.kill()
        leader.wait(10)


def registry_worker(crm: CRM, name: str) -> str | None:
    with crm.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute("SELECT worker FROM crm_read_models WHERE name = %s", (name,)).fetchone()
    return None if row is None else row["worker"]


def test_a_second_writer_from_a_stale_position_applies_nothing(crm: CRM) -> None:
    li = customer(crm, "Li")
    crm.tag_customer(li, "a")
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    first = TagCountProjection(view=install(TagCountView, datastore))
    stale = TagCountProjection(view=TagCountView(datastore, first.view.version))
    catch_up(first, crm.recorder, crm.mapper)
    events = [crm.mapper.to_domain_event(n) for n in crm.recorder.select_notifications(1, 10)]

    with pytest.raises(PositionMoved):  # e.g. a leader that lost its lock without noticing
        stale.view.write_batch(stale, events, first.view.position(), start=0)

    assert view(crm).counts() == {"Li": 1}


def test_only_one_rebuild_of_a_read_model_runs_at_a_time(crm: CRM, database_url: str) -> None:
    customer(crm, "Li")
    with psycopg.connect(database_url, autocommit=True) as other_process:
        other_process.execute("SELECT pg_advisory_lock(%s)", (lock_key(f"rebuild:{SPEC.name}"),))

        with pytest.raises(RebuildInProgress):
            rebuild(crm, SPEC)

    assert rebuild(crm, SPEC) == 2


def test_the_active_version_is_never_dropped(crm: CRM) -> None:
    active = install(TagCountView, crm.recorder.datastore)  # type: ignore[attr-defined]

    with pytest.raises(ActiveVersionNotDropped):
        active.drop()

    assert view(crm).counts() == {}


def test_a_read_model_built_with_an_older_schema_is_rebuilt_by_its_supervisor(
    crm: CRM, database_url: str
) -> None:
    li = customer(crm, "Li")
    crm.tag_customer(li, "vip")
    with ProjectionSupervisor(crm, database_url, [SPEC]):
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as curs:  # as if built by code with another schema
        curs.execute(
            f"UPDATE {REGISTRY_TABLE} SET schema_revision = 0 WHERE name = %s", (SPEC.name,)
        )

    with ProjectionSupervisor(crm, database_url, [SPEC]):
        crm.tag_customer(li, "gold")
        eventually(lambda: active_version(datastore, SPEC.name) == 2)
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())

    assert view(crm).counts() == {"Li": 2}


def test_shared_decoding_decodes_each_position_once_and_keeps_a_bounded_number() -> None:
    from uuid import uuid4

    from eventsourcing.persistence import Notification

    from infra.projections import SharedDecoding

    decoded: list[int] = []

    class CountingMapper:
        def to_domain_event(self, notification: Notification) -> object:
            decoded.append(notification.id)
            return ("event", notification.id)

    decoding = SharedDecoding(CountingMapper(), keep=10)  # type: ignore[arg-type]
    log = [Notification(uuid4(), 1, "crm.test.v1", b"{}", n) for n in range(1, 31)]
    for _reader in range(3):  # three read models reading the same page
        assert [decoding.to_domain_event(n) for n in log[:8]] == [("event", n) for n in range(1, 9)]
    assert decoded == list(range(1, 9))

    for notification in log:
        decoding.to_domain_event(notification)
    assert len(decoding._events) <= 10  # noqa: SLF001 - bounded
    assert decoding.to_domain_event(log[-1]) == ("event", 30)


def test_shared_decoding_forgets_everything_decoded_before_an_erasure() -> None:
    from uuid import uuid4

    from eventsourcing.persistence import Notification

    from domain.customer import CustomerErased
    from infra.projections import SharedDecoding

    customer = uuid4()
    decoded: list[int] = []

    class Mapper:
        def to_domain_event(self, notification: Notification) -> object:
            decoded.append(notification.id)
            if notification.id == 3:
                return CustomerErased.model_construct(originator_id=customer, reason="asked")
            return ("clear text", notification.id)

    decoding = SharedDecoding(Mapper())  # type: ignore[arg-type]
    log = [Notification(customer, n, "crm.test.v1", b"{}", n) for n in (1, 2, 3)]
    for notification in log:
        decoding.to_domain_event(notification)
    decoding.to_domain_event(log[0])  # a read model behind the erasure decodes it again

    assert decoded == [1, 2, 3, 1]


def installed(crm: CRM) -> TagCountProjection:
    """The test read model's projection over its installed (active) version, no worker."""
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    return TagCountProjection(view=install(TagCountView, datastore))


def lead(crm: CRM, name: str) -> int:
    """A new lead: an event the test read model does not handle; returns its position."""
    return crm.capture_lead(channel="ads", name=name, region="east", phone="13812345678").position


def test_other_read_models_events_cost_no_write_and_waits_look_past_them(
    crm: CRM, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra.projections, "IDLE_ADVANCE_SECONDS", 3600.0)  # never, here
    with ProjectionSupervisor(crm, database_url, [SPEC]):
        li = customer(crm, "Li")
        tagged = crm.tag_customer(li, "vip").position or 0
        eventually(lambda: view(crm).position() >= tagged)
        last = max(lead(crm, f"Lead {n}") for n in range(20))

        started = time.monotonic()
        view(crm).wait_for(last, timeout=5.0)  # nothing of its types lies in between
        waited = time.monotonic() - started
        time.sleep(0.5)
        assert view(crm).position() == tagged  # 20 commits, not one write
        assert waited < 1.0

        again = crm.tag_customer(li, "gold").position or 0  # its own type wakes it at once
        view(crm).wait_for(again, timeout=5.0)
        assert view(crm).position() == again
        assert view(crm).counts() == {"Li": 2}


def test_a_wait_for_a_position_past_an_unapplied_event_of_its_types_times_out(
    crm: CRM,
) -> None:
    projection = installed(crm)
    customer(crm, "Wang")
    assert catch_up(projection, crm.recorder, crm.mapper) > 0  # a recorded position
    customer(crm, "Li")  # handled by the read model, not applied: no worker runs
    last = lead(crm, "Lead")

    with pytest.raises(ReadModelNotCaughtUp):
        view(crm).wait_for(last, timeout=0.3)

    catch_up(projection, crm.recorder, crm.mapper)
    view(crm).wait_for(last, timeout=0.3)


def test_positions_past_other_events_are_recorded_now_and_then(
    crm: CRM, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra.projections, "IDLE_ADVANCE_SECONDS", 0.2)
    with ProjectionSupervisor(crm, database_url, [SPEC]):
        customer(crm, "Li")
        last = lead(crm, "Lead")

        eventually(lambda: view(crm).position() == last)


def test_advancing_past_other_events_checks_the_position_and_the_active_version(
    crm: CRM,
) -> None:
    projection = installed(crm)
    customer(crm, "Li")
    at = catch_up(projection, crm.recorder, crm.mapper)
    last = lead(crm, "Lead")

    with pytest.raises(ReadModelMoved):  # a writer that does not start where the row says
        projection.view.advance(last, start=at - 1)
    rebuild(crm, SPEC)
    with pytest.raises(ReadModelMoved):  # the version it writes is no longer the active one
        projection.view.advance(last, start=at)  # (v1 is dropped once v2 serves)

    rebuilt, newer = view(crm), lead(crm, "Later lead")
    rebuilt.advance(newer, start=rebuilt.position())
    assert rebuilt.position() == newer


def test_the_log_feed_tells_a_worker_when_an_event_of_its_types_is_committed(
    crm: CRM, database_url: str
) -> None:
    stopping = threading.Event()
    feed = LogFeed(crm, database_url, stopping)
    customer(crm, "Wang")
    at = crm.recorder.max_notification_id() or 0
    tag_types = TagCountProjection.topics
    assert feed.wait(at, tag_types, timeout=0.1) == (True, at)  # not looked yet: "maybe"
    feed.start()
    try:
        eventually(lambda: feed.wait(at, tag_types, timeout=0.05) == (False, at))
        assert feed.wait(at - 1, tag_types, timeout=5.0)[0]  # before its first look: "maybe"

        last = lead(crm, "Lead")
        eventually(lambda: feed.wait(at, tag_types, timeout=0.05) == (False, last))
        li = customer(crm, "Li")
        relevant, head = feed.wait(last, tag_types, timeout=5.0)

        assert relevant and head == crm.recorder.max_notification_id()
        assert feed.wait(head, tag_types, timeout=0.05) == (False, head)
        assert li is not None
    finally:
        stopping.set()
        wake_listeners(crm)
        feed.join(10)
    assert not feed.is_alive()


def test_a_worker_with_nothing_to_write_moves_to_a_rebuilt_version(
    crm: CRM, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    li = customer(crm, "Li")
    analyze = TagCountView.analyze

    def tag_before_the_switch(self: TagCountView) -> None:
        crm.tag_customer(li, "late")  # after the rebuild's last page: the old version gets it
        time.sleep(0.5)
        analyze(self)

    with ProjectionSupervisor(crm, database_url, [SPEC]):
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())
        monkeypatch.setattr(TagCountView, "analyze", tag_before_the_switch)
        assert rebuild(crm, SPEC) == 2

        # No further commit: the idle worker must notice the switch on its own.
        eventually(lambda: view(crm).counts() == {"Li": 1})
        assert view(crm).version == 2


def test_read_models_keep_up_when_the_feed_loses_its_connection(
    crm: CRM, database_url: str
) -> None:
    li = customer(crm, "Li")
    with ProjectionSupervisor(crm, database_url, [SPEC]) as supervisor:
        eventually(lambda: view(crm).position() == crm.recorder.max_notification_id())
        with psycopg.connect(database_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (FEED_APPLICATION_NAME,),
            ).fetchone()
        assert killed is not None and killed[0] == 1
        crm.tag_customer(li, "a")
        crm.tag_customer(li, "b")

        eventually(lambda: view(crm).counts() == {"Li": 2})
        assert supervisor.feed.is_alive()
        crm.tag_customer(li, "c")  # and the reconnected feed serves again
        eventually(lambda: view(crm).counts() == {"Li": 3})
