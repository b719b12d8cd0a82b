"""SLA board: given ticket events, expected rows; state at query time; compliance; rebuilds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.application import CRM
from domain.shared import DomainError, FixedClock
from domain.sla import DEFAULT_CALENDAR, DEFAULT_POLICY
from projections.readmodel import Row
from projections.sla_board import SlaBoardProjection, SlaBoardView
from tests.domain.scenario import MONDAY_9AM
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero, rows_of

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def sla_board(read_model: Any) -> tuple[SlaBoardView, Any]:
    view, catch_up = read_model(SlaBoardView, SlaBoardProjection)
    return view, catch_up


def customer_of(crm: CRM) -> UUID:
    return crm.register_customer(kind="person", name="Li", region="east", owner="user:a").id


def open_ticket(crm: CRM, customer: UUID, priority: str = "P3", **fields: Any) -> UUID:
    return crm.open_ticket(
        customer_id=customer, channel="email", subject="It broke", priority=priority, **fields
    ).id


def board(view: SlaBoardView, now: datetime, **filters: Any) -> list[Row]:
    return view.board(now, DEFAULT_CALENDAR, DEFAULT_POLICY, **filters)


def ids(rows: list[Row]) -> list[UUID]:
    return [row["ticket_id"] for row in rows]


# --- the board -----------------------------------------------------------------------------------


def test_an_opened_ticket_is_on_the_board_with_its_due_times(crm: CRM, sla_board: Any) -> None:
    view, catch_up = sla_board
    ticket = open_ticket(crm, customer_of(crm), "P1", category="billing")
    catch_up()

    [row] = board(view, MONDAY_9AM)

    assert row["ticket_id"] == ticket
    assert (row["priority"], row["status"], row["category"]) == ("P1", "open", "billing")
    assert (row["team"], row["agent"], row["paused"], row["paused_at"]) == (None, None, False, None)
    assert row["first_response_due"] == MONDAY_9AM + HOUR
    assert row["resolution_due"] == MONDAY_9AM + 4 * HOUR
    assert (row["sla"], row["remaining"], row["target"]) == ("first_response", HOUR, HOUR)
    assert row["state"] == "on_track"


def test_the_board_state_flips_from_on_track_to_at_risk_to_breached_as_the_clock_advances(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    open_ticket(crm, customer_of(crm), "P1")
    catch_up()
    position = view.position()

    states = []
    for step in (10, 40, 20):  # 09:10, 09:50, 10:10 against a first response due 10:00
        [row] = board(view, clock.advance(minutes=step))
        states.append((row["state"], row["remaining"]))

    assert states == [
        ("on_track", 50 * MINUTE),
        ("at_risk", 10 * MINUTE),
        ("breached", timedelta(0)),
    ]
    assert catch_up() == position  # no event happened: the state comes from `now` alone


def test_a_ticket_waiting_on_the_customer_keeps_its_remaining_time_frozen_until_resumed(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    ticket = open_ticket(crm, customer_of(crm), "P1")
    clock.advance(minutes=20)
    crm.wait_on_customer(ticket)
    clock.advance(hours=2)
    catch_up()

    [paused] = board(view, clock.now())

    assert (paused["status"], paused["paused"]) == ("waiting_on_customer", True)
    assert paused["paused_at"] == MONDAY_9AM + 20 * MINUTE
    assert (paused["remaining"], paused["state"]) == (40 * MINUTE, "on_track")
    assert board(view, clock.now() + 24 * HOUR)[0]["remaining"] == 40 * MINUTE

    crm.resume_ticket(ticket)  # at 11:20, after 2 business hours waiting
    clock.advance(minutes=10)
    catch_up()
    [resumed] = board(view, clock.now())

    assert (resumed["status"], resumed["paused"], resumed["paused_at"]) == ("open", False, None)
    assert resumed["first_response_due"] == MONDAY_9AM + 3 * HOUR
    assert resumed["resolution_due"] == MONDAY_9AM + 6 * HOUR
    assert (resumed["remaining"], resumed["state"]) == (30 * MINUTE, "on_track")


def test_a_priority_change_moves_the_due_times_and_the_target(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    ticket = open_ticket(crm, customer_of(crm), "P3")
    clock.advance(minutes=30)
    crm.change_ticket_priority(ticket, "P1")
    catch_up()

    [row] = board(view, clock.now())

    assert row["priority"] == "P1"
    assert (row["first_response_due"], row["resolution_due"]) == (
        MONDAY_9AM + HOUR,
        MONDAY_9AM + 4 * HOUR,
    )
    assert (row["remaining"], row["target"], row["state"]) == (30 * MINUTE, HOUR, "on_track")


def test_after_the_first_response_the_resolution_due_time_counts(crm: CRM, sla_board: Any) -> None:
    view, catch_up = sla_board
    customer = customer_of(crm)
    p2 = open_ticket(crm, customer, "P2")  # first response due 13:00, resolution 18:00
    p3 = open_ticket(crm, customer, "P3")  # first response due 17:00
    catch_up()
    assert ids(board(view, MONDAY_9AM)) == [p2, p3]

    crm.record_ticket_first_response(p2)
    catch_up()
    rows = board(view, MONDAY_9AM)

    assert ids(rows) == [p3, p2]
    assert (rows[1]["sla"], rows[1]["remaining"], rows[1]["target"]) == (
        "resolution",
        9 * HOUR,
        9 * HOUR,
    )


def test_resolved_and_closed_tickets_leave_the_board_but_stay_in_the_table(
    crm: CRM, sla_board: Any
) -> None:
    view, catch_up = sla_board
    customer = customer_of(crm)
    resolved, closed, still_open = (open_ticket(crm, customer) for _ in range(3))
    crm.resolve_ticket(resolved, "fixed")
    crm.resolve_ticket(closed, "fixed")
    crm.close_ticket(closed)
    catch_up()

    assert ids(board(view, MONDAY_9AM)) == [still_open]
    kept = [view.ticket(resolved), view.ticket(closed)]
    assert [(row or {}).get("status") for row in kept] == ["resolved", "closed"]
    assert [(row or {}).get("resolution_met") for row in kept] == [True, True]


def test_a_ticket_reopened_within_the_window_is_back_on_the_board(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    ticket = open_ticket(crm, customer_of(crm), "P1")
    crm.resolve_ticket(ticket, "fixed")
    clock.advance(hours=1)
    crm.reopen_ticket(ticket)
    catch_up()

    [row] = board(view, clock.now())

    assert (row["ticket_id"], row["status"], row["resolved_at"]) == (ticket, "open", None)
    assert row["first_response_due"] == MONDAY_9AM + 2 * HOUR  # pushed back by the hour resolved
    assert row["resolution_due"] == MONDAY_9AM + 5 * HOUR


def test_the_board_filters_by_team_assignee_priority_and_state(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    customer = customer_of(crm)
    a, b, c = (open_ticket(crm, customer, p) for p in ("P1", "P2", "P3"))
    crm.assign_ticket(a, "user:alice", "billing")
    crm.assign_ticket(b, "user:bob", "billing")
    catch_up()
    now = clock.advance(minutes=55)

    assert ids(board(view, now, team="billing")) == [a, b]
    assert ids(board(view, now, agent="user:bob")) == [b]
    assert ids(board(view, now, priority="P3")) == [c]
    assert ids(board(view, now, state="at_risk")) == [a]
    assert ids(board(view, now, state="on_track")) == [b, c]
    assert ids(board(view, now, state="on_track", limit=1)) == [b]
    assert ids(board(view, now + HOUR, state="breached", team="billing")) == [a]
    with pytest.raises(ValueError):
        board(view, now, state="late")


def test_a_state_filter_reads_page_after_page_until_it_has_enough_rows(
    crm: CRM, sla_board: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    view, catch_up = sla_board
    customer = customer_of(crm)
    urgent = [open_ticket(crm, customer, "P1") for _ in range(3)]
    calm = [open_ticket(crm, customer, "P4") for _ in range(2)]
    catch_up()
    monkeypatch.setattr("projections.sla_board.view.STATE_FILTER_PAGE", 1)
    now = clock.advance(minutes=50)

    # pages of two: [urgent, urgent], [urgent, calm], [calm]
    assert ids(board(view, now, state="on_track", limit=2)) == sorted(calm)
    assert ids(board(view, now, state="at_risk", limit=1)) == sorted(urgent)[:1]
    assert board(view, now, limit=0) == []


# --- compliance ----------------------------------------------------------------------------------


def test_compliance_counts_met_and_breached_per_team_and_priority(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    customer = customer_of(crm)
    fast, slow = open_ticket(crm, customer, "P1"), open_ticket(crm, customer, "P1")
    crm.assign_ticket(fast, "user:alice", "billing")
    crm.assign_ticket(slow, "user:bob", "billing")
    crm.record_ticket_first_response(fast)
    crm.resolve_ticket(fast, "fixed")
    clock.advance(hours=2)  # 11:00: slow's first response (due 10:00) is late
    crm.record_ticket_first_response(slow)
    crm.resolve_ticket(slow, "fixed")
    network = open_ticket(crm, customer, "P2")  # resolution due Tuesday 11:00
    crm.assign_ticket(network, "user:chen", "network")
    crm.record_ticket_first_response(network)
    clock.advance(hours=25)
    crm.resolve_ticket(network, "fixed")
    catch_up()

    teams = {row["key"]: row for row in view.compliance("team")}
    priorities = {row["key"]: row for row in view.compliance("priority")}

    assert counts(teams["billing"]) == (1, 1, 50.0, 2, 0, 100.0)
    assert counts(teams["network"]) == (1, 0, 100.0, 0, 1, 0.0)
    assert counts(priorities["P1"]) == (1, 1, 50.0, 2, 0, 100.0)
    assert counts(priorities["P2"]) == (1, 0, 100.0, 0, 1, 0.0)
    with pytest.raises(ValueError):
        view.compliance("agent")


def test_compliance_per_month_uses_the_month_of_the_outcome_in_the_desks_time_zone(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    customer = customer_of(crm)
    march, april = open_ticket(crm, customer, "P4"), open_ticket(crm, customer, "P4")
    crm.record_ticket_first_response(march)
    crm.record_ticket_first_response(april)
    crm.resolve_ticket(march, "fixed")
    clock.at = datetime(2026, 3, 31, 17, tzinfo=UTC)  # 1 April 01:00 in Shanghai
    crm.resolve_ticket(april, "fixed")
    catch_up()

    shanghai = {row["key"]: counts(row) for row in view.compliance("month")}
    utc = {row["key"]: counts(row) for row in view.compliance("month", time_zone="UTC")}
    april_only = view.compliance("month", since=datetime(2026, 3, 31, 16, tzinfo=UTC))

    assert shanghai == {
        "2026-03": (2, 0, 100.0, 1, 0, 100.0),
        "2026-04": (0, 0, None, 0, 1, 0.0),
    }
    assert utc == {"2026-03": (2, 0, 100.0, 1, 1, 50.0)}
    assert [row["key"] for row in april_only] == ["2026-04"]


def test_a_reopened_ticket_counts_only_its_latest_resolution(
    crm: CRM, sla_board: Any, clock: FixedClock
) -> None:
    view, catch_up = sla_board
    ticket = open_ticket(crm, customer_of(crm), "P1")
    crm.resolve_ticket(ticket, "fixed")  # in time
    clock.advance(hours=1)
    crm.reopen_ticket(ticket)  # resolution now due 14:00
    catch_up()
    assert view.compliance("priority") == []  # no first response yet, no resolution any more

    clock.advance(hours=5)
    crm.resolve_ticket(ticket, "fixed again")  # 15:00: late
    catch_up()

    assert counts(view.compliance("priority")[0])[3:] == (0, 1, 0.0)


def counts(row: Row) -> tuple[Any, ...]:
    return tuple(
        row[f"{measure}_{field}"]
        for measure in ("first_response", "resolution")
        for field in ("met", "breached", "pct")
    )


# --- position and rebuilds -----------------------------------------------------------------------


def test_events_the_projection_does_not_handle_still_advance_its_position(
    crm: CRM, sla_board: Any
) -> None:
    view, catch_up = sla_board
    ticket = open_ticket(crm, customer_of(crm))
    crm.resolve_ticket(ticket, "fixed")
    crm.rate_ticket(ticket, 5, "great")

    position = catch_up()

    assert position == crm.recorder.max_notification_id()
    assert view.position() == position


def test_read_your_writes_waits_for_the_position_of_a_write(crm: CRM, sla_board: Any) -> None:
    view, catch_up = sla_board
    result = crm.open_ticket(customer_id=customer_of(crm), channel="web", subject="Help")
    catch_up()

    assert view.ticket(result.id, min_position=result.position) is not None


steps = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(("P1", "P2", "P3", "P4"))),
    st.tuples(st.just("assign"), st.integers(0, 9), st.sampled_from(("alice", "bob"))),
    st.tuples(
        st.sampled_from(("respond", "wait", "resume", "resolve", "close", "reopen", "rate")),
        st.integers(0, 9),
    ),
    st.tuples(st.just("escalate"), st.integers(0, 9), st.integers(1, 3)),
    st.tuples(st.just("priority"), st.integers(0, 9), st.sampled_from(("P1", "P2", "P3", "P4"))),
    st.tuples(st.just("advance"), st.sampled_from((5, 45, 90, 60 * 20, 60 * 24 * 3))),
)


def run(crm: CRM, clock: FixedClock, customer: UUID, tickets: list[UUID], step: Any) -> None:
    """Carry out one random step; commands the ticket refuses change nothing."""
    op, *args = step
    if op == "open":
        tickets.append(open_ticket(crm, customer, args[0]))
        return
    if op == "advance":
        clock.advance(minutes=args[0])
        return
    ticket = tickets[args[0] % len(tickets)]
    commands = {
        "assign": lambda: crm.assign_ticket(ticket, f"user:{args[1]}", f"team-{args[1]}"),
        "respond": lambda: crm.record_ticket_first_response(ticket),
        "wait": lambda: crm.wait_on_customer(ticket),
        "resume": lambda: crm.resume_ticket(ticket),
        "resolve": lambda: crm.resolve_ticket(ticket, "fixed"),
        "close": lambda: crm.close_ticket(ticket),
        "reopen": lambda: crm.reopen_ticket(ticket),
        "rate": lambda: crm.rate_ticket(ticket, 4),
        "escalate": lambda: crm.escalate_ticket(ticket, args[1], "customer is upset"),
        "priority": lambda: crm.change_ticket_priority(ticket, args[1]),
    }
    try:
        commands[op]()
    except DomainError:
        pass


@REBUILD_EXAMPLES
@given(first=st.sampled_from(("P1", "P2", "P3", "P4")), rest=st.lists(steps, max_size=25))
def test_the_live_rows_equal_the_rows_of_a_rebuild_from_scratch(
    crm: CRM, sla_board: Any, clock: FixedClock, first: str, rest: list[Any]
) -> None:
    view, live_catch_up = sla_board
    customer = customer_of(crm)
    tickets = [open_ticket(crm, customer, first)]
    for n, step in enumerate(rest):
        run(crm, clock, customer, tickets, step)
        if n % 4 == 3:
            live_catch_up()
    live_catch_up()

    with rebuilt_from_zero(crm, view, SlaBoardProjection) as rebuilt:
        for table in SlaBoardView.tables:
            assert rows_of(rebuilt, table) == rows_of(view, table)
