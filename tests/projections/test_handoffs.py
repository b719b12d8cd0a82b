"""Handoffs: given events, one row per handoff; p50/p90 per kind, team and month; rebuilds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given

from domain.application import CRM
from domain.shared import FixedClock, command_context, event_id_for
from domain.ticket import Ticket
from infra.sagas import SagaRunner
from projections.customer_360 import Customer360Projection, Customer360View
from projections.handoffs import ROUTING_SAGA, HandoffsProjection, HandoffsView
from projections.readmodel import Row
from projections.visibility import Visibility
from sagas.lead_routing import LeadRoutingSaga
from sagas.routing import RoutingRules, SalesUser, Territory
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero, rows_of
from tests.projections.scripts import Command, Step, World, pick, play, random_scripts


@pytest.fixture
def handoffs(read_model: Any) -> tuple[HandoffsView, Callable[[], int]]:
    view, catch_up = read_model(HandoffsView, HandoffsProjection)
    return view, catch_up


def capture(crm: CRM, name: str = "Li", region: str = "east") -> UUID:
    return crm.capture_lead(
        channel="web_form", name=name, region=region, email=f"{name.lower()}@example.com"
    ).id


def customer(crm: CRM, region: str = "east", owner: str = "user:a") -> UUID:
    return crm.register_customer(kind="company", name="Acme", region=region, owner=owner).id


def win(crm: CRM, customer_id: UUID, owner: str = "user:alice") -> tuple[UUID, UUID]:
    """A won deal's id and the id of its win event."""
    deal = crm.open_opportunity(
        customer_id=customer_id,
        title="Deal",
        amount="1000",
        currency="CNY",
        expected_close=date(2026, 4, 15),
        owner=owner,
    ).id
    crm.move_opportunity_stage(deal, "negotiation")
    won = crm.win_opportunity(deal, amount="1000", currency="CNY", contract_reference="C-1")
    return deal, event_id_for(deal, won.version)


def onboarding_ticket(crm: CRM, customer_id: UUID, cause: UUID | None) -> UUID:
    """A ticket opened because of `cause` (as the deal-won saga opens one)."""
    with command_context(causation_id=cause):
        return crm.open_ticket(customer_id=customer_id, channel="email", subject="Onboarding").id


SLA_SAGA = "saga:sla_escalation"
ROUTING = RoutingRules(
    territories=(Territory(id="t-east", regions=("east", "r0"), team="east-sales"),),
    sales_users=(
        SalesUser(username="user:0", team="east-sales", capacity=2),
        SalesUser(username="user:1", team="east-sales"),
        SalesUser(username="user:alice", team="east-sales"),
        SalesUser(username="user:bob", team="north-sales", capacity=0),
    ),
    fallback_team="sales",
)


def breach(crm: CRM, ticket: UUID, measure: str, clock: FixedClock) -> None:
    """The ticket missed its `measure` due time and was escalated (as the SLA saga does it)."""

    def record(t: Ticket) -> None:
        t.record_sla_breach(measure, clock.now())
        t.escalate(min(t.escalation_level + 1, 3), f"{measure} missed")

    with command_context(actor=SLA_SAGA):
        crm.commands.change(Ticket, ticket, record, None)


def router(crm: CRM) -> SagaRunner:
    """The lead-routing saga: it names each routed lead's team on a first-contact task."""
    return SagaRunner(LeadRoutingSaga(ROUTING, crm.config.calendar), crm)


def by_kind(view: HandoffsView) -> dict[str, Row]:
    return {row["kind"]: row for row in view.rows()}


def seconds(row: Row) -> float:
    return float((row["effect_at"] - row["cause_at"]).total_seconds())


def test_a_captured_lead_waits_for_its_owner_then_for_its_first_activity(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    lead = capture(crm)
    catch_up()
    assert [(r["kind"], r["effect_at"], r["region"]) for r in view.rows()] == [
        ("capture_to_assignment", None, "east")
    ]

    clock.advance(minutes=5)
    crm.assign_lead(lead, "user:alice")
    clock.advance(minutes=20)
    crm.log_lead_activity(lead, kind="call", summary="called")
    clock.advance(minutes=30)
    crm.log_lead_activity(lead, kind="call", summary="called again")
    catch_up()

    rows = by_kind(view)
    assert set(rows) == {"capture_to_assignment", "assignment_to_first_activity"}
    assert seconds(rows["capture_to_assignment"]) == 300
    assert seconds(rows["assignment_to_first_activity"]) == 1200
    assert {r["owner"] for r in rows.values()} == {"user:alice"}
    assert {r["cause_id"] for r in rows.values()} == {lead}


def test_a_reassignment_before_the_first_activity_hands_the_wait_to_the_new_owner(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    lead = capture(crm)
    crm.assign_lead(lead, "user:alice")
    clock.advance(minutes=10)
    crm.assign_lead(lead, "user:bob")
    clock.advance(minutes=10)
    crm.log_lead_activity(lead, kind="call", summary="called")
    crm.assign_lead(lead, "user:carol")
    catch_up()

    rows = by_kind(view)
    assert rows["capture_to_assignment"]["owner"] == "user:alice"
    assert rows["assignment_to_first_activity"]["owner"] == "user:bob"
    assert seconds(rows["assignment_to_first_activity"]) == 1200
    with rebuilt_from_zero(crm, view, HandoffsProjection) as rebuilt:
        assert rows_of(rebuilt, "handoffs") == rows_of(view, "handoffs")


def test_a_qualified_lead_waits_for_its_conversion(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    lead = capture(crm)
    crm.assign_lead(lead, "user:alice")
    crm.qualify_lead(lead)
    clock.advance(hours=2)
    acme = customer(crm)
    crm.convert_lead(lead, acme)
    catch_up()

    row = by_kind(view)["qualification_to_conversion"]
    assert (row["owner"], row["region"], row["customer_id"]) == ("user:alice", "east", acme)
    assert row["effect_id"] == acme
    assert seconds(row) == 7200


def test_a_won_deal_waits_for_the_ticket_its_win_caused(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    acme = customer(crm)
    deal, win_event = win(crm, acme)
    clock.advance(minutes=3)
    onboarding_ticket(crm, acme, None)  # not caused by the win
    onboarding_ticket(crm, acme, event_id_for(deal, 1))  # caused by another event of the deal
    catch_up()
    assert view.rows()[0]["effect_at"] is None

    clock.advance(minutes=2)
    ticket = onboarding_ticket(crm, acme, win_event)
    catch_up()

    (row,) = view.rows()
    assert (row["kind"], row["cause_id"], row["cause_event_id"]) == (
        "win_to_onboarding",
        deal,
        win_event,
    )
    assert (row["owner"], row["customer_id"], row["effect_id"]) == ("user:alice", acme, ticket)
    assert seconds(row) == 300
    with rebuilt_from_zero(crm, view, HandoffsProjection) as rebuilt:
        assert rows_of(rebuilt, "handoffs") == rows_of(view, "handoffs")


def test_each_missed_sla_measure_waits_for_the_first_action_of_a_person_on_the_ticket(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    acme = customer(crm)
    ticket = onboarding_ticket(crm, acme, None)
    crm.assign_ticket(ticket, "agent:wang", "desk-east")
    breach(crm, ticket, "first_response", clock)  # the saga escalates at once: no answer yet
    clock.advance(minutes=15)
    breach(crm, ticket, "resolution", clock)
    clock.advance(minutes=5)
    crm.escalate_ticket(ticket, 3, "the system escalates")  # the system is no person either
    clock.advance(minutes=10)
    with command_context(actor="user:wang"):
        crm.record_ticket_first_response(ticket)
        clock.advance(minutes=15)
        crm.resolve_ticket(ticket, "fixed")
    catch_up()

    rows = {row["measure"]: row for row in view.rows(kind="breach_to_escalation")}
    assert {m: seconds(row) for m, row in rows.items()} == {
        "first_response": 1800,
        "resolution": 900,
    }
    assert {(r["owner"], r["team"], r["customer_id"]) for r in rows.values()} == {
        ("agent:wang", "desk-east", acme)
    }
    (stats,) = view.handoffs(kind="breach_to_escalation")
    assert (stats["team"], stats["count"], stats["p50_seconds"]) == ("desk-east", 2, 1350)
    with rebuilt_from_zero(crm, view, HandoffsProjection) as rebuilt:
        assert rows_of(rebuilt, "handoffs") == rows_of(view, "handoffs")


def test_lead_and_deal_handoffs_count_for_the_team_the_routing_saga_named_for_their_owner(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    routed = [capture(crm, f"L{n}") for n in range(3)]  # east: east-sales' round-robin
    capture(crm, "Wu", "west")  # no territory: the fallback queue, team sales
    bobs = capture(crm, "Ma", "west")
    crm.assign_lead(bobs, "user:bob")  # by hand, before the saga: it names bob's team
    router(crm).catch_up()
    clock.advance(minutes=5)
    crm.assign_lead(routed[0], "user:bob")  # reassigned before the first activity
    acme = customer(crm)
    win(crm, acme, owner="user:0")
    win(crm, acme, owner="user:zoe")  # an owner the routing saga never named a team for
    catch_up()

    def teams(kind: str) -> dict[str | None, int]:
        return {s["team"]: s["count"] for s in view.handoffs(kind=kind)}

    assert teams("capture_to_assignment") == {"east-sales": 3, "north-sales": 1, "sales": 1}
    assert teams("assignment_to_first_activity") == {
        "east-sales": 2,
        "north-sales": 2,
        "sales": 1,
    }
    assert teams("win_to_onboarding") == {"east-sales": 1, "user:zoe": 1}
    assert view.handoffs(team="north-sales", kind="capture_to_assignment")[0]["count"] == 1
    with rebuilt_from_zero(crm, view, HandoffsProjection) as rebuilt:
        for table in HandoffsView.tables:
            assert rows_of(rebuilt, table) == rows_of(view, table), table


def test_the_handoffs_learn_teams_from_the_lead_routing_sagas_tasks() -> None:
    assert ROUTING_SAGA == LeadRoutingSaga.name


def test_percentiles_count_completed_handoffs_per_kind_team_and_month(
    crm: CRM, handoffs: Any, clock: FixedClock
) -> None:
    view, catch_up = handoffs
    for minutes in (1, 2, 3, 4, 10):
        lead = capture(crm)
        clock.advance(minutes=minutes)
        crm.assign_lead(lead, "user:alice")
    capture(crm)  # still waiting for an owner
    lead = capture(crm)
    crm.assign_lead(lead, "user:bob")
    catch_up()

    stats = view.handoffs(kind="capture_to_assignment")

    month = view.rows()[0]["month"]
    assert [(s["team"], s["count"], s["completed"], s["open"]) for s in stats] == [
        (None, 1, 0, 1),
        ("user:alice", 5, 5, 0),
        ("user:bob", 1, 1, 0),
    ]
    alice = stats[1]
    assert alice["month"] == month == clock.now().strftime("%Y-%m")
    assert alice["p50_seconds"] == pytest.approx(180)
    assert alice["p90_seconds"] == pytest.approx(456)  # 240 + 0.6 * (600 - 240)
    assert stats[0]["p50_seconds"] is None
    assert view.handoffs(team="user:bob", kind="capture_to_assignment")[0]["p50_seconds"] == 0
    assert view.handoffs(month="1999-01") == []
    assert {s["kind"] for s in view.handoffs()} == {
        "capture_to_assignment",
        "assignment_to_first_activity",
    }


def test_a_reader_sees_only_the_handoffs_of_their_owner_or_region(
    crm: CRM, handoffs: Any, read_model: Any
) -> None:
    view, catch_up = handoffs
    customers, catch_up_customers = read_model(Customer360View, Customer360Projection)
    crm.assign_lead(capture(crm, "Li", "east"), "user:alice")
    crm.assign_lead(capture(crm, "Wu", "west"), "user:bob")
    win(crm, customer(crm, "west"), owner="user:alice")
    catch_up()
    catch_up_customers()

    def seen(visible: Visibility) -> set[tuple[str, str | None]]:
        return {(s["kind"], s["team"]) for s in view.handoffs(visible=visible)}

    assert seen(Visibility(owner="user:alice")) == {
        ("capture_to_assignment", "user:alice"),
        ("assignment_to_first_activity", "user:alice"),
        ("win_to_onboarding", "user:alice"),
    }
    assert seen(Visibility(region="west")) == {
        ("capture_to_assignment", "user:bob"),
        ("assignment_to_first_activity", "user:bob"),
        ("win_to_onboarding", "user:alice"),  # the deal's customer is in the west
    }
    assert len(seen(Visibility())) == 5


def test_read_your_writes_waits_for_the_position_of_a_write(crm: CRM, handoffs: Any) -> None:
    view, catch_up = handoffs
    result = crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
    catch_up()

    assert view.handoffs(min_position=result.position)[0]["count"] == 1


OPERATIONS = [
    "capture",
    "assign",
    "activity",
    "qualify",
    "disqualify",
    "reopen",
    "convert",
    "deal",
    "win",
    "ticket",
    "assign_ticket",
    "breach",
    "escalate",
    "respond",
    "route",
    "advance",
    "catch_up",
]


def by(b: int, command: Callable[..., object], *args: Any) -> object:
    """Run the command as a person, the SLA saga or the system, as `b` picks."""
    with command_context(actor=("user:wang", SLA_SAGA, "system:crm")[b % 3]):
        return command(*args)


def commands(crm: CRM, world: World, clock: FixedClock) -> dict[str, Command]:
    wins: list[tuple[UUID, UUID]] = []  # (customer, win event)
    tickets: list[UUID] = []
    customer_of: dict[UUID, UUID] = {}  # deal -> its customer

    def deal(a: int, b: int) -> None:
        customer_id = pick(world.customers, a)
        world.deals.append(
            crm.open_opportunity(
                customer_id=customer_id,
                title="Deal",
                amount="100",
                currency="CNY",
                expected_close=date(2026, 4, 15),
                owner=f"user:{b % 3}",
            ).id
        )
        customer_of[world.deals[-1]] = customer_id

    def won(a: int, b: int) -> None:
        opportunity = pick(world.deals, a)
        crm.move_opportunity_stage(opportunity, "negotiation")
        result = crm.win_opportunity(
            opportunity, amount=str(b + 1), currency="CNY", contract_reference="C"
        )
        wins.append((customer_of[opportunity], event_id_for(opportunity, result.version)))

    def ticket(a: int, b: int) -> None:
        customer_id, cause = pick(wins, a) if wins and b % 4 else (pick(world.customers, a), None)
        tickets.append(onboarding_ticket(crm, customer_id, cause))

    return {
        "capture": lambda a, b: world.leads.append(capture(crm, f"L{a}x{b}", f"r{b % 2}")),
        "assign": lambda a, b: crm.assign_lead(pick(world.leads, a), f"user:{b % 3}"),
        "activity": lambda a, b: crm.log_lead_activity(
            pick(world.leads, a), kind="call", summary="call"
        ),
        "qualify": lambda a, b: crm.qualify_lead(pick(world.leads, a)),
        "disqualify": lambda a, b: crm.disqualify_lead(pick(world.leads, a), "no budget"),
        "reopen": lambda a, b: crm.reopen_lead(pick(world.leads, a)),
        "convert": lambda a, b: crm.convert_lead(pick(world.leads, a), pick(world.customers, b)),
        "deal": deal,
        "win": won,
        "ticket": ticket,
        "assign_ticket": lambda a, b: crm.assign_ticket(
            pick(tickets, a), f"agent:{b % 2}", f"team{b % 3}" if b % 3 else None
        ),
        "breach": lambda a, b: breach(
            crm, pick(tickets, a), ("first_response", "resolution")[b % 2], clock
        ),
        "escalate": lambda a, b: by(b, crm.escalate_ticket, pick(tickets, a), b % 3 + 1, "late"),
        "respond": lambda a, b: by(b, crm.record_ticket_first_response, pick(tickets, a)),
        "route": lambda a, b: router(crm).catch_up(),
        "advance": lambda a, b: clock.advance(minutes=b),
    }


@REBUILD_EXAMPLES
@given(script=random_scripts(OPERATIONS, a=4, b=40, min_size=5, max_size=30))
def test_a_rebuild_from_scratch_has_the_rows_the_live_projection_built(
    crm: CRM, handoffs: Any, clock: FixedClock, script: list[Step]
) -> None:
    view, live = handoffs
    world = World(customers=[customer(crm), customer(crm, "west")])
    play(script, commands(crm, world, clock), live)

    with rebuilt_from_zero(crm, view, HandoffsProjection) as rebuilt:
        for table in HandoffsView.tables:
            assert rows_of(rebuilt, table) == rows_of(view, table), table
