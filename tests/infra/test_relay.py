"""The event relay against real PostgreSQL and a real nats-server: order, exactly once, standby."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import nats
import orjson
import psycopg
import pytest
from cloudevents.core.formats.json import JSONFormat

from domain.application import CRM
from domain.shared import command_context
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.relay import Relay, RelayConfig, RelayRunner, relay_status
from infra.relay.envelope import Message, is_published
from infra.relay.publisher import (
    BATCH_ID,
    BATCH_SEQUENCE,
    EXPECTED_LAST_SEQUENCE,
    MSG_ID,
    JetStreamPublisher,
)
from infra.relay.tracking import TRACKING_TABLE
from infra.services import EmbeddedNats
from infra.services.processes import free_port
from infra.settings import Settings
from tests.conftest import service_unavailable


@pytest.fixture
def crm(database_url: str) -> Iterator[CRM]:
    settings = Settings(db_pool_size=12, customer_snapshot_interval=0)
    migrate(settings, database_url)
    app = build_crm(settings, database_url)
    yield app
    app.close()


@pytest.fixture
def config() -> RelayConfig:
    """A stream and subjects of this test's own on the shared server."""
    token = secrets.token_hex(4)
    return RelayConfig(stream=f"CRM_T{token}", subject_prefix=f"t{token}", max_backoff_seconds=1)


class Crash(BaseException):
    """The process dies here (not an error the relay could handle)."""


def require_atomic_batches(nats_url: str) -> None:
    """Batches need nats-server >= 2.12 (the embedded one is); older ones get single messages."""

    async def version() -> tuple[int, int]:
        nc = await nats.connect(nats_url)
        try:
            found = nc.connected_server_version
            return (found.major, found.minor)
        finally:
            await nc.close()

    found = asyncio.run(version())
    if found < (2, 12):
        service_unavailable(f"nats-server {found} has no atomic batch publish (needs 2.12)")


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def register(crm: CRM, n: int) -> UUID:
    """A customer with an email (its uniqueness claim is an internal, unpublished event)."""
    return crm.register_customer(
        kind="person", name=f"C{n}", region="east", owner="user:a", email=f"c{n}@example.com"
    ).id


def publishable_log(crm: CRM) -> list[tuple[int, str]]:
    """(position, topic) of every event in the log that integrators receive, in order."""
    notifications = crm.recorder.select_notifications(start=1, limit=1_000_000)
    return [(n.id, n.topic) for n in notifications if is_published(n.topic)]


def stream_contents(nats_url: str, stream: str) -> list[bytes]:
    """Every message's payload in the stream, in stream order."""

    async def read() -> list[bytes]:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            messages = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                messages.append(msg.data or b"")
            return messages
        finally:
            await nc.close()

    return asyncio.run(read())


def caught_up(crm: CRM, config: RelayConfig) -> Callable[[], bool]:
    def check() -> bool:
        status = relay_status(crm, config.stream)
        return status.position == status.head and status.head > 0

    return check


def assert_published_once_in_order(crm: CRM, nats_url: str, config: RelayConfig) -> None:
    envelopes = [orjson.loads(p) for p in stream_contents(nats_url, config.stream)]
    expected = publishable_log(crm)
    assert [(e["position"], e["type"]) for e in envelopes] == expected
    assert len({e["id"] for e in envelopes}) == len(envelopes)


def test_every_committed_event_arrives_once_as_a_valid_cloudevent_in_position_order(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    li = register(crm, 1)
    with command_context(actor="user:ops"):
        crm.tag_customer(li, "vip")
    lead = crm.capture_lead(channel="ads", name="Wang", region="east", phone="13812345678")

    with RelayRunner(Relay(crm, database_url, nats_url, config)):
        eventually(caught_up(crm, config))
        crm.qualify_lead(lead.id)  # published live, not only from the backlog
        eventually(caught_up(crm, config))

    payloads = stream_contents(nats_url, config.stream)
    events = [JSONFormat().read(None, payload) for payload in payloads]  # validates 1.0
    tagged = next(e for e in events if e.get_type() == "crm.customer.tagged.v1")
    assert_published_once_in_order(crm, nats_url, config)
    assert all(e.get_specversion() == "1.0" for e in events)
    assert tagged.get_source() == "/crm/customer"
    assert tagged.get_subject() == str(li)
    assert tagged.get_data() == {"tag": "vip"}
    assert tagged.get_extension("actor") == "user:ops"
    assert tagged.get_extension("aggregateversion") == 2
    assert isinstance(tagged.get_extension("correlationid"), str)
    assert not any(e.get_type().startswith("crm.claim.") for e in events)


def test_messages_are_published_on_their_event_subjects(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    li = register(crm, 1)
    crm.tag_customer(li, "vip")

    async def subjects() -> list[str]:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(f"{config.subject_prefix}.customer.tagged", None)
            return [m.subject for m in await sub.fetch(10, timeout=2)]
        finally:
            await nc.close()

    with RelayRunner(Relay(crm, database_url, nats_url, config)):
        eventually(caught_up(crm, config))
        seen = asyncio.run(subjects())

    assert seen == [f"{config.subject_prefix}.customer.tagged"]


def test_a_crash_after_publishing_and_before_tracking_sends_no_event_twice(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    for n in range(30):
        register(crm, n)
    crashing = Relay(crm, database_url, nats_url, config)

    def crash(position: int) -> None:
        if position > 0:
            raise Crash()

    crashing.before_tracking = crash
    first = RelayRunner(crashing)
    with first:
        eventually(lambda: not first.is_alive())
    assert isinstance(first.crashed, Crash)
    assert relay_status(crm, config.stream).position == 0  # published, but not tracked
    assert len(stream_contents(nats_url, config.stream)) > 0

    restarted = Relay(crm, database_url, nats_url, config)
    with RelayRunner(restarted):
        eventually(caught_up(crm, config))

    assert_published_once_in_order(crm, nats_url, config)
    assert restarted.duplicates == 0  # the stream's last message told it where to resume


def test_re_published_events_inside_the_duplicate_window_are_dropped_by_jetstream(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    for n in range(20):
        register(crm, n)
    with RelayRunner(Relay(crm, database_url, nats_url, config)):
        eventually(caught_up(crm, config))
    with psycopg.connect(database_url, autocommit=True) as conn:  # tracking lost its progress
        conn.execute(f"UPDATE {TRACKING_TABLE} SET position = 0")  # noqa: S608 - a constant

    forgetful = Relay(crm, database_url, nats_url, config, reconcile=False)
    with RelayRunner(forgetful):
        eventually(caught_up(crm, config))

    assert forgetful.duplicates == len(publishable_log(crm)) and forgetful.stored == 0
    assert_published_once_in_order(crm, nats_url, config)


def test_a_crash_in_the_middle_of_a_batch_stores_none_of_it_and_each_event_arrives_once(
    crm: CRM,
    database_url: str,
    nats_url: str,
    config: RelayConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_atomic_batches(nats_url)
    for n in range(30):
        register(crm, n)

    async def cut_off(self: JetStreamPublisher, messages: list[Message], expected_seq: int) -> Any:
        for number, message in enumerate(messages[: len(messages) // 2], 1):  # never committed
            headers = {MSG_ID: message.id, BATCH_ID: "cut-off", BATCH_SEQUENCE: str(number)}
            if number == 1:
                headers[EXPECTED_LAST_SEQUENCE] = str(expected_seq)
            await self.nc.publish(message.subject, message.payload, headers=headers)
        await self.nc.flush()
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(JetStreamPublisher, "publish_batch", cut_off)
        first = RelayRunner(Relay(crm, database_url, nats_url, config))
        with first:
            eventually(lambda: not first.is_alive())
    assert isinstance(first.crashed, Crash)
    assert _stream_messages(nats_url, config.stream) == 0  # half a batch: nothing stored

    restarted = Relay(crm, database_url, nats_url, config)
    with RelayRunner(restarted):
        eventually(caught_up(crm, config))

    assert _stream_config(nats_url, config.stream).allow_atomic
    assert restarted.stored == len(publishable_log(crm)) and restarted.duplicates == 0
    assert_published_once_in_order(crm, nats_url, config)


def test_a_batch_re_published_after_a_crash_is_refused_whole_then_deduplicated_singly(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    for n in range(20):
        register(crm, n)
    with RelayRunner(Relay(crm, database_url, nats_url, config)):
        eventually(caught_up(crm, config))
    for n in range(20, 40):  # new events after the ones already in the stream
        register(crm, n)
    with psycopg.connect(database_url, autocommit=True) as conn:  # tracking lost its progress
        conn.execute(f"UPDATE {TRACKING_TABLE} SET position = 0")  # noqa: S608 - a constant

    forgetful = Relay(crm, database_url, nats_url, config, reconcile=False)
    with RelayRunner(forgetful):
        eventually(caught_up(crm, config))

    assert forgetful.stored + forgetful.duplicates == len(publishable_log(crm))
    assert forgetful.stored == 20  # only the new registrations; the rest dropped as duplicates
    assert_published_once_in_order(crm, nats_url, config)


def test_of_two_relays_against_one_database_only_one_publishes(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    register(crm, 1)
    first = Relay(crm, database_url, nats_url, config)
    second = Relay(crm, database_url, nats_url, config)
    with RelayRunner(first), RelayRunner(second):
        eventually(caught_up(crm, config))
        for n in range(2, 12):
            register(crm, n)
        eventually(caught_up(crm, config))
        leaders = [relay.is_leader.is_set() for relay in (first, second)]

    assert sorted(leaders) == [False, True]
    publisher, standby = (first, second) if leaders[0] else (second, first)
    assert publisher.stored == len(publishable_log(crm)) and standby.stored == 0
    assert_published_once_in_order(crm, nats_url, config)


def test_a_standby_relay_takes_over_when_the_leader_stops(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    leader = RelayRunner(Relay(crm, database_url, nats_url, config))
    standby = Relay(crm, database_url, nats_url, config)
    leader.start()
    eventually(lambda: leader.relay.is_leader.is_set())
    with RelayRunner(standby):
        leader.stop()
        eventually(standby.is_leader.is_set)
        register(crm, 1)
        eventually(caught_up(crm, config))

    assert standby.stored == len(publishable_log(crm))


def test_status_reports_position_head_lag_and_state(
    crm: CRM, database_url: str, nats_url: str, config: RelayConfig
) -> None:
    register(crm, 1)
    before = relay_status(crm, config.stream)
    with RelayRunner(Relay(crm, database_url, nats_url, config)):
        eventually(caught_up(crm, config))
        eventually(lambda: relay_status(crm, config.stream).state == "running")
        during = relay_status(crm, config.stream)

    assert before.state == "not running" and before.position == 0
    assert before.lag_events == 1 and before.lag_ms is not None  # the claim is not counted
    assert during.position == during.head and during.lag_events == 0 and during.lag_ms is None
    assert during.published == 1 and during.error is None and during.healthy


def test_the_relay_retries_while_nats_is_unreachable_and_reports_why(
    crm: CRM, database_url: str, config: RelayConfig
) -> None:
    register(crm, 1)
    relay = Relay(crm, database_url, "nats://127.0.0.1:1", config)

    with RelayRunner(relay) as runner:
        eventually(lambda: relay_status(crm, config.stream).state == "retrying after error")
        status = relay_status(crm, config.stream)
        assert runner.is_alive()

    assert status.lag_events == 1 and status.error and not status.healthy


def _stream_config(nats_url: str, stream: str) -> Any:
    async def read() -> Any:
        nc = await nats.connect(nats_url)
        try:
            return (await nc.jetstream().stream_info(stream)).config
        finally:
            await nc.close()

    return asyncio.run(read())


def _stream_messages(nats_url: str, stream: str) -> int:
    async def read() -> int:
        nc = await nats.connect(nats_url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        finally:
            await nc.close()

    return asyncio.run(read())


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server of this test alone, which it may stop and restart (same port and store)."""
    server = EmbeddedNats(tmp_path / "store", port=free_port())
    try:
        server.start()
    except Exception as error:
        server.stop()
        service_unavailable(f"embedded nats-server did not start: {error}")
    yield server
    server.stop()


def test_events_committed_while_nats_is_down_arrive_in_order_once_it_is_back(
    crm: CRM, database_url: str, own_nats: EmbeddedNats, config: RelayConfig
) -> None:
    url = nats_url_for(own_nats)
    config = replace(config, ack_timeout_seconds=1.0)
    customers = [register(crm, n) for n in range(10)]
    failures: list[BaseException] = []

    def write() -> None:  # 1,000 commands over ~12 s, at an even pace
        started = time.monotonic()
        for i in range(1000):
            try:
                crm.tag_customer(customers[i % 10], f"t{i}")
            except BaseException as error:  # every command must succeed
                failures.append(error)
            time.sleep(max(0.0, started + i * 0.012 - time.monotonic()))

    with RelayRunner(Relay(crm, database_url, url, config)):
        eventually(caught_up(crm, config))
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(1.0)
        own_nats.stop()
        time.sleep(10.0)
        during = relay_status(crm, config.stream)
        own_nats.start()
        writer.join()
        eventually(caught_up(crm, config), timeout=30)

    assert failures == []
    assert during.state == "retrying after error" and during.lag_events > 0
    assert len(publishable_log(crm)) == 10 + 1000
    assert_published_once_in_order(crm, url, config)


def nats_url_for(server: EmbeddedNats) -> str:
    assert server.port is not None
    return f"nats://127.0.0.1:{server.port}"
