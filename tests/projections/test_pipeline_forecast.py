"""Pipeline forecast: given events, expected rows per month, owner, region and currency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given

from domain.application import CRM
from domain.opportunity import PIPELINE
from projections.pipeline_forecast import PipelineForecastProjection, PipelineForecastView
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero, rows_of
from tests.projections.scripts import Command, Step, World, pick, play, random_scripts

APRIL, MAY = date(2026, 4, 1), date(2026, 5, 1)


@pytest.fixture
def forecast(read_model: Any) -> tuple[PipelineForecastView, Callable[[], int]]:
    view, catch_up = read_model(PipelineForecastView, PipelineForecastProjection)
    return view, catch_up


def customer(crm: CRM, region: str = "east") -> UUID:
    return crm.register_customer(kind="company", name="Acme", region=region, owner="user:a").id


def deal(
    crm: CRM,
    customer_id: UUID,
    amount: str = "1000",
    currency: str = "CNY",
    closes: date = date(2026, 4, 15),
    owner: str = "user:alice",
) -> UUID:
    return crm.open_opportunity(
        customer_id=customer_id,
        title="Deal",
        amount=amount,
        currency=currency,
        expected_close=closes,
        owner=owner,
    ).id


def rows(view: PipelineForecastView, **query: Any) -> list[tuple[Any, ...]]:
    """(month, owner, region, currency, open, weighted, committed, won) per row."""
    return [
        (
            r["month"],
            r["owner"],
            r["region"],
            r["currency"],
            r["open_amount"],
            r["weighted_amount"],
            r["committed_amount"],
            r["won_amount"],
        )
        for r in view.forecast(**query)
    ]


def test_open_weighted_and_committed_amounts_per_month_owner_region_and_currency(
    crm: CRM, forecast: Any
) -> None:
    view, catch_up = forecast
    acme = customer(crm)
    deal(crm, acme, "1000", "CNY")
    crm.move_opportunity_stage(deal(crm, acme, "2000", "CNY"), "negotiation")
    crm.move_opportunity_stage(deal(crm, acme, "500", "USD"), "proposal")
    deal(crm, acme, "300", "CNY", closes=date(2026, 5, 31), owner="user:bob")
    catch_up()

    assert rows(view) == [
        (APRIL, "user:alice", "east", "CNY", 3000, Decimal("1600"), 2000, 0),
        (APRIL, "user:alice", "east", "USD", 500, 250, 0, 0),
        (MAY, "user:bob", "east", "CNY", 300, 30, 0, 0),
    ]
    assert view.forecast()[0]["open_count"] == 2


def test_another_probability_table_reweights_the_same_rows(crm: CRM, forecast: Any) -> None:
    view, catch_up = forecast
    deal(crm, customer(crm), "1000", "CNY")
    catch_up()

    assert rows(view, probabilities={"qualification": 40})[0][5] == 400


def test_changing_the_expected_close_moves_a_deal_to_another_month(crm: CRM, forecast: Any) -> None:
    view, catch_up = forecast
    slipping = deal(crm, customer(crm))
    crm.change_opportunity_expected_close(slipping, date(2026, 5, 2))
    catch_up()

    assert [r[0] for r in rows(view)] == [MAY]


def test_an_amount_change_replaces_the_amount_even_in_another_currency(
    crm: CRM, forecast: Any
) -> None:
    view, catch_up = forecast
    requoted = deal(crm, customer(crm), "1000", "CNY")
    crm.change_opportunity_amount(requoted, "140", "USD")
    catch_up()

    assert [(r[3], r[4]) for r in rows(view)] == [("USD", 140)]


def test_a_lost_deal_drops_out_and_once_reopened_and_won_counts_as_won(
    crm: CRM, forecast: Any
) -> None:
    view, catch_up = forecast
    comeback = deal(crm, customer(crm), "1000", "CNY")
    crm.move_opportunity_stage(comeback, "negotiation")
    crm.lose_opportunity(comeback, reason="price")
    catch_up()
    assert rows(view) == []

    crm.reopen_opportunity(comeback)
    catch_up()
    assert rows(view) == [(APRIL, "user:alice", "east", "CNY", 1000, 750, 1000, 0)]

    crm.win_opportunity(comeback, amount="900", currency="CNY", contract_reference="C-1")
    catch_up()
    assert rows(view) == [(APRIL, "user:alice", "east", "CNY", 0, 0, 0, 900)]


def test_moving_back_from_negotiation_takes_a_deal_out_of_committed(
    crm: CRM, forecast: Any
) -> None:
    view, catch_up = forecast
    hesitant = deal(crm, customer(crm))
    crm.move_opportunity_stage(hesitant, "negotiation")
    crm.move_opportunity_stage(hesitant, "needs_analysis")
    catch_up()

    assert rows(view) == [(APRIL, "user:alice", "east", "CNY", 1000, 250, 0, 0)]


def test_months_owner_and_region_narrow_the_forecast(crm: CRM, forecast: Any) -> None:
    view, catch_up = forecast
    east, west = customer(crm, "east"), customer(crm, "west")
    deal(crm, east, closes=date(2026, 3, 31))
    deal(crm, east, closes=date(2026, 4, 30), owner="user:bob")
    deal(crm, west, closes=date(2026, 5, 1))
    catch_up()

    april_to_may = rows(view, from_month=date(2026, 4, 20), to_month=date(2026, 5, 3))
    assert [r[0] for r in april_to_may] == [APRIL, MAY]
    assert [r[1] for r in rows(view, owner="user:bob")] == ["user:bob"]
    assert [r[0] for r in rows(view, region="west")] == [MAY]


def test_a_customer_moving_region_takes_its_deals_along(crm: CRM, forecast: Any) -> None:
    view, catch_up = forecast
    acme = customer(crm, "east")
    deal(crm, acme)
    crm.update_customer_profile(acme, region="south")
    catch_up()

    assert [r[2] for r in rows(view)] == ["south"]


def test_merging_customers_keeps_their_deals_in_the_forecast(crm: CRM, forecast: Any) -> None:
    view, catch_up = forecast
    survivor, duplicate = customer(crm, "east"), customer(crm, "west")
    deal(crm, duplicate)
    crm.merge_customers(survivor, duplicate)
    deal(crm, survivor)
    catch_up()

    assert [(r[2], r[4]) for r in rows(view)] == [("east", 1000), ("west", 1000)]


def test_events_the_projection_does_not_handle_still_advance_its_position(
    crm: CRM, forecast: Any
) -> None:
    view, catch_up = forecast
    crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
    crm.tag_customer(customer(crm), "vip")

    position = catch_up()

    assert position == crm.recorder.max_notification_id()
    assert view.position() == position


def test_read_your_writes_waits_for_the_position_of_a_write(crm: CRM, forecast: Any) -> None:
    view, catch_up = forecast
    result = crm.open_opportunity(
        customer_id=customer(crm),
        title="Deal",
        amount="10",
        currency="USD",
        expected_close=MAY,
        owner="user:alice",
    )
    catch_up()

    assert len(view.forecast(min_position=result.position)) == 1


# --- rebuilding from scratch gives the rows the live projection built -----------------------

OPERATIONS = (
    "customer", "open", "move", "amount", "close", "win", "lose", "reopen", "region", "merge",
    "catch_up",
)  # fmt: skip
CURRENCIES = ("CNY", "USD")
# Records for the random commands to work on from the first step.
PRELUDE = [("customer", 0, 0), ("customer", 1, 0), ("open", 0, 1), ("open", 1, 2)]


def commands(crm: CRM, world: World) -> dict[str, Command]:
    """The script's operations on this CRM; `a` and `b` pick records and vary arguments."""
    customers, deals = world.customers, world.deals
    return {
        "customer": lambda a, b: customers.append(customer(crm, ("east", "west")[a % 2])),
        "open": lambda a, b: deals.append(
            deal(crm, pick(customers, a), currency=CURRENCIES[b % 2], closes=date(2026, 1 + b, 10))
        ),
        "move": lambda a, b: crm.move_opportunity_stage(pick(deals, a), PIPELINE[b % 4]),
        "amount": lambda a, b: crm.change_opportunity_amount(
            pick(deals, a), str(100 * b), CURRENCIES[b % 2]
        ),
        "close": lambda a, b: crm.change_opportunity_expected_close(
            pick(deals, a), date(2026, 1 + b, 28)
        ),
        "win": lambda a, b: crm.win_opportunity(
            pick(deals, a), amount=str(50 * b), currency=CURRENCIES[b % 2], contract_reference="C"
        ),
        "lose": lambda a, b: crm.lose_opportunity(pick(deals, a), reason="price"),
        "reopen": lambda a, b: crm.reopen_opportunity(pick(deals, a)),
        "region": lambda a, b: crm.update_customer_profile(pick(customers, a), region="south"),
        "merge": lambda a, b: crm.merge_customers(pick(customers, a), pick(customers, b)),
    }


@REBUILD_EXAMPLES
@given(script=random_scripts(OPERATIONS))
def test_a_rebuild_from_scratch_has_the_rows_the_live_projection_built(
    crm: CRM, forecast: Any, script: list[Step]
) -> None:
    view, live = forecast
    play([*PRELUDE, *script], commands(crm, World()), live)

    with rebuilt_from_zero(crm, view, PipelineForecastProjection) as rebuilt:
        for table in PipelineForecastView.tables:
            assert rows_of(rebuilt, table) == rows_of(view, table), table
