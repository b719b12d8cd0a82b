"""The event store on real PostgreSQL: mapping, cipher, upcasting, snapshots, races, uniqueness."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from uuid import UUID, uuid4

import orjson
import psycopg
import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import StoredEvent

from domain.application import CRM
from domain.customer import Customer
from domain.shared import EVENT_TYPES, ConcurrencyConflict, FixedClock
from domain.ticket import Ticket
from domain.uniqueness import CustomerEmailAlreadyRegistered
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.settings import Settings
from tests.domain.scenario import MONDAY_9AM
from tests.tour import exercise_every_command

T = TypeVar("T")
THREADS = 16


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_9AM)


@pytest.fixture
def settings() -> Settings:
    return Settings(customer_snapshot_interval=5, db_pool_size=THREADS, command_retries=THREADS)


@pytest.fixture
def crm(settings: Settings, database_url: str, clock: FixedClock) -> Iterator[CRM]:
    migrate(settings, database_url)
    app = build_crm(settings, database_url, clock=clock)
    yield app
    app.close()


def all_stored(database_url: str) -> list[tuple[str, bytes]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT topic, state FROM crm_events ORDER BY notification_id")
        return [(topic, bytes(state)) for topic, state in rows]


def reread_everything(crm: CRM, fresh: CRM, record_ids: list[UUID]) -> None:
    for record_id in record_ids:
        assert fresh.history(record_id) == crm.history(record_id)
        assert [e.model_dump() for e in fresh.history(record_id)] == [
            e.model_dump() for e in crm.history(record_id)
        ]


def test_every_event_type_round_trips_through_postgresql(
    crm: CRM, settings: Settings, database_url: str, clock: FixedClock
) -> None:
    record_ids = exercise_every_command(crm, clock)

    stored_types = {topic.rsplit(".", 1)[0] for topic, _ in all_stored(database_url)}
    assert stored_types | {"crm.snapshot"} == set(EVENT_TYPES)
    fresh = build_crm(settings, database_url, clock=clock)
    reread_everything(crm, fresh, record_ids)
    assert fresh.state_at(Customer, record_ids[0]) == crm.state_at(Customer, record_ids[0])
    fresh.close()


def test_with_a_cipher_and_compression_payloads_are_unreadable_at_rest_and_round_trip(
    database_url: str, clock: FixedClock
) -> None:
    settings = Settings(cipher_key=AESCipher.create_key(32), compress=True)
    migrate(settings, database_url)
    crm = build_crm(settings, database_url, clock=clock)
    record_ids = exercise_every_command(crm, clock)

    stored = all_stored(database_url)
    assert not any(b"Acme" in state or b"acme.example.com" in state for _, state in stored)
    fresh = build_crm(settings, database_url, clock=clock)
    reread_everything(crm, fresh, record_ids)
    without_key = build_crm(Settings(compress=True), database_url, clock=clock)
    with pytest.raises(Exception):  # noqa: B017 - any failure will do: the key is required
        without_key.history(record_ids[0])
    for app in (crm, fresh, without_key):
        app.close()


def test_plain_payloads_are_orjson_under_stable_type_names(crm: CRM, database_url: str) -> None:
    crm.register_customer(kind="person", name="Li Lei", region="east", owner="user:alice")

    [(topic, state)] = all_stored(database_url)
    assert topic == "crm.customer.registered.v1"
    payload = orjson.loads(state)
    assert payload["region"] == "east"  # business data stays clear for projections
    assert set(payload["name"]) == {"$pd"}  # personal data is sealed (tests/infra/test_privacy.py)


def test_a_stored_v1_ticket_opened_event_is_upcast_when_read(crm: CRM) -> None:
    ticket_id, customer_id = uuid4(), uuid4()
    v1_payload = {
        "timestamp": MONDAY_9AM.isoformat(),
        "actor": "user:legacy",
        "correlation_id": str(uuid4()),
        "causation_id": None,
        "customer_id": str(customer_id),
        "channel": "email",
        "subject": "Printer on fire",
        "description": "",
        "priority": 2,
        "first_response_due": MONDAY_9AM.isoformat(),
        "resolution_due": MONDAY_9AM.isoformat(),
    }
    crm.recorder.insert_events(
        [StoredEvent(ticket_id, 1, "crm.ticket.opened.v1", orjson.dumps(v1_payload))]
    )

    ticket = crm.state_at(Ticket, ticket_id)

    assert ticket.priority == "P2"
    assert ticket.sla_policy_version == "legacy-v1"
    assert crm.history(ticket_id)[0].type_name() == "crm.ticket.opened.v2"


def test_customers_are_snapshotted_and_read_at_past_versions(crm: CRM) -> None:
    customer = crm.register_customer(kind="person", name="Li", region="east", owner="user:a").id
    for n in range(12):
        crm.tag_customer(customer, f"tag-{n}")

    assert crm.snapshots is not None
    assert [s.originator_version for s in crm.snapshots.get(customer)] == [5, 10]
    assert crm.state_at(Customer, customer, version=3).tags == {"tag-0", "tag-1"}
    assert len(crm.state_at(Customer, customer).tags) == 12


def in_threads(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run `work(i)` in `count` threads released at once; results or raised errors."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("not run")] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as error:  # noqa: BLE001 - collected for the assertions
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_sixteen_writers_at_one_expected_version_exactly_one_wins(crm: CRM) -> None:
    customer = crm.register_customer(kind="person", name="Li", region="east", owner="user:a").id

    results = in_threads(THREADS, lambda i: crm.tag_customer(customer, f"t{i}", expected_version=1))

    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == THREADS - 1
    assert all(isinstance(e, ConcurrencyConflict) and e.actual_version == 2 for e in errors)
    assert [e.originator_version for e in crm.history(customer)] == [1, 2]


def test_sixteen_writers_without_expected_version_all_succeed_by_retrying(crm: CRM) -> None:
    customer = crm.register_customer(kind="person", name="Li", region="east", owner="user:a").id

    results = in_threads(THREADS, lambda i: crm.tag_customer(customer, f"t{i}"))

    assert not [r for r in results if isinstance(r, BaseException)]
    assert [e.originator_version for e in crm.history(customer)] == list(range(1, THREADS + 2))
    assert len(crm.state_at(Customer, customer).tags) == THREADS


def test_sixteen_writers_registering_one_email_make_exactly_one_customer(
    crm: CRM, database_url: str
) -> None:
    def register(i: int) -> Any:
        return crm.register_customer(
            kind="person",
            name=f"Li {i}",
            region="east",
            owner="user:a",
            email=f"{'LI' if i % 2 else 'li'}@example.com",
        )

    results = in_threads(THREADS, register)

    winners = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(e, CustomerEmailAlreadyRegistered) for e in errors)
    assert {e.owner_id for e in errors if isinstance(e, CustomerEmailAlreadyRegistered)} == {
        winners[0].id
    }
    registered = [t for t, _ in all_stored(database_url) if t == "crm.customer.registered.v1"]
    assert len(registered) == 1


def test_migrate_is_idempotent_and_workers_do_not_create_tables(
    settings: Settings, database_url: str
) -> None:
    assert migrate(settings, database_url) == migrate(settings, database_url)

    crm = build_crm(settings, database_url)
    assert crm.env.get("CREATE_TABLE") == "n"
    crm.close()


def test_an_unmigrated_database_is_not_silently_created_by_workers(
    settings: Settings, database_url: str
) -> None:
    crm = build_crm(settings, database_url)
    with pytest.raises(Exception):  # noqa: B017 - the table is missing; any database error
        crm.register_customer(kind="person", name="Li", region="east", owner="user:a")
    crm.close()
