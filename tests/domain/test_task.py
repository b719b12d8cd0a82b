"""Task rules: given events, when a command runs, then these events (or this error)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.application import CRM
from domain.shared import DomainError, FixedClock, InvalidValue, NotFound, command_context
from domain.task import (
    Task,
    TaskAlreadyCancelled,
    TaskAlreadyCompleted,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskReassigned,
)
from infra.persistence import event_store_env
from infra.settings import Settings
from tests.domain.scenario import ACTOR, MONDAY_9AM, given, history, payload, through_store, when

TASK_ID = UUID("00000000-0000-4000-8000-0000000000f1")
LEAD_ID = UUID("00000000-0000-4000-8000-00000000001e")
CAUSE_ID = UUID("00000000-0000-4000-8000-0000000000ca")
DUE = MONDAY_9AM + timedelta(hours=2)


def create(**changes: Any) -> Task:
    fields: dict[str, Any] = {
        "task_id": TASK_ID,
        "title": "First contact",
        "team": "east-sales",
        "assignee": "alice",
        "related_kind": "lead",
        "related_id": LEAD_ID,
        "due_at": DUE,
    }
    return Task.create(**(fields | changes))


def a_task(*commands: Callable[[Task], Any]) -> Task:
    task: Task = given(*history(create, *commands))
    return task


def rejects(task: Task, command: Callable[[Task], Any], error: type[DomainError]) -> None:
    before = task.state()
    with pytest.raises(error):
        when(task, command)
    assert task.state() == before
    assert task.pending_events == []


# --- creation ----------------------------------------------------------------------------------


def test_creating_a_task_records_who_what_about_which_record_and_by_when() -> None:
    [created] = history(lambda: create(source_saga="lead_routing", cause_id=CAUSE_ID))
    assert isinstance(created, TaskCreated)
    assert payload(created) == {
        "title": "First contact",
        "assignee": "alice",
        "team": "east-sales",
        "related_kind": "lead",
        "related_id": LEAD_ID,
        "due_at": DUE,
        "priority": "normal",
        "source_saga": "lead_routing",
        "cause_id": CAUSE_ID,
    }
    assert created.actor == ACTOR


def test_a_task_without_an_assignee_waits_in_its_team_queue() -> None:
    queued: Task = given(*history(lambda: create(assignee="  ")))
    assert (queued.assignee, queued.team, queued.status) == (None, "east-sales", "open")


@pytest.mark.parametrize(
    "changes",
    [
        {"title": " "},
        {"team": ""},
        {"related_kind": "invoice"},
        {"priority": "critical"},
        {"due_at": datetime(2026, 3, 2, 11, 0)},
    ],
)
def test_creating_a_task_with_a_bad_value_is_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        create(**changes)


def test_the_stored_history_rebuilds_the_same_task() -> None:
    events = history(create, lambda t: t.reassign("bob"), lambda t: t.complete("called"))
    assert given(*through_store(events)).state() == given(*events).state()


# --- reassignment ------------------------------------------------------------------------------


def test_reassigning_records_the_new_assignee_and_keeps_the_team() -> None:
    task = a_task()
    events = when(task, lambda t: t.reassign("bob"))
    assert [type(e) for e in events] == [TaskReassigned]
    assert payload(events[0]) == {"assignee": "bob", "team": "east-sales"}


def test_reassigning_to_another_team_queue_drops_the_assignee() -> None:
    task = a_task()
    when(task, lambda t: t.reassign(None, "north-sales"))
    assert (task.assignee, task.team) == (None, "north-sales")


def test_reassigning_to_the_same_assignee_and_team_records_nothing() -> None:
    assert when(a_task(), lambda t: t.reassign("alice", "east-sales")) == []


def test_a_closed_task_cannot_be_reassigned() -> None:
    rejects(a_task(lambda t: t.complete()), lambda t: t.reassign("bob"), TaskAlreadyCompleted)
    rejects(a_task(lambda t: t.cancel("dup")), lambda t: t.reassign("bob"), TaskAlreadyCancelled)


# --- completion and cancellation ---------------------------------------------------------------


def test_completing_records_the_note_and_closes_the_task() -> None:
    task = a_task()
    events = when(task, lambda t: t.complete("called, interested"))
    assert [type(e) for e in events] == [TaskCompleted]
    assert (task.status, task.closed_at) == ("completed", MONDAY_9AM)


def test_completing_a_completed_task_again_records_nothing() -> None:
    assert when(a_task(lambda t: t.complete()), lambda t: t.complete()) == []


def test_completing_a_cancelled_task_is_rejected() -> None:
    rejects(a_task(lambda t: t.cancel("lead lost")), lambda t: t.complete(), TaskAlreadyCancelled)


def test_cancelling_records_the_reason() -> None:
    task = a_task()
    events = when(task, lambda t: t.cancel("lead converted elsewhere"))
    assert [type(e) for e in events] == [TaskCancelled]
    assert payload(events[0]) == {"reason": "lead converted elsewhere"}


def test_cancelling_twice_records_nothing_and_cancelling_a_completed_task_is_rejected() -> None:
    assert when(a_task(lambda t: t.cancel("dup")), lambda t: t.cancel("again")) == []
    rejects(a_task(lambda t: t.complete()), lambda t: t.cancel("too late"), TaskAlreadyCompleted)


def test_cancelling_without_a_reason_is_rejected() -> None:
    rejects(a_task(), lambda t: t.cancel(" "), InvalidValue)


# --- overdue is asked, never recorded ----------------------------------------------------------


def test_an_open_task_is_overdue_only_after_its_due_time() -> None:
    task = a_task()
    assert not task.is_overdue(DUE)
    assert task.is_overdue(DUE + timedelta(seconds=1))


def test_a_closed_task_is_never_overdue() -> None:
    late = DUE + timedelta(days=3)
    assert not a_task(lambda t: t.complete()).is_overdue(late)
    assert not a_task(lambda t: t.cancel("dup")).is_overdue(late)


def test_task_errors_carry_the_task_id() -> None:
    with pytest.raises(TaskAlreadyCompleted) as raised:
        when(a_task(lambda t: t.complete()), lambda t: t.cancel("x"))
    assert raised.value.context == {"task_id": str(TASK_ID)}
    assert raised.value.code() == "task-already-completed"


# --- use cases on the application (in memory) --------------------------------------------------


@pytest.fixture
def crm() -> CRM:
    settings = Settings(persistence="memory", customer_snapshot_interval=0)
    return CRM(env=event_store_env(settings, None), clock=FixedClock(MONDAY_9AM))


def test_a_task_about_a_lead_can_be_created_reassigned_and_completed(crm: CRM) -> None:
    lead = crm.capture_lead(channel="phone", name="Li Lei", region="east", phone="13800138000")
    with command_context(actor="user:manager"):
        created = crm.create_task(
            title="Call back", team="east", related_kind="lead", related_id=lead.id, due_at=DUE
        )
    crm.reassign_task(created.id, "bob")
    done = crm.complete_task(created.id, "reached")

    task = crm.commands.load(Task, created.id)
    assert (task.assignee, task.status, done.version) == ("bob", "completed", 3)
    assert crm.history(created.id)[0].actor == "user:manager"


def test_a_task_about_a_record_that_does_not_exist_is_rejected(crm: CRM) -> None:
    with pytest.raises(NotFound):
        crm.create_task(
            title="Call", team="sales", related_kind="lead", related_id=LEAD_ID, due_at=DUE
        )


def test_cancelling_a_completed_task_through_the_application_is_rejected(crm: CRM) -> None:
    lead = crm.capture_lead(channel="phone", name="Li Lei", region="east", phone="13800138000")
    created = crm.create_task(
        title="Call", team="sales", related_kind="lead", related_id=lead.id, due_at=DUE
    )
    crm.complete_task(created.id)
    with pytest.raises(TaskAlreadyCompleted):
        crm.cancel_task(created.id, "too late")
