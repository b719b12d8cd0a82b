"""Lead routing on real PostgreSQL: scored, assigned and given a task exactly once per capture."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg.sql import SQL, Identifier

from domain.application import CRM
from domain.lead import Lead, LeadAssigned, LeadCaptured, LeadScored
from domain.shared import Aggregate, DomainEvent, FixedClock
from domain.sla import BusinessCalendar
from domain.task import Task, TaskCreated
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.sagas import (
    TRACKING_TABLE,
    SagaEventFailed,
    SagaPositionMoved,
    SagaRunner,
    SagaSupervisor,
    saga_status,
)
from infra.services import create_database, drop_database
from infra.settings import Settings
from sagas.base import Records
from sagas.lead_routing import LeadRoutingSaga
from sagas.routing import SalesRotation, rotation_id
from tests.domain.scenario import MONDAY_9AM
from tests.sagas.conftest import RULES

ACTOR = "saga:lead_routing"


def capture(crm: CRM, region: str = "east", lead_id: UUID | None = None, **fields: Any) -> UUID:
    details: dict[str, Any] = {
        "channel": "web_form",
        "name": f"Lead from {region}",
        "region": region,
        "email": "buyer@example.com",
    }
    return crm.capture_lead(lead_id=lead_id, **(details | fields)).id


def first_contact(crm: CRM, saga: LeadRoutingSaga, lead_id: UUID) -> Task:
    [captured] = [e for e in crm.history(lead_id) if isinstance(e, LeadCaptured)]
    return crm.commands.load(Task, saga.record_id(captured, "first-contact"))


def owners(crm: CRM, lead_ids: Sequence[UUID]) -> list[str | None]:
    return [crm.commands.load(Lead, lead_id).owner for lead_id in lead_ids]


def head(crm: CRM) -> int:
    return crm.recorder.max_notification_id() or 0


def test_a_captured_lead_is_scored_assigned_and_given_a_task_by_the_saga(
    crm: CRM, runner: SagaRunner, saga: LeadRoutingSaga
) -> None:
    lead_id = capture(crm, company="Acme", phone="138 0013 8000", interest="CRM")

    assert runner.catch_up() == 1

    captured, scored, assigned = crm.history(lead_id)
    assert isinstance(scored, LeadScored) and isinstance(assigned, LeadAssigned)
    assert scored.score == 65  # web form 15 + email 10 + phone 10 + company 15 + interest 15
    assert scored.reasons[-1] == "scoring rules v3"
    assert (assigned.owner, assigned.rule_id) == ("alice", "territory-east@v3")
    assert "candidates alice x2, bob x1; round-robin counter 0" in assigned.explanation
    task = first_contact(crm, saga, lead_id)
    assert (task.assignee, task.team, task.related_id) == ("alice", "east-sales", lead_id)
    assert task.due_at == MONDAY_9AM + timedelta(hours=2)  # Monday 09:00 -> 11:00 local
    assert (task.source_saga, task.cause_id) == ("lead_routing", captured.event_id)
    [created] = crm.history(task.id)
    for effect in (scored, assigned, created):
        assert effect.actor == ACTOR
        assert effect.causation_id == captured.event_id
        assert effect.correlation_id == captured.correlation_id


def test_the_due_time_counts_business_hours_from_the_capture(
    crm: CRM, runner: SagaRunner, saga: LeadRoutingSaga, clock: FixedClock
) -> None:
    clock.advance(hours=8, minutes=30)  # Monday 17:30 local: half an hour before closing
    lead_id = capture(crm)
    clock.advance(days=1)  # the saga runs late; the clock of its events says so
    runner.catch_up()

    task = first_contact(crm, saga, lead_id)
    assert task.due_at == MONDAY_9AM + timedelta(days=1, hours=1, minutes=30)  # Tue 10:30
    assert crm.history(task.id)[0].timestamp == clock.now()


def test_capacity_weights_share_a_team_two_to_one_and_skip_users_without_capacity(
    crm: CRM, runner: SagaRunner
) -> None:
    leads = [capture(crm, "east") for _ in range(6)]
    runner.catch_up()

    assert owners(crm, leads) == ["alice", "bob", "alice", "alice", "bob", "alice"]
    rotation = crm.commands.load(SalesRotation, rotation_id("east-sales"))
    assert rotation.turns == 6


def test_regions_route_to_their_territory_and_unknown_regions_to_the_fallback_queue(
    crm: CRM, runner: SagaRunner, saga: LeadRoutingSaga
) -> None:
    north, central, west = capture(crm, "north"), capture(crm, "central"), capture(crm, "west")
    runner.catch_up()

    assert owners(crm, [north, central, west]) == ["chen", "alice", "queue:sales"]
    queued = first_contact(crm, saga, west)
    assert (queued.assignee, queued.team) == (None, "sales")
    assigned = crm.history(west)[-1]
    assert isinstance(assigned, LeadAssigned)
    assert assigned.rule_id == "fallback:no-territory@v3"
    assert "owner queue:sales" in assigned.explanation


def test_a_lead_assigned_by_hand_first_keeps_its_owner_and_takes_no_turn(
    crm: CRM, runner: SagaRunner, saga: LeadRoutingSaga
) -> None:
    lead_id = capture(crm, "east")
    crm.assign_lead(lead_id, "chen")
    runner.catch_up()

    assert owners(crm, [lead_id]) == ["chen"]
    task = first_contact(crm, saga, lead_id)
    assert (task.assignee, task.team) == ("chen", "north-sales")
    assert crm.commands.find(SalesRotation, rotation_id("east-sales")) is None


class CrashingSaga(LeadRoutingSaga):
    """Lead routing that crashes between reading and writing for the leads it is told to."""

    def __init__(self, calendar: BusinessCalendar, crash_on: set[UUID]) -> None:
        super().__init__(RULES, calendar)
        self.crash_on = crash_on

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        changed = super().react(event, records)  # everything read and decided ...
        if event.originator_id in self.crash_on:
            raise RuntimeError("process killed")  # ... and then the process dies
        return changed


def test_a_crash_between_reading_and_writing_loses_nothing_and_duplicates_nothing(
    crm: CRM, saga: LeadRoutingSaga
) -> None:
    first, second, third = capture(crm), capture(crm), capture(crm)
    crashing = SagaRunner(CrashingSaga(crm.config.calendar, {second}), crm)

    with pytest.raises(SagaEventFailed):
        crashing.catch_up()
    assert owners(crm, [first, second, third]) == ["alice", None, None]

    restarted = SagaRunner(saga, crm)
    assert restarted.catch_up() == 2

    assert owners(crm, [first, second, third]) == ["alice", "bob", "alice"]
    for lead_id in (first, second, third):
        assert [type(e) for e in crm.history(lead_id)] == [LeadCaptured, LeadScored, LeadAssigned]
        first_contact(crm, saga, lead_id)
    assert crm.commands.load(SalesRotation, rotation_id("east-sales")).turns == 3


def test_running_again_from_position_zero_over_a_finished_history_creates_nothing(
    crm: CRM, runner: SagaRunner
) -> None:
    leads = [capture(crm, region) for region in ("east", "north", "west", "east")]
    runner.catch_up()
    before, finished_at = head(crm), runner.position()
    with crm.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
        curs.execute(
            SQL("DELETE FROM {} WHERE application_name = %s").format(Identifier(TRACKING_TABLE)),
            ("lead_routing",),
        )
    assert runner.position() == 0

    assert runner.catch_up() == len(leads)

    assert head(crm) == before
    assert runner.position() == finished_at


def test_a_second_instance_from_a_stale_position_records_nothing(
    crm: CRM, runner: SagaRunner, saga: LeadRoutingSaga
) -> None:
    capture(crm)
    [notification] = crm.recorder.select_notifications(start=0, limit=10)
    runner.catch_up()
    before = head(crm)

    with pytest.raises(SagaPositionMoved):
        SagaRunner(saga, crm).handle(notification)

    assert head(crm) == before


class ForgetfulSaga(LeadRoutingSaga):
    """Lead routing that forgets what it did: every reaction creates a brand-new task."""

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        assert isinstance(event, LeadCaptured)
        return [
            Task.create(
                task_id=uuid4(),
                title="Again",
                team="sales",
                related_kind="lead",
                related_id=event.originator_id,
                due_at=event.timestamp,
            )
        ]


def test_new_events_are_rolled_back_with_a_tracking_row_that_another_instance_took(
    crm: CRM, runner: SagaRunner
) -> None:
    capture(crm)
    [notification] = crm.recorder.select_notifications(start=0, limit=10)
    runner.catch_up()
    before = head(crm)

    with pytest.raises(SagaPositionMoved):
        SagaRunner(ForgetfulSaga(RULES, crm.config.calendar), crm).handle(notification)

    assert head(crm) == before


def test_replaying_the_same_history_with_the_same_rules_yields_the_same_owners(
    crm: CRM, runner: SagaRunner, postgres_server_url: str
) -> None:
    regions = ["east", "north", "east", "west", "central", "east", "north", "east"]
    lead_ids = [UUID(int=n + 1) for n in range(len(regions))]
    for lead_id, region in zip(lead_ids, regions, strict=True):
        capture(crm, region, lead_id)
    runner.catch_up()

    name = f"crm_test_{secrets.token_hex(6)}"
    replay_url = create_database(postgres_server_url, name)
    try:
        settings = Settings(customer_snapshot_interval=0)
        migrate(settings, replay_url)
        replica = build_crm(settings, replay_url, clock=FixedClock(MONDAY_9AM))
        try:
            for lead_id, region in zip(lead_ids, regions, strict=True):
                capture(replica, region, lead_id)
            SagaRunner(LeadRoutingSaga(RULES, replica.config.calendar), replica).catch_up()
            assert owners(replica, lead_ids) == owners(crm, lead_ids)
            explanations = [crm.history(i)[-1] for i in lead_ids]
            assert all(isinstance(e, LeadAssigned) and e.explanation for e in explanations)
        finally:
            replica.close()
    finally:
        drop_database(postgres_server_url, name)


def test_the_supervisor_routes_new_leads_live_and_reports_no_lag(
    crm: CRM, saga: LeadRoutingSaga, database_url: str
) -> None:
    with SagaSupervisor(crm, database_url, [saga]) as supervisor:
        lead_id = capture(crm)
        eventually(lambda: owners(crm, [lead_id]) == ["alice"])
        assert supervisor.workers[0].is_leader.is_set()
    [status] = saga_status(crm, [saga])
    assert (status.name, status.pending) == ("lead_routing", 0)
    assert [type(e) for e in crm.history(first_contact(crm, saga, lead_id).id)] == [TaskCreated]


def test_a_standby_takes_over_when_the_active_instance_stops(
    crm: CRM, saga: LeadRoutingSaga, database_url: str
) -> None:
    active = SagaSupervisor(crm, database_url, [saga])
    standby = SagaSupervisor(crm, database_url, [saga])
    active.start()
    eventually(lambda: active.workers[0].is_leader.is_set())
    standby.start()
    try:
        first = capture(crm)
        eventually(lambda: owners(crm, [first]) == ["alice"])
        assert not standby.workers[0].is_leader.is_set()
        active.stop()
        second = capture(crm)
        eventually(lambda: owners(crm, [second]) == ["bob"])
        assert standby.workers[0].is_leader.is_set()
    finally:
        active.stop()
        standby.stop()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
