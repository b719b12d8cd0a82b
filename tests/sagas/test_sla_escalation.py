"""SLA escalation on real PostgreSQL: durable timers warn, breach and escalate once by the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from psycopg.sql import SQL, Identifier

from domain.application import CRM
from domain.shared import DomainEvent, FixedClock
from domain.task import Task, TaskCreated
from domain.ticket import (
    Ticket,
    TicketEscalated,
    TicketOpened,
    TicketResumed,
    TicketSlaAtRisk,
    TicketSlaBreached,
)
from infra.bootstrap import build_crm
from infra.sagas import TIMERS_TABLE, SagaEventFailed, SagaRunner, SagaSupervisor
from infra.settings import Settings
from sagas.base import Timer
from sagas.sla_escalation import SlaEscalationRules, SlaEscalationSaga
from tests.sagas.flows import crashing, customer, head, last_of, log, rewind

ACTOR = "saga:sla_escalation"
RULES = SlaEscalationRules(team_leads={"billing": "lead-li"}, sales_team="key-sales")
# A P2 ticket opened Monday 09:00 (Shanghai): first response due 13:00 (warning 12:00),
# resolution due 18:00 (warning 15:45).


@pytest.fixture
def saga(crm: CRM) -> SlaEscalationSaga:
    return SlaEscalationSaga(RULES, crm.config.calendar)


@pytest.fixture
def sla(saga: SlaEscalationSaga, crm: CRM) -> SagaRunner:
    return SagaRunner(saga, crm)


@pytest.fixture
def second_crm(database_url: str, clock: FixedClock, crm: CRM) -> Iterator[CRM]:
    """Another process on the same database (same clock), e.g. after a restart."""
    app = build_crm(Settings(customer_snapshot_interval=0), database_url, clock=clock)
    yield app
    app.close()


def billing_ticket(crm: CRM, owner: str = "alice") -> UUID:
    ticket = crm.open_ticket(
        customer_id=customer(crm, owner=owner), channel="phone", subject="Outage", priority="P2"
    ).id
    crm.assign_ticket(ticket, "user:dana", team="billing")
    return ticket


def of_kind(crm: CRM, kind: type[DomainEvent]) -> list[DomainEvent]:
    return [e for e in log(crm) if isinstance(e, kind)]


def timers(crm: CRM) -> list[dict[str, object]]:
    with crm.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            SQL("SELECT * FROM {} ORDER BY fire_at, kind").format(Identifier(TIMERS_TABLE))
        )
        return list(curs.fetchall())


def pending(crm: CRM) -> list[str]:
    return [str(t["kind"]) for t in timers(crm) if not t["fired_at"] and not t["cancelled_at"]]


def test_past_the_warning_and_the_due_time_one_warning_one_breach_one_escalation_two_tasks(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    ticket = billing_ticket(crm)
    sla.catch_up()
    assert pending(crm) == [
        "first_response:warning",
        "first_response:due",
        "resolution:warning",
        "resolution:due",
    ]

    clock.advance(hours=3)  # 12:00: 75 % of the first response's four hours
    assert sla.fire_due_timers() == 1
    [warning] = of_kind(crm, TicketSlaAtRisk)
    assert (warning.measure, warning.actor) == ("first_response", ACTOR)  # type: ignore[attr-defined]

    clock.advance(hours=1, minutes=1)  # 13:01: the first response is late
    assert sla.fire_due_timers() == 1
    assert sla.fire_due_timers() == 0

    opened = last_of(crm, ticket, TicketOpened)
    [breach] = of_kind(crm, TicketSlaBreached)
    [escalated] = of_kind(crm, TicketEscalated)
    tasks = [crm.commands.load(Task, e.originator_id) for e in of_kind(crm, TaskCreated)]
    assert len(of_kind(crm, TicketSlaAtRisk)) == 1
    assert breach.due == crm.commands.load(Ticket, ticket).first_response_due  # type: ignore[attr-defined]
    assert escalated.level == 1  # type: ignore[attr-defined]
    assert {(t.assignee, t.team) for t in tasks} == {("lead-li", "billing"), ("alice", "key-sales")}
    assert all(t.related_id == ticket and t.source_saga == "sla_escalation" for t in tasks)
    for effect in (warning, breach, escalated, *of_kind(crm, TaskCreated)):
        assert (effect.actor, effect.causation_id) == (ACTOR, opened.event_id)
        assert effect.correlation_id == opened.correlation_id
    assert pending(crm) == ["resolution:warning", "resolution:due"]


def test_a_ticket_paused_before_its_due_time_breaches_only_once_the_pause_is_made_up(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    ticket = billing_ticket(crm)
    clock.advance(hours=2)  # 11:00
    crm.wait_on_customer(ticket)
    clock.advance(hours=3)  # 14:00: past the original 13:00, but the clock stood still
    sla.catch_up()

    sla.fire_due_timers()
    assert of_kind(crm, TicketSlaBreached) == [] and of_kind(crm, TicketSlaAtRisk) == []

    crm.resume_ticket(ticket)  # three business hours paused: first response due 16:00
    sla.catch_up()
    resumed = last_of(crm, ticket, TicketResumed)
    clock.advance(hours=1, minutes=59)  # 15:59
    sla.fire_due_timers()
    assert of_kind(crm, TicketSlaBreached) == []
    [warning] = of_kind(crm, TicketSlaAtRisk)  # 15:00 = 09:00 + 75 % of 4h + 3h paused
    assert warning.causation_id == resumed.event_id

    clock.advance(minutes=2)  # 16:01
    sla.fire_due_timers()
    [breach] = of_kind(crm, TicketSlaBreached)
    assert breach.due == resumed.first_response_due  # type: ignore[attr-defined]
    assert len(of_kind(crm, TaskCreated)) == 2


def test_a_pause_after_the_warning_does_not_warn_again_when_resumed(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    ticket = billing_ticket(crm)
    sla.catch_up()
    clock.advance(hours=3, minutes=30)  # 12:30, warned at 12:00
    sla.fire_due_timers()
    crm.wait_on_customer(ticket)
    clock.advance(hours=1)
    crm.resume_ticket(ticket)  # first response now due 14:00
    sla.catch_up()
    clock.advance(minutes=31)  # 14:01

    sla.fire_due_timers()

    assert len(of_kind(crm, TicketSlaAtRisk)) == 1
    assert len(of_kind(crm, TicketSlaBreached)) == 1


def test_a_ticket_paused_after_its_due_time_still_breaches(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    ticket = billing_ticket(crm)
    sla.catch_up()
    clock.advance(hours=4, minutes=30)  # 13:30, and the timer loop was not running
    crm.wait_on_customer(ticket)
    sla.catch_up()

    sla.fire_due_timers()

    assert len(of_kind(crm, TicketSlaBreached)) == 1


def test_responding_and_resolving_cancel_the_timers(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    ticket = billing_ticket(crm)
    sla.catch_up()
    clock.advance(hours=1)
    crm.record_ticket_first_response(ticket)
    sla.catch_up()
    assert pending(crm) == ["resolution:warning", "resolution:due"]

    crm.resolve_ticket(ticket, "Restarted the router")
    sla.catch_up()
    assert pending(crm) == []

    clock.advance(days=3)
    assert sla.fire_due_timers() == 0
    assert of_kind(crm, TicketSlaAtRisk) == of_kind(crm, TicketSlaBreached) == []


def test_a_new_priority_moves_the_timers_to_the_new_due_times(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    ticket = billing_ticket(crm)
    sla.catch_up()
    crm.change_ticket_priority(ticket, "P1")  # first response due 10:00, resolution 13:00
    sla.catch_up()
    clock.advance(hours=1, minutes=1)

    assert sla.fire_due_timers() == 2  # the P1 warning and check; the P2 ones were cancelled

    [breach] = of_kind(crm, TicketSlaBreached)
    assert breach.due == clock.now() - timedelta(minutes=1)  # type: ignore[attr-defined]
    assert len([t for t in timers(crm) if t["cancelled_at"]]) == 4


def test_a_restarted_runner_fires_the_timers_scheduled_before_the_restart_once(
    crm: CRM, clock: FixedClock, sla: SagaRunner, second_crm: CRM
) -> None:
    billing_ticket(crm)
    sla.catch_up()
    del sla  # the process stops; its timers are rows in PostgreSQL

    clock.advance(hours=5)
    restarted = SagaRunner(SlaEscalationSaga(RULES, second_crm.config.calendar), second_crm)
    assert restarted.catch_up() == 0
    assert restarted.fire_due_timers() == 2
    again = SagaRunner(SlaEscalationSaga(RULES, second_crm.config.calendar), second_crm)
    assert again.fire_due_timers() == 0

    assert len(of_kind(crm, TicketSlaBreached)) == 1
    assert len(of_kind(crm, TaskCreated)) == 2


def test_two_runners_firing_at_once_fire_each_timer_once(
    crm: CRM, clock: FixedClock, saga: SlaEscalationSaga, second_crm: CRM
) -> None:
    for owner in ("alice", "bob", "chen", "dana"):
        billing_ticket(crm, owner)
    SagaRunner(saga, crm).catch_up()
    clock.advance(hours=5)
    runners = [SagaRunner(saga, crm), SagaRunner(saga, second_crm)]
    start, fired = threading.Barrier(2), [0, 0]

    def fire(i: int) -> None:
        start.wait()
        fired[i] = runners[i].fire_due_timers()

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(fired) == 8  # two first-response timers per ticket
    assert len(of_kind(crm, TicketSlaBreached)) == 4
    assert len(of_kind(crm, TicketEscalated)) == 4
    assert len(of_kind(crm, TaskCreated)) == 8


def per_ticket(crm: CRM, kind: type[DomainEvent]) -> dict[UUID, int]:
    """How many events of this kind each ticket (or task's ticket) has."""
    counts: dict[UUID, int] = {}
    for event in of_kind(crm, kind):
        subject = getattr(event, "related_id", event.originator_id)
        counts[subject] = counts.get(subject, 0) + 1
    return counts


def test_a_crash_while_planning_a_tickets_timers_loses_none_and_duplicates_none(
    crm: CRM, clock: FixedClock, saga: SlaEscalationSaga, second_crm: CRM
) -> None:
    first, second = billing_ticket(crm, "alice"), billing_ticket(crm, "bob")
    dies = crashing(saga, lambda cause: cause.originator_id == second, "plan_timers")

    with pytest.raises(SagaEventFailed):
        SagaRunner(dies, crm).catch_up()  # read the second ticket, planned, died before saving
    assert {t["subject_id"] for t in timers(crm)} == {first}

    restarted = SagaRunner(SlaEscalationSaga(RULES, second_crm.config.calendar), second_crm)
    assert restarted.catch_up() == 1
    assert len(pending(crm)) == 8  # four per ticket, none twice
    clock.advance(hours=4, minutes=1)  # 13:01: both first responses are late
    assert restarted.fire_due_timers() == 4
    assert restarted.fire_due_timers() == 0

    assert per_ticket(crm, TicketSlaBreached) == {first: 1, second: 1}
    assert per_ticket(crm, TicketEscalated) == {first: 1, second: 1}
    assert per_ticket(crm, TaskCreated) == {first: 2, second: 2}
    for effect in of_kind(crm, TicketSlaBreached):
        opened = last_of(crm, effect.originator_id, TicketOpened)
        assert (effect.actor, effect.causation_id) == (ACTOR, opened.event_id)


def test_a_crash_while_deciding_a_breach_leaves_its_timer_to_fire_once_after_a_restart(
    crm: CRM, clock: FixedClock, saga: SlaEscalationSaga, second_crm: CRM
) -> None:
    first, second = billing_ticket(crm, "alice"), billing_ticket(crm, "bob")
    SagaRunner(saga, crm).catch_up()
    clock.advance(hours=4, minutes=1)

    def second_breach(timer: Timer) -> bool:
        return timer.subject_id == second and timer.kind == "first_response:due"

    crashed = SagaRunner(crashing(saga, second_breach, "fire"), crm)
    assert crashed.fire_due_timers() == 3  # the breach of the second ticket died unsaved
    assert crashed.failed_timers == 1
    assert per_ticket(crm, TicketSlaBreached) == {first: 1}
    assert "first_response:due" in pending(crm)

    restarted = SagaRunner(SlaEscalationSaga(RULES, second_crm.config.calendar), second_crm)
    assert restarted.fire_due_timers() == 1
    assert restarted.fire_due_timers() == 0

    assert per_ticket(crm, TicketSlaBreached) == {first: 1, second: 1}
    assert per_ticket(crm, TicketEscalated) == {first: 1, second: 1}
    assert per_ticket(crm, TaskCreated) == {first: 2, second: 2}
    assert per_ticket(crm, TicketSlaAtRisk) == {first: 1, second: 1}


def test_running_again_from_position_zero_fires_nothing_again(
    crm: CRM, clock: FixedClock, sla: SagaRunner
) -> None:
    billing_ticket(crm)
    sla.catch_up()
    clock.advance(hours=5)
    sla.fire_due_timers()
    before = head(crm)
    rewind(sla)

    sla.catch_up()
    assert sla.fire_due_timers() == 0

    assert head(crm) == before
    assert pending(crm) == ["resolution:warning", "resolution:due"]


def test_the_supervisor_fires_timers_as_the_clock_passes_them(
    crm: CRM, clock: FixedClock, saga: SlaEscalationSaga, database_url: str
) -> None:
    billing_ticket(crm)
    with SagaSupervisor(crm, database_url, [saga]):
        wait_for(lambda: pending(crm) != [])
        clock.advance(hours=5)
        wait_for(lambda: len(of_kind(crm, TaskCreated)) == 2)
    assert len(of_kind(crm, TicketSlaBreached)) == 1


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    stop = threading.Event()
    for _ in range(int(seconds * 20)):
        if condition():
            return
        stop.wait(0.05)
    raise AssertionError("condition not met in time")


def test_a_timer_that_changed_nothing_is_re_armed_when_its_deadline_comes_back(
    crm: CRM, clock: FixedClock
) -> None:
    sla = SagaRunner(SlaEscalationSaga(SlaEscalationRules(), crm.config.calendar), crm)
    ticket = crm.open_ticket(
        customer_id=customer(crm), channel="phone", subject="Outage", priority="P1"
    ).id
    sla.catch_up()  # the P1 timers
    crm.change_ticket_priority(ticket, "P3")
    clock.advance(hours=1, minutes=1)
    sla.fire_due_timers()  # the P1 timers fire before the saga has seen the change: no effect
    sla.catch_up()
    crm.change_ticket_priority(ticket, "P1")  # back to P1: the first deadline returns
    sla.catch_up()
    clock.advance(minutes=5)

    sla.fire_due_timers()

    assert len(of_kind(crm, TicketSlaBreached)) == 1


def test_a_timer_that_keeps_failing_is_retried_with_backoff_not_in_a_loop(
    crm: CRM, clock: FixedClock, database_url: str
) -> None:
    attempts: list[float] = []

    class Failing(SlaEscalationSaga):
        def fire(self, timer: Any, records: Any) -> Any:
            attempts.append(time.monotonic())
            raise RuntimeError("the policy fails")

    saga = Failing(SlaEscalationRules(), crm.config.calendar)
    crm.open_ticket(customer_id=customer(crm), channel="phone", subject="Outage", priority="P2")
    clock.advance(hours=5)

    with SagaSupervisor(crm, database_url, [saga]):
        time.sleep(3)

    assert 1 <= len(attempts) < 20
