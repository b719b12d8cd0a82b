"""Sales funnel: given events, expected rows; slices, stage periods, stalled deals, rebuilds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given

from domain.application import CRM
from domain.opportunity import PIPELINE
from domain.shared import FixedClock
from projections.sales_funnel import (
    InvalidCursor,
    Period,
    SalesFunnelProjection,
    SalesFunnelView,
)
from tests.domain.scenario import MONDAY_9AM
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero, rows_of
from tests.projections.scripts import Command, Step, World, pick, play, random_scripts


@pytest.fixture
def funnel(read_model: Any) -> tuple[SalesFunnelView, Callable[[], int]]:
    view, catch_up = read_model(SalesFunnelView, SalesFunnelProjection)
    return view, catch_up


def customer(crm: CRM, region: str = "east") -> UUID:
    return crm.register_customer(kind="company", name="Acme", region=region, owner="user:a").id


def lead(crm: CRM, channel: Any = "web_form", campaign: str | None = None, **fields: Any) -> UUID:
    return crm.capture_lead(
        channel=channel,
        campaign=campaign,
        name="Li",
        region=fields.pop("region", "north"),
        phone="13812345678",
        **fields,
    ).id


def deal(
    crm: CRM,
    customer_id: UUID,
    amount: str = "1000",
    currency: str = "CNY",
    owner: str = "user:alice",
    source_lead_id: UUID | None = None,
) -> UUID:
    return crm.open_opportunity(
        customer_id=customer_id,
        title="Deal",
        amount=amount,
        currency=currency,
        expected_close=date(2026, 4, 15),
        owner=owner,
        source_lead_id=source_lead_id,
    ).id


def win(crm: CRM, deal_id: UUID, amount: str = "1000", currency: str = "CNY") -> None:
    crm.move_opportunity_stage(deal_id, "proposal")
    crm.win_opportunity(deal_id, amount=amount, currency=currency, contract_reference="C-1")


def converted_lead(crm: CRM, customer_id: UUID, **fields: Any) -> UUID:
    lead_id = lead(crm, **fields)
    crm.qualify_lead(lead_id)
    crm.convert_lead(lead_id, customer_id)
    return lead_id


def stage_rows(view: SalesFunnelView, **filters: Any) -> list[tuple[str, str, int, Decimal]]:
    return [(r["stage"], r["currency"], r["count"], r["amount"]) for r in view.stages(**filters)]


def test_stages_count_and_sum_deals_per_currency_without_ever_adding_currencies(
    crm: CRM, funnel: Any
) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    deal(crm, acme, "1000", "CNY")
    deal(crm, acme, "500", "CNY")
    deal(crm, acme, "200", "USD")
    lost = deal(crm, acme, "300", "USD")
    crm.lose_opportunity(lost, reason="no budget")
    catch_up()

    assert stage_rows(view) == [
        ("qualification", "CNY", 2, Decimal("1500")),
        ("qualification", "USD", 1, Decimal("200")),
        ("lost", "USD", 1, Decimal("300")),
    ]


def test_amount_changes_and_the_won_amount_replace_a_deals_amount_and_currency(
    crm: CRM, funnel: Any
) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    changed = deal(crm, acme, "1000", "CNY")
    crm.change_opportunity_amount(changed, "150", "USD")
    won = deal(crm, acme, "1000", "CNY")
    win(crm, won, "1200", "USD")
    catch_up()

    assert stage_rows(view) == [
        ("qualification", "USD", 1, Decimal("150")),
        ("won", "USD", 1, Decimal("1200")),
    ]


def test_a_deal_takes_channel_and_campaign_from_its_lead_and_region_from_its_customer(
    crm: CRM, funnel: Any
) -> None:
    view, catch_up = funnel
    acme = customer(crm, region="east")
    expo = lead(crm, channel="event", campaign="expo", region="north")
    deal(crm, acme, source_lead_id=expo)
    deal(crm, acme)
    catch_up()

    assert stage_rows(view, channel="event", campaign="expo", region="east") == [
        ("qualification", "CNY", 1, Decimal("1000"))
    ]
    assert stage_rows(view, region="north") == []
    assert stage_rows(view, region="east")[0][2] == 2


def test_a_deal_a_lead_was_converted_into_inherits_the_leads_channel(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    referral = lead(crm, channel="referral", campaign="friends")
    crm.qualify_lead(referral)
    opened = deal(crm, acme)
    crm.convert_lead(referral, acme, opened)
    catch_up()

    assert stage_rows(view, channel="referral", campaign="friends")[0][2] == 1
    assert view.conversion()["converted_with_opportunity"] == 1


def test_a_customer_moving_region_takes_its_deals_along(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    acme = customer(crm, region="east")
    deal(crm, acme)
    crm.update_customer_profile(acme, region="west")
    crm.update_customer_profile(acme, name="Acme Holdings")
    catch_up()

    assert stage_rows(view, region="west")[0][2] == 1
    assert stage_rows(view, region="east") == []


def test_conversion_counts_each_step_from_lead_to_won_and_its_rate(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    with_deal = converted_lead(crm, acme)
    converted_lead(crm, acme)
    bounced = lead(crm)
    crm.qualify_lead(bounced)
    crm.disqualify_lead(bounced, "no budget")  # it still reached `qualified`
    lead(crm)
    won, lost, _ = deal(crm, acme, source_lead_id=with_deal), deal(crm, acme), deal(crm, acme)
    win(crm, won)
    crm.lose_opportunity(lost, reason="price")
    catch_up()

    assert view.conversion() == {
        "leads": 4,
        "qualified": 3,
        "converted": 2,
        "converted_with_opportunity": 1,
        "opportunities": 3,
        "won": 1,
        "lost": 1,
        "lead_to_qualified": 0.75,
        "qualified_to_converted": pytest.approx(2 / 3),
        "converted_to_opportunity": 0.5,
        "opportunity_to_won": pytest.approx(1 / 3),
        "win_rate": 0.5,
    }


def test_conversion_of_an_empty_slice_has_no_rates(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    catch_up()

    rates = view.conversion(owner="user:nobody")

    assert rates["leads"] == 0
    assert rates["win_rate"] is None


def test_a_lost_deal_reopened_and_won_counts_as_won_once(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    comeback = deal(crm, acme)
    crm.move_opportunity_stage(comeback, "proposal")
    crm.lose_opportunity(comeback, reason="competitor")
    crm.reopen_opportunity(comeback)
    crm.win_opportunity(comeback, amount="900", currency="CNY", contract_reference="C-9")
    catch_up()

    conversion = view.conversion()

    assert (conversion["opportunities"], conversion["won"], conversion["lost"]) == (1, 1, 0)
    assert stage_rows(view) == [("won", "CNY", 1, Decimal("900"))]


def test_every_stay_in_a_stage_counts_towards_its_average_including_moves_back(
    crm: CRM, funnel: Any, clock: FixedClock
) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    bouncing = deal(crm, acme)
    clock.advance(days=2)
    crm.move_opportunity_stage(bouncing, "needs_analysis")
    clock.advance(days=3)
    crm.move_opportunity_stage(bouncing, "qualification")
    clock.advance(days=4)
    crm.move_opportunity_stage(bouncing, "proposal")
    crm.lose_opportunity(bouncing, reason="price")
    clock.advance(days=10)
    crm.reopen_opportunity(bouncing)
    clock.advance(days=1)
    catch_up()

    finished = {r["stage"]: (r["periods"], r["average_days"]) for r in view.average_days_in_stage()}
    with_now = {r["stage"]: r["periods"] for r in view.average_days_in_stage(now=clock.now())}

    assert finished == {"qualification": (2, 3.0), "needs_analysis": (1, 3.0), "proposal": (1, 0)}
    assert with_now["proposal"] == 2


def test_periods_slice_records_by_the_month_or_week_they_entered(
    crm: CRM, funnel: Any, clock: FixedClock
) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    lead(crm)
    deal(crm, acme)
    clock.advance(days=7)
    lead(crm)
    clock.advance(days=30)
    lead(crm)
    deal(crm, acme)
    catch_up()

    march, april = Period.month(2026, 3), Period.month(2026, 4)
    first_week = Period.week_of(MONDAY_9AM.date() + timedelta(days=3))

    assert view.conversion(period=march)["leads"] == 2
    assert view.conversion(period=april)["leads"] == 1
    assert view.conversion(period=first_week)["leads"] == 1
    assert stage_rows(view, period=april)[0][2] == 1
    # 01:00 UTC on Monday 2 March is still Sunday 1 March, the week before, in New York.
    week_before = date(2026, 2, 27)
    assert view.conversion(period=Period.week_of(week_before, "America/New_York"))["leads"] == 1
    assert view.conversion(period=Period.week_of(week_before))["leads"] == 0


def test_slices_by_owner_pick_the_leads_and_deals_of_that_owner(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    mine = lead(crm)
    crm.assign_lead(mine, "user:alice")
    lead(crm)
    deal(crm, acme, owner="user:alice")
    deal(crm, acme, owner="user:bob")
    catch_up()

    conversion = view.conversion(owner="user:alice")

    assert (conversion["leads"], conversion["opportunities"]) == (1, 1)


def test_stalled_deals_are_open_deals_longer_in_their_stage_than_its_threshold(
    crm: CRM, funnel: Any, clock: FixedClock
) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    old = deal(crm, acme)
    closed = deal(crm, acme)
    crm.lose_opportunity(closed, reason="price")
    clock.advance(days=10)
    moved = deal(crm, acme)
    crm.move_opportunity_stage(moved, "proposal")
    clock.advance(days=5)
    fresh = deal(crm, acme, owner="user:bob")
    catch_up()
    now = clock.advance(days=1)

    by_default, _ = view.stalled_deals(now)
    strict, _ = view.stalled_deals(now, thresholds={"qualification": 0, "proposal": 3})

    assert [r["opportunity_id"] for r in by_default] == [old]
    assert by_default[0]["days_in_stage"] == pytest.approx(16)
    assert by_default[0]["threshold_days"] == 14
    assert [r["opportunity_id"] for r in strict] == [old, moved, fresh]
    assert (
        view.stalled_deals(now, thresholds={"qualification": 0}, owner="user:bob")[0][0][
            "opportunity_id"
        ]
        == fresh
    )


def test_stalled_deals_page_with_an_opaque_cursor(crm: CRM, funnel: Any, clock: FixedClock) -> None:
    view, catch_up = funnel
    acme = customer(crm)
    deals = []
    for _ in range(5):
        deals.append(deal(crm, acme))
        clock.advance(hours=1)
    catch_up()
    now = clock.advance(days=30)

    first, cursor = view.stalled_deals(now, limit=2)
    second, cursor2 = view.stalled_deals(now, limit=2, cursor=cursor)
    third, cursor3 = view.stalled_deals(now + timedelta(days=1), limit=2, cursor=cursor2)

    assert [r["opportunity_id"] for r in first + second + third] == deals
    assert cursor3 is None
    with pytest.raises(InvalidCursor):
        view.stalled_deals(now, cursor="not-a-cursor")


def test_a_stalled_deals_page_holds_at_least_one_deal(
    crm: CRM, funnel: Any, clock: FixedClock
) -> None:
    view, catch_up = funnel
    catch_up()

    with pytest.raises(ValueError):
        view.stalled_deals(clock.now(), limit=0)


def test_merging_customers_leaves_their_deals_in_the_funnel(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    survivor, duplicate = customer(crm, region="east"), customer(crm, region="west")
    deal(crm, duplicate)
    crm.merge_customers(survivor, duplicate)
    deal(crm, survivor)
    catch_up()

    assert stage_rows(view) == [("qualification", "CNY", 2, Decimal("2000"))]
    assert stage_rows(view, region="west")[0][2] == 1


def test_events_the_projection_does_not_handle_still_advance_its_position(
    crm: CRM, funnel: Any
) -> None:
    view, catch_up = funnel
    crm.score_lead(lead(crm), 80)
    crm.tag_customer(customer(crm), "vip")

    position = catch_up()

    assert position == crm.recorder.max_notification_id()
    assert view.position() == position


def test_read_your_writes_waits_for_the_position_of_a_write(crm: CRM, funnel: Any) -> None:
    view, catch_up = funnel
    result = crm.open_opportunity(
        customer_id=customer(crm),
        title="Deal",
        amount="10",
        currency="USD",
        expected_close=date(2026, 5, 1),
        owner="user:alice",
    )
    catch_up()

    assert view.stages(min_position=result.position)[0]["count"] == 1


# --- rebuilding from scratch gives the rows the live projection built -----------------------

OPERATIONS = (
    "customer", "lead", "assign", "qualify", "disqualify", "reopen_lead", "convert", "open",
    "move", "amount", "win", "lose", "reopen", "region", "merge", "wait", "catch_up",
)  # fmt: skip
CHANNELS = ("web_form", "event", "referral")
# Records for the random commands to work on from the first step.
PRELUDE = [("customer", 0, 0), ("customer", 1, 0), ("lead", 0, 0), ("lead", 1, 1)]
PRELUDE += [("lead", 2, 1), ("qualify", 1, 0), ("open", 0, 1), ("open", 1, 2)]


def commands(crm: CRM, world: World, clock: FixedClock) -> dict[str, Command]:
    """The script's operations on this CRM; `a` and `b` pick records and vary arguments."""
    customers, leads, deals = world.customers, world.leads, world.deals
    return {
        "customer": lambda a, b: customers.append(customer(crm, region=("east", "west")[a % 2])),
        "lead": lambda a, b: leads.append(
            lead(crm, channel=CHANNELS[a % 3], campaign=(None, "expo")[b % 2], region="north")
        ),
        "assign": lambda a, b: crm.assign_lead(pick(leads, a), ("user:alice", "user:bob")[b % 2]),
        "qualify": lambda a, b: crm.qualify_lead(pick(leads, a)),
        "disqualify": lambda a, b: crm.disqualify_lead(pick(leads, a), "no budget"),
        "reopen_lead": lambda a, b: crm.reopen_lead(pick(leads, a)),
        "convert": lambda a, b: crm.convert_lead(
            pick(leads, a), pick(customers, b), pick(deals, b) if deals and a % 2 else None
        ),
        "open": lambda a, b: deals.append(
            deal(
                crm,
                pick(customers, a),
                currency=("CNY", "USD")[b % 2],
                source_lead_id=pick(leads, b) if leads and b % 3 else None,
            )
        ),
        "move": lambda a, b: crm.move_opportunity_stage(pick(deals, a), PIPELINE[b % 4]),
        "amount": lambda a, b: crm.change_opportunity_amount(
            pick(deals, a), str(100 * b), ("CNY", "USD")[b % 2]
        ),
        "win": lambda a, b: crm.win_opportunity(
            pick(deals, a), amount=str(50 * b), currency="USD", contract_reference="C"
        ),
        "lose": lambda a, b: crm.lose_opportunity(pick(deals, a), reason="price"),
        "reopen": lambda a, b: crm.reopen_opportunity(pick(deals, a)),
        "region": lambda a, b: crm.update_customer_profile(
            pick(customers, a), region=("east", "west", "south")[b % 3]
        ),
        "merge": lambda a, b: crm.merge_customers(pick(customers, a), pick(customers, b)),
        "wait": lambda a, b: clock.advance(days=a),
    }


@REBUILD_EXAMPLES
@given(script=random_scripts(OPERATIONS))
def test_a_rebuild_from_scratch_has_the_rows_the_live_projection_built(
    crm: CRM, funnel: Any, clock: FixedClock, script: list[Step]
) -> None:
    view, live = funnel
    play([*PRELUDE, *script], commands(crm, World(), clock), live)

    with rebuilt_from_zero(crm, view, SalesFunnelProjection) as rebuilt:
        for table in SalesFunnelView.tables:
            assert rows_of(rebuilt, table) == rows_of(view, table), table
