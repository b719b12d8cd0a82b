"""Task list: given task events, expected rows; filters, overdue, pagination, rebuilds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings

from domain.application import CRM
from domain.shared import DomainError, FixedClock
from projections.readmodel import Row
from projections.task_list import InvalidCursor, TaskListProjection, TaskListView, is_overdue
from projections.visibility import Visibility
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero
from tests.projections.rebuilds import rows_of as table_rows
from tests.projections.scripts import random_scripts


@pytest.fixture
def tasks(read_model: Any) -> tuple[TaskListView, Any]:
    view, catch_up = read_model(TaskListView, TaskListProjection)
    return view, catch_up


@pytest.fixture
def customer(crm: CRM) -> UUID:
    result = crm.register_customer(kind="person", name="Li", region="east", owner="alice")
    return result.id


def create(crm: CRM, clock: FixedClock, customer: UUID, *, hours: float = 2, **fields: Any) -> UUID:
    return crm.create_task(
        title=fields.pop("title", "Call back"),
        team=fields.pop("team", "east-sales"),
        related_kind="customer",
        related_id=customer,
        due_at=clock.now() + timedelta(hours=hours),
        **fields,
    ).id


def ids(rows: list[Row]) -> list[UUID]:
    return [row["task_id"] for row in rows]


def test_a_created_task_appears_open_with_everything_it_was_given(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    task = create(crm, clock, customer, assignee="alice", priority="high", title="Send offer")
    catch_up()

    row = view.task(task)

    assert row is not None
    assert (row["title"], row["assignee"], row["team"]) == ("Send offer", "alice", "east-sales")
    assert (row["related_kind"], row["related_id"]) == ("customer", customer)
    assert (row["priority"], row["status"]) == ("high", "open")
    assert row["due_at"] == clock.now() + timedelta(hours=2)
    assert row["created_at"] == row["updated_at"] == clock.now()
    assert (row["source_saga"], row["cause_id"], row["closed_at"]) == (None, None, None)


def test_reassigning_completing_and_cancelling_follow_the_tasks_events(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    done = create(crm, clock, customer, assignee="alice")
    dropped = create(crm, clock, customer)
    clock.advance(minutes=5)
    crm.reassign_task(done, "bob", "north-sales")
    clock.advance(minutes=5)
    crm.complete_task(done, "called")
    crm.cancel_task(dropped, "not needed")
    catch_up()

    row, other = view.task(done), view.task(dropped)

    assert row is not None and other is not None
    assert (row["assignee"], row["team"], row["status"]) == ("bob", "north-sales", "completed")
    assert row["closed_at"] == row["updated_at"] == clock.now()
    assert (other["status"], other["closed_at"]) == ("cancelled", clock.now())


def test_tasks_are_listed_soonest_due_first_and_page_with_an_opaque_cursor(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    late = create(crm, clock, customer, hours=5)
    soon = create(crm, clock, customer, hours=1)
    middle = [create(crm, clock, customer, hours=3) for _ in range(2)]
    catch_up()

    first, cursor = view.tasks(limit=2)
    second, cursor2 = view.tasks(limit=2, cursor=cursor)

    assert ids(first + second) == [soon, *sorted(middle), late]
    assert cursor2 is None
    with pytest.raises(InvalidCursor):
        view.tasks(cursor="not-a-cursor")
    with pytest.raises(ValueError):
        view.tasks(limit=0)


def test_tasks_filter_by_assignee_team_and_status(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    mine = create(crm, clock, customer, assignee="alice")
    theirs = create(crm, clock, customer, team="service", hours=3)
    crm.complete_task(theirs)
    catch_up()

    assert ids(view.tasks(assignee="alice")[0]) == [mine]
    assert ids(view.tasks(team="service")[0]) == [theirs]
    assert ids(view.tasks(status="completed")[0]) == [theirs]
    assert ids(view.tasks(status="open")[0]) == [mine]


def test_overdue_means_still_open_after_the_due_time_asked_at_query_time(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    due_soon = create(crm, clock, customer, hours=1)
    done = create(crm, clock, customer, hours=1)
    crm.complete_task(done)
    due_later = create(crm, clock, customer, hours=4)
    catch_up()
    now = clock.now()

    assert view.tasks(overdue_at=now)[0] == []
    assert ids(view.tasks(overdue_at=now + timedelta(hours=2))[0]) == [due_soon]
    assert ids(view.tasks(overdue_at=now + timedelta(hours=5))[0]) == [due_soon, due_later]
    row = view.task(due_soon)
    assert row is not None
    assert not is_overdue(row, now)
    assert is_overdue(row, now + timedelta(hours=2))
    closed = view.task(done)
    assert closed is not None and not is_overdue(closed, now + timedelta(hours=2))


def test_a_restricted_reader_sees_tasks_assigned_to_them_or_to_their_team(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    mine = create(crm, clock, customer, assignee="alice", team="north-sales", hours=1)
    teams = create(crm, clock, customer, assignee="bob", team="east-sales", hours=2)
    create(crm, clock, customer, assignee="carol", team="service", hours=3)
    catch_up()

    in_team = Visibility(assignee_or_team=("alice", "east-sales"))
    alone = Visibility(assignee_or_team=("alice", None))

    assert ids(view.tasks(visible=in_team)[0]) == [mine, teams]
    assert ids(view.tasks(visible=alone)[0]) == [mine]
    assert ids(view.tasks(visible=Visibility())[0]) == ids(view.tasks()[0])


def test_events_the_projection_does_not_handle_are_ignored_but_advance_its_position(
    crm: CRM, tasks: Any
) -> None:
    view, catch_up = tasks
    crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
    crm.register_customer(kind="person", name="Wang", region="east", owner="a")

    position = catch_up()

    assert position == crm.recorder.max_notification_id()
    assert view.position() == position
    assert view.tasks() == ([], None)


def test_read_your_writes_waits_for_the_position_of_a_write(
    crm: CRM, tasks: Any, clock: FixedClock, customer: UUID
) -> None:
    view, catch_up = tasks
    result = crm.create_task(
        title="Call",
        team="east-sales",
        related_kind="customer",
        related_id=customer,
        due_at=clock.now() + timedelta(hours=1),
    )
    catch_up()

    assert view.task(result.id, min_position=result.position) is not None


TASK_COMMANDS = random_scripts(
    [
        "create",
        "reassign",
        "complete",
        "cancel",
        "catch_up",
        "advance",
        "erase_customer",
        "erase_lead",
    ],
    a=4,
    b=100,
    min_size=1,
    max_size=25,
)


@settings(
    REBUILD_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands=TASK_COMMANDS)
def test_live_rows_equal_a_rebuild_from_scratch(
    crm: CRM, tasks: Any, clock: FixedClock, commands: list[tuple[str, int, int]]
) -> None:
    view, catch_up = tasks
    made: list[UUID] = []
    customer = crm.register_customer(kind="person", name="C", region="east", owner="u").id
    lead = crm.capture_lead(channel="ads", name="L", region="east", email="l@x.com").id
    for command, pick, number in commands:
        task = made[pick % len(made)] if made else None
        try:
            if command == "create" or task is None:
                made.append(
                    create(
                        crm,
                        clock,
                        customer,
                        hours=number,
                        assignee=f"user{number % 3}" if number % 2 else None,
                        title=f"Call {number}",
                    )
                    if number % 3
                    else crm.create_task(  # about the lead: its erasure reaches the task
                        title=f"Lead call {number}",
                        team="east-sales",
                        related_kind="lead",
                        related_id=lead,
                        due_at=clock.now() + timedelta(hours=1),
                    ).id
                )
            elif command == "erase_customer":  # naming a task: its key goes as well
                crm.erase_customer(customer, reason="request", records=[task])
            elif command == "erase_lead":
                crm.erase_lead(lead, reason="request")
            elif command == "reassign":
                crm.reassign_task(task, f"user{number % 3}", f"team{number % 2}")
            elif command == "complete":
                crm.complete_task(task, "done")
            elif command == "cancel":
                crm.cancel_task(task, "not needed")
            elif command == "catch_up":
                catch_up()
            else:
                clock.advance(minutes=number)
        except DomainError:
            pass  # refused commands record nothing; the read model must agree
    catch_up()

    with rebuilt_from_zero(crm, view, TaskListProjection) as rebuilt:
        assert rows_of(rebuilt) == rows_of(view)


def rows_of(view: TaskListView) -> list[Row]:
    return table_rows(view, "tasks")
