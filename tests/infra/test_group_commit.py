"""Group commit: concurrent saves share a transaction, yet each keeps its own outcome."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.application import CRM
from domain.application.commands import CommandResult
from domain.customer import CustomerTagged
from domain.lead import Lead
from domain.shared import ConcurrencyConflict
from infra.bootstrap import build_crm
from infra.group_commit import GroupCommit, Pending
from infra.privacy.keys import KeyChanges, KeyRace
from infra.privacy.master import KEYS_TABLE
from infra.recorder import OneTripApplicationRecorder, _Save
from infra.settings import Settings

WRITERS = 16
COMMANDS_PER_WRITER = 500
HOT_CUSTOMERS = 6

# --- the gathering, without a database --------------------------------------------------------


class SlowWrites:
    """A batch writer that records its batches and holds the first until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.writers: list[str] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: Sequence[Pending[str, str]]) -> None:
        self.batches.append([p.item for p in batch])
        self.writers.append(threading.current_thread().name)
        if len(self.batches) == 1:
            self.first_started.set()
            self.release.wait(5)
        for pending in batch:
            if pending.item.startswith("bad"):
                pending.fail(ValueError(pending.item))
            elif pending.item == "fault":
                raise OSError("the whole batch failed")
            else:
                pending.succeed(pending.item.upper())


def save_in_thread(group: GroupCommit[str, str], item: str, out: dict[str, object]) -> None:
    try:
        out[item] = group.save(item, 1)
    except Exception as error:
        out[item] = error


def wait_for_queue(group: GroupCommit[str, str], length: int) -> None:
    deadline = time.monotonic() + 5
    while len(group._queue) < length:  # noqa: SLF001 - the test watches the queue fill
        assert time.monotonic() < deadline, "the saves never queued"
        time.sleep(0.001)


def test_a_lone_save_is_written_at_once_by_its_own_thread() -> None:
    writes = SlowWrites()
    writes.release.set()
    group: GroupCommit[str, str] = GroupCommit(writes)

    assert group.save("a", 1) == "A"
    assert group.save("b", 1) == "B"
    assert writes.batches == [["a"], ["b"]]
    assert writes.writers == [threading.current_thread().name] * 2


def test_saves_arriving_during_a_write_go_together_in_the_next_and_each_gets_its_own_outcome() -> (
    None
):
    writes = SlowWrites()
    group: GroupCommit[str, str] = GroupCommit(writes)
    out: dict[str, object] = {}
    first = threading.Thread(target=save_in_thread, args=(group, "first", out))
    first.start()
    assert writes.first_started.wait(5)
    others = [
        threading.Thread(target=save_in_thread, args=(group, item, out))
        for item in ("x", "bad-y", "z")
    ]
    for thread in others:
        thread.start()
    wait_for_queue(group, 3)
    writes.release.set()
    for thread in [first, *others]:
        thread.join(5)

    assert writes.batches[0] == ["first"]
    assert sorted(writes.batches[1]) == ["bad-y", "x", "z"]
    assert out["first"] == "FIRST" and out["x"] == "X" and out["z"] == "Z"
    assert isinstance(out["bad-y"], ValueError)  # only the bad save failed
    assert group.batches == 2 and group.saves == 4
    assert not group._busy  # noqa: SLF001 - the next lone save leads at once


def test_a_fault_of_a_whole_batch_fails_its_saves_only_and_the_next_batch_is_written() -> None:
    writes = SlowWrites()
    group: GroupCommit[str, str] = GroupCommit(writes, max_saves=2)
    out: dict[str, object] = {}
    first = threading.Thread(target=save_in_thread, args=(group, "first", out))
    first.start()
    assert writes.first_started.wait(5)
    threads = []
    for item in ("fault", "p", "q"):  # queued in this order; batches of at most 2
        thread = threading.Thread(target=save_in_thread, args=(group, item, out))
        thread.start()
        threads.append(thread)
        wait_for_queue(group, len(threads))
    writes.release.set()
    for thread in [first, *threads]:
        thread.join(5)

    assert writes.batches == [["first"], ["fault", "p"], ["q"]]
    assert isinstance(out["fault"], OSError) and isinstance(out["p"], OSError)
    assert out["q"] == "Q"


# --- the recorder on PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def crm(migrated_database_url: str) -> Iterator[CRM]:
    app = build_crm(Settings(db_pool_size=WRITERS + 4), migrated_database_url)
    yield app
    app.close()


def recorder_of(crm: CRM) -> OneTripApplicationRecorder:
    recorder = crm.recorder
    assert isinstance(recorder, OneTripApplicationRecorder)
    return recorder


def event(originator_id: UUID | None = None, version: int = 1) -> StoredEvent:
    return StoredEvent(originator_id or uuid4(), version, "crm.test.written.v1", b"{}")


def stored_keys(url: str) -> dict[UUID, bytes | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT record_id, wrapped_key FROM {KEYS_TABLE}").fetchall()
    return dict(rows)


def test_one_statement_writes_a_batch_and_a_clashing_save_fails_alone(
    crm: CRM, migrated_database_url: str
) -> None:
    recorder = recorder_of(crm)
    existing = uuid4()
    recorder.insert_events([event(existing)])
    fresh, clash, after = uuid4(), uuid4(), uuid4()
    saves = [
        _Save([event(), event()], KeyChanges({fresh: (fresh, b"k1", b"wrapped-fresh")})),
        _Save([event(clash), event(existing, 1)], KeyChanges({clash: (clash, b"k2", b"w-clash")})),
        _Save([event(existing, 2)], KeyChanges()),
        _Save([event(after)], KeyChanges()),
    ]

    clashed, raced, positions = recorder._group_commit(saves)  # noqa: SLF001

    assert clashed == {1} and raced == set()
    assert len(positions) == 4 and positions == sorted(positions)
    logged = {
        (n.originator_id, n.originator_version): n.id for n in recorder.select_notifications(1, 100)
    }
    assert len(logged) == 5  # the one written first, and the four of saves 0, 2 and 3
    assert (clash, 1) not in logged  # nothing of the clashing save
    assert [logged[(e.originator_id, e.originator_version)] for e in saves[0].events] == (
        positions[:2]
    )
    assert logged[(existing, 2)] == positions[2] and logged[(after, 1)] == positions[3]
    keys = stored_keys(migrated_database_url)
    assert keys[fresh] == b"wrapped-fresh"
    assert clash not in keys  # the clashing save's key went with it


def test_a_save_whose_new_key_was_taken_meanwhile_fails_alone_with_a_key_race(
    crm: CRM, migrated_database_url: str
) -> None:
    recorder = recorder_of(crm)
    taken, mine = uuid4(), uuid4()
    first = _Save([event(taken)], KeyChanges({taken: (taken, b"k", b"theirs")}))
    second = _Save([event(mine), event(taken, 2)], KeyChanges({taken: (taken, b"k", b"ours")}))

    clashed, raced, positions = recorder._group_commit([first, second])  # noqa: SLF001

    assert clashed == set() and raced == {1} and len(positions) == 1
    assert stored_keys(migrated_database_url)[taken] == b"theirs"
    assert {n.originator_id for n in recorder.select_notifications(1, 10)} == {taken}

    pendings = [Pending(first, 1), Pending(second, 2)]
    recorder._write_batch(pendings)  # noqa: SLF001 - the callers' view of the same outcome
    assert isinstance(pendings[0].error, IntegrityError)  # version 1 of `taken` exists now
    assert isinstance(pendings[1].error, KeyRace)


def test_a_save_is_written_at_once_when_nothing_is_in_flight(crm: CRM) -> None:
    recorder = recorder_of(crm)
    before = recorder._group.batches  # noqa: SLF001
    positions = recorder.insert_events([event(), event()])

    assert positions is not None and positions[1] == positions[0] + 1
    assert recorder._group.batches == before + 1  # noqa: SLF001


@dataclass
class Outcome:
    """What one command's caller was told."""

    kind: str
    customer: UUID | None
    tag: str | None
    id: UUID | None = None
    version: int | None = None
    position: int | None = None
    error: Exception | None = None


def test_sixteen_writers_of_mixed_commands_on_hot_records_each_get_what_the_log_holds(
    crm: CRM, migrated_database_url: str
) -> None:
    recorder = recorder_of(crm)
    hot = [
        crm.register_customer(kind="company", name=f"Hot {n}", region="east", owner="alice").id
        for n in range(HOT_CUSTOMERS)
    ]
    outcomes: list[list[Outcome]] = [[] for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)

    def writer(index: int) -> None:
        rng = random.Random(index)
        seen: dict[UUID, int] = {}
        barrier.wait()
        for i in range(COMMANDS_PER_WRITER):
            roll = rng.random()
            customer = rng.choice(hot)
            tag = f"w{index}-{i}"
            expected = seen.get(customer, 1)
            call: Callable[[], CommandResult]
            if roll < 0.3:  # If-Match with this writer's last view: often stale
                outcome = Outcome("tag-if-match", customer, tag)
                call = partial(crm.tag_customer, customer, tag, expected_version=expected)
            elif roll < 0.6:
                outcome = Outcome("owner-if-match", customer, None)
                owner = f"user{rng.randrange(8)}"
                call = partial(
                    crm.assign_customer_owner, customer, owner, expected_version=expected
                )
            elif roll < 0.7:
                outcome = Outcome("tag", customer, tag)
                call = partial(crm.tag_customer, customer, tag)
            elif roll < 0.8:
                outcome = Outcome("interaction", customer, None)
                call = partial(
                    crm.log_customer_interaction, customer, kind="call", summary=f"call {tag}"
                )
            else:  # a new record with a new personal-data key
                outcome = Outcome("lead", None, None)
                call = partial(
                    crm.capture_lead,
                    channel="web_form",
                    name=f"Lead {tag}",
                    email=f"{tag}@example.com",
                    region="east",
                )
            try:
                result = call()
            except (ConcurrencyConflict, IntegrityError) as error:
                outcome.error = error
            else:
                outcome.id, outcome.version, outcome.position = (
                    result.id,
                    result.version,
                    result.position,
                )
                if outcome.customer is not None:
                    seen[outcome.customer] = result.version
            outcomes[index].append(outcome)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [o for per in outcomes for o in per]
    assert len(everything) == WRITERS * COMMANDS_PER_WRITER

    log = recorder.select_notifications(1, 1_000_000)
    positions = [n.id for n in log]
    assert positions == sorted(positions)
    at = {n.id: n for n in log}
    by_record: dict[UUID, list[int]] = defaultdict(list)
    for n in log:
        by_record[n.originator_id].append(n.originator_version)
    for versions in by_record.values():  # each record's versions contiguous, in log order
        assert versions == list(range(1, len(versions) + 1))

    succeeded = [o for o in everything if o.error is None]
    failed = [o for o in everything if o.error is not None]
    assert failed, "the hot records never made a command's expected version stale"
    for o in succeeded:  # the answer each caller got is what the log holds
        if o.position is None:  # the owner it already had: nothing to write
            assert o.kind == "owner-if-match"
            continue
        written = at[o.position]
        assert (written.originator_id, written.originator_version) == (o.id, o.version)
    tags: Counter[tuple[UUID, str]] = Counter()
    for customer in hot:
        for domain_event in crm.events.get(customer):
            if isinstance(domain_event, CustomerTagged):
                tags[(customer, domain_event.tag)] += 1
    for o in everything:
        if o.tag is not None:
            assert o.customer is not None
            assert tags[(o.customer, o.tag)] == (1 if o.error is None else 0), o
    leads = [o for o in succeeded if o.kind == "lead"]
    assert all(by_record[o.id] == [1] for o in leads if o.id is not None)
    assert {o.id for o in leads} <= set(stored_keys(migrated_database_url))

    group = recorder._group  # noqa: SLF001
    assert group.batches < group.saves  # concurrent saves were gathered


def test_a_new_record_whose_key_exists_already_uses_it_after_one_key_race(
    crm: CRM, migrated_database_url: str
) -> None:
    from infra.privacy.keys import PostgresKeyStore

    keys = recorder_of(crm).keys
    assert isinstance(keys, PostgresKeyStore)
    lead_id, data_key = uuid4(), bytes(range(32))
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:  # left by another save
        conn.execute(
            f"INSERT INTO {KEYS_TABLE} (record_id, data_subject_id, wrapped_key) "
            "VALUES (%s, %s, %s)",
            (lead_id, lead_id, keys.master.wrap(lead_id, data_key)),
        )

    crm.capture_lead(
        channel="web_form", name="Ada", email="ada@example.com", region="east", lead_id=lead_id
    )

    assert lead_id in keys._raced  # noqa: SLF001 - the first attempt raced, the retry looked up
    assert keys.key_for_reading(lead_id) == data_key
    assert crm.commands.load(Lead, lead_id).name == "Ada"


def test_a_taken_id_still_answers_already_exists(crm: CRM) -> None:
    from domain.shared import AlreadyExists

    lead_id = uuid4()
    crm.capture_lead(
        channel="web_form", name="Ada", email="a@example.com", region="east", lead_id=lead_id
    )
    with pytest.raises(AlreadyExists):
        crm.capture_lead(
            channel="web_form", name="Bob", email="b@example.com", region="east", lead_id=lead_id
        )


def test_topics_and_states_of_any_content_are_stored_exactly(crm: CRM) -> None:
    recorder = recorder_of(crm)
    odd = StoredEvent(uuid4(), 1, 'crm.test."quoted" \\ {braces}, comma.v1', bytes(range(256)))
    empty = StoredEvent(uuid4(), 1, "crm.test.empty.v1", b"")

    recorder.insert_events([odd, empty])

    stored = recorder.select_notifications(1, 10)
    assert [(n.topic, n.state) for n in stored] == [(odd.topic, odd.state), (empty.topic, b"")]


def test_a_retry_after_a_lost_reply_keeps_the_keys_of_the_events_that_committed(
    crm: CRM, migrated_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = recorder_of(crm)
    record = uuid4()
    save = _Save([event(record)], KeyChanges({record: (record, b"k", b"wrapped-ours")}))
    real_fetchone = psycopg.Cursor.fetchone
    replies = []

    def reply_lost_once(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
        row = real_fetchone(self, *args, **kwargs)
        replies.append(row)
        if len(replies) == 1:  # the server committed; the client never hears of it
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return row

    monkeypatch.setattr(psycopg.Cursor, "fetchone", reply_lost_once)
    pending: Pending[_Save, list[int]] = Pending(save, 1)
    recorder._write_batch([pending])  # noqa: SLF001
    monkeypatch.undo()

    assert isinstance(pending.error, IntegrityError)  # the retry finds its own events (ADR 0014)

    assert [n.originator_id for n in recorder.select_notifications(1, 10)] == [record]
    assert stored_keys(migrated_database_url)[record] == b"wrapped-ours"


def test_a_save_interrupted_while_queued_leaves_the_queue_working() -> None:
    writes = SlowWrites()
    group: GroupCommit[str, str] = GroupCommit(writes)
    out: dict[str, object] = {}
    first = threading.Thread(target=save_in_thread, args=(group, "first", out))
    first.start()
    assert writes.first_started.wait(5)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            group.save("interrupted", 1)  # queued behind "first", then Ctrl-C
    finally:
        signal.signal(signal.SIGALRM, previous)
    writes.release.set()
    first.join(5)
    later = threading.Thread(target=save_in_thread, args=(group, "later", out), daemon=True)
    later.start()
    later.join(5)

    assert out == {"first": "FIRST", "later": "LATER"}
    assert ["interrupted"] not in writes.batches
