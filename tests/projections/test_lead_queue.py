"""Lead queue: given events, expected rows; ordering, pagination, speed-to-lead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from domain.application import CRM
from domain.shared import DomainError, FixedClock
from projections.lead_queue import InvalidCursor, LeadQueueProjection, LeadQueueView
from projections.readmodel import Row
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero
from tests.projections.rebuilds import rows_of as table_rows
from tests.projections.scripts import random_scripts


@pytest.fixture
def queue(read_model: Any) -> tuple[LeadQueueView, Any]:
    view, catch_up = read_model(LeadQueueView, LeadQueueProjection)
    return view, catch_up


def capture(crm: CRM, name: str, **fields: Any) -> Any:
    return crm.capture_lead(
        channel=fields.pop("channel", "web_form"),
        name=name,
        region="east",
        email=f"{name.lower()}@example.com",
        **fields,
    ).id


def test_a_captured_lead_appears_open_unassigned_and_unscored(crm: CRM, queue: Any) -> None:
    view, catch_up = queue
    lead = capture(crm, "Li", company="Li Trading", campaign="expo")
    catch_up()

    row = view.get(lead)

    assert row is not None
    assert (row["status"], row["owner"], row["score"]) == ("open", None, None)
    assert (row["company"], row["campaign"], row["channel"]) == ("Li Trading", "expo", "web_form")


def test_status_owner_and_score_follow_the_leads_events(crm: CRM, queue: Any) -> None:
    view, catch_up = queue
    lead = capture(crm, "Li")
    crm.score_lead(lead, 80, ["campaign"])
    crm.assign_lead(lead, "user:alice")
    crm.disqualify_lead(lead, "no budget")
    crm.reopen_lead(lead)
    crm.qualify_lead(lead)
    customer = crm.register_customer(kind="person", name="Li", region="east", owner="user:a").id
    crm.convert_lead(lead, customer)
    catch_up()

    row = view.get(lead)

    assert row is not None
    assert (row["status"], row["owner"], row["score"]) == ("converted", "user:alice", 80)
    assert row["converted_customer_id"] == customer


def test_the_queue_puts_unassigned_first_then_highest_score_then_oldest(
    crm: CRM, queue: Any, clock: FixedClock
) -> None:
    view, catch_up = queue
    old = capture(crm, "Old")
    clock.advance(minutes=5)
    hot = capture(crm, "Hot")
    crm.score_lead(hot, 90)
    clock.advance(minutes=5)
    mine = capture(crm, "Mine")
    crm.score_lead(mine, 99)
    crm.assign_lead(mine, "user:alice")
    clock.advance(minutes=5)
    new = capture(crm, "New")
    catch_up()

    rows, cursor = view.queue()

    assert [r["lead_id"] for r in rows] == [hot, old, new, mine]
    assert cursor is None


def test_the_queue_pages_with_an_opaque_cursor(crm: CRM, queue: Any, clock: FixedClock) -> None:
    view, catch_up = queue
    leads = []
    for n in range(5):
        leads.append(capture(crm, f"Lead{n}"))
        clock.advance(minutes=1)
    catch_up()

    first, cursor = view.queue(limit=2)
    second, cursor2 = view.queue(limit=2, cursor=cursor)
    third, cursor3 = view.queue(limit=2, cursor=cursor2)

    assert [r["lead_id"] for r in first + second + third] == leads
    assert cursor3 is None
    with pytest.raises(InvalidCursor):
        view.queue(cursor="not-a-cursor")


def test_a_queue_page_holds_at_least_one_lead(crm: CRM, queue: Any) -> None:
    view, catch_up = queue
    catch_up()

    with pytest.raises(ValueError):
        view.queue(limit=0)


def test_the_queue_filters_by_status_and_owner(crm: CRM, queue: Any) -> None:
    view, catch_up = queue
    a, b = capture(crm, "A"), capture(crm, "B")
    crm.assign_lead(a, "user:alice")
    crm.qualify_lead(b)
    catch_up()

    assert [r["lead_id"] for r in view.queue(owner="user:alice")[0]] == [a]
    assert [r["lead_id"] for r in view.queue(status="qualified")[0]] == [b]


def test_speed_to_lead_measures_capture_to_first_activity_per_owner(
    crm: CRM, queue: Any, clock: FixedClock
) -> None:
    view, catch_up = queue
    fast, slow = capture(crm, "Fast"), capture(crm, "Slow")
    crm.assign_lead(fast, "user:alice")
    crm.assign_lead(slow, "user:bob")
    clock.advance(minutes=10)
    crm.log_lead_activity(fast, kind="call", summary="first call")
    clock.advance(hours=2)
    crm.log_lead_activity(slow, kind="call", summary="first call")
    crm.log_lead_activity(fast, kind="email", summary="follow-up")
    catch_up()

    rows = {r["key"]: r for r in view.speed_to_lead("owner")}

    assert rows["user:alice"]["avg_seconds"] == pytest.approx(600)
    assert rows["user:bob"]["avg_seconds"] == pytest.approx(timedelta(minutes=130).total_seconds())
    assert view.speed_to_lead("channel")[0]["contacted"] == 2


def test_events_the_projection_does_not_handle_still_advance_its_position(
    crm: CRM, queue: Any
) -> None:
    view, catch_up = queue
    capture(crm, "Li")
    crm.register_customer(kind="person", name="Wang", region="east", owner="user:a")

    position = catch_up()

    assert position == crm.recorder.max_notification_id()
    assert view.position() == position


def test_read_your_writes_waits_for_the_position_of_a_write(crm: CRM, queue: Any) -> None:
    view, catch_up = queue
    result = crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
    catch_up()

    assert view.get(result.id, min_position=result.position) is not None


LEAD_COMMANDS = random_scripts(
    [
        "capture",
        "score",
        "assign",
        "activity",
        "qualify",
        "disqualify",
        "reopen",
        "convert",
        "catch_up",
        "advance",
        "erase",
        "erase_customer",
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
@given(commands=LEAD_COMMANDS)
def test_live_rows_equal_a_rebuild_from_scratch(
    crm: CRM, queue: Any, clock: FixedClock, commands: list[tuple[str, int, int]]
) -> None:
    view, catch_up = queue
    leads: list[Any] = []
    customer = crm.register_customer(kind="person", name="C", region="east", owner="u").id
    for command, pick, number in commands:
        lead = leads[pick % len(leads)] if leads else None
        try:
            if command == "capture" or lead is None:
                leads.append(capture(crm, f"Lead{len(leads)}x{number}"))
            elif command == "score":
                crm.score_lead(lead, number)
            elif command == "assign":
                crm.assign_lead(lead, f"user:{number % 3}")
            elif command == "activity":
                crm.log_lead_activity(lead, kind="call", summary="call")
            elif command == "qualify":
                crm.qualify_lead(lead)
            elif command == "disqualify":
                crm.disqualify_lead(lead, "no budget")
            elif command == "reopen":
                crm.reopen_lead(lead)
            elif command == "convert":
                crm.convert_lead(lead, customer)
            elif command == "erase":
                crm.erase_lead(lead, reason="request")
            elif command == "erase_customer":  # naming the lead: its key goes too
                crm.erase_customer(customer, reason="request", records=[lead])
            elif command == "catch_up":
                catch_up()
            else:
                clock.advance(minutes=number)
        except DomainError:
            pass  # refused commands record nothing; the read model must agree
    catch_up()

    with rebuilt_from_zero(crm, view, LeadQueueProjection) as rebuilt:
        assert rows_of(rebuilt) == rows_of(view)


def rows_of(view: LeadQueueView) -> list[Row]:
    return table_rows(view, "leads")
