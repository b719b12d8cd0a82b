"""Opportunity rules: given events, when a command runs, then these events (or this error)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from domain.opportunity import (
    DEFAULT_STAGE_PROBABILITIES,
    Opportunity,
    OpportunityAmountChanged,
    OpportunityExpectedCloseChanged,
    OpportunityIsClosed,
    OpportunityLost,
    OpportunityNotLost,
    OpportunityNotReadyToWin,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityStageChanged,
    OpportunityWon,
    StageEntry,
)
from domain.shared import EVENT_TYPES, DomainError, FixedClock, InvalidValue, Snapshot
from domain.values import Money
from tests.domain.scenario import MONDAY_9AM, given, history, payload, through_store, when

OPPORTUNITY_ID = UUID("00000000-0000-4000-8000-0000000000a1")
CUSTOMER_ID = UUID("00000000-0000-4000-8000-0000000000c1")
LEAD_ID = UUID("00000000-0000-4000-8000-00000000001e")
CLOSE_BY = date(2026, 6, 30)
HUNDRED_K = Money.of("100000.00", "CNY")
A_DAY_LATER = MONDAY_9AM + timedelta(days=1)


def open_opportunity(**changes: Any) -> Opportunity:
    fields: dict[str, Any] = {
        "opportunity_id": OPPORTUNITY_ID,
        "customer_id": CUSTOMER_ID,
        "title": "ERP roll-out",
        "amount": HUNDRED_K,
        "expected_close": CLOSE_BY,
        "owner": "user:chen",
        "source_lead_id": LEAD_ID,
    }
    return Opportunity.open(**(fields | changes))


def an_opportunity(*commands: Callable[[Opportunity], Any]) -> Opportunity:
    """The opportunity built from the events that opening it and then `commands` record."""
    opportunity: Opportunity = given(*history(open_opportunity, *commands))
    return opportunity


def at(stage: str) -> Callable[[Opportunity], None]:
    return lambda opportunity: opportunity.move_to_stage(stage)  # type: ignore[arg-type]


def won(opportunity: Opportunity) -> None:
    opportunity.move_to_stage("negotiation")
    opportunity.win(HUNDRED_K, "C-2026-001")


def lost(opportunity: Opportunity) -> None:
    opportunity.lose("price", "Globex")


def rejects(
    opportunity: Opportunity, command: Callable[[Opportunity], Any], error: type[DomainError]
) -> DomainError:
    """Run `command`, expect `error`, and check the opportunity recorded nothing."""
    with pytest.raises(error) as raised:
        when(opportunity, command)
    assert opportunity.pending_events == []
    return raised.value


# --- opening -----------------------------------------------------------------------------------


def test_opening_records_the_deal() -> None:
    [event] = history(open_opportunity)
    assert isinstance(event, OpportunityOpened)
    assert payload(event) == {
        "customer_id": CUSTOMER_ID,
        "title": "ERP roll-out",
        "amount": HUNDRED_K.model_dump(),
        "expected_close": CLOSE_BY,
        "owner": "user:chen",
        "source_lead_id": LEAD_ID,
    }


def test_a_new_opportunity_starts_at_qualification_entered_when_it_was_opened() -> None:
    opportunity = an_opportunity()
    assert (opportunity.stage, opportunity.stage_entered_at) == ("qualification", MONDAY_9AM)
    assert opportunity.stage_history == [StageEntry(stage="qualification", entered_at=MONDAY_9AM)]
    assert not opportunity.is_closed
    assert (opportunity.customer_id, opportunity.owner, opportunity.amount) == (
        CUSTOMER_ID,
        "user:chen",
        HUNDRED_K,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"title": "  "},
        {"owner": ""},
    ],
)
def test_malformed_opening_details_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue) as raised:
        open_opportunity(**bad)
    assert raised.value.field_name == next(iter(bad))


# --- stages ------------------------------------------------------------------------------------


def test_moving_to_another_stage_records_when_it_was_entered() -> None:
    opportunity = an_opportunity()
    events = when(opportunity, at("proposal"), clock=FixedClock(A_DAY_LATER))
    assert [(type(e), payload(e)) for e in events] == [
        (OpportunityStageChanged, {"from_stage": "qualification", "stage": "proposal"})
    ]
    assert events[0].timestamp == A_DAY_LATER
    assert (opportunity.stage, opportunity.stage_entered_at) == ("proposal", A_DAY_LATER)
    assert opportunity.stage_history[-1] == StageEntry(stage="proposal", entered_at=A_DAY_LATER)


def test_moves_may_go_back_to_an_earlier_stage() -> None:
    opportunity = an_opportunity(at("negotiation"))
    assert [payload(e) for e in when(opportunity, at("needs_analysis"))] == [
        {"from_stage": "negotiation", "stage": "needs_analysis"}
    ]
    assert [entry.stage for entry in opportunity.stage_history] == [
        "qualification",
        "negotiation",
        "needs_analysis",
    ]


def test_moving_to_the_current_stage_records_nothing() -> None:
    assert when(an_opportunity(at("proposal")), at("proposal")) == []


@pytest.mark.parametrize("stage", ["won", "lost", "closing"])
def test_moving_outside_the_open_pipeline_is_rejected(stage: str) -> None:
    rejects(an_opportunity(), at(stage), InvalidValue)


# --- amount and dates --------------------------------------------------------------------------


def test_changing_the_amount_records_it() -> None:
    opportunity = an_opportunity()
    new_amount = Money.of("120000", "CNY")
    events = when(opportunity, lambda o: o.change_amount(new_amount))
    assert [(type(e), payload(e)) for e in events] == [
        (OpportunityAmountChanged, {"amount": new_amount.model_dump()})
    ]
    assert opportunity.amount == new_amount


def test_changing_to_an_equal_amount_records_nothing() -> None:
    assert when(an_opportunity(), lambda o: o.change_amount(Money.of("100000", "CNY"))) == []


def test_the_currency_may_change_with_the_amount() -> None:
    opportunity = an_opportunity()
    when(opportunity, lambda o: o.change_amount(Money.of("100000", "USD")))
    assert opportunity.amount == Money.of("100000", "USD")


@pytest.mark.parametrize("amount", ["-5", "NaN", "Infinity"])
def test_a_negative_or_non_finite_amount_is_not_money(amount: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        Money(amount=Decimal(amount), currency="CNY")
    assert raised.value.field_name == "amount"


def test_changing_the_expected_close_records_it() -> None:
    opportunity = an_opportunity()
    later = CLOSE_BY + timedelta(days=30)
    events = when(opportunity, lambda o: o.change_expected_close(later))
    assert [(type(e), payload(e)) for e in events] == [
        (OpportunityExpectedCloseChanged, {"expected_close": later})
    ]
    assert opportunity.expected_close == later


def test_keeping_the_expected_close_records_nothing() -> None:
    assert when(an_opportunity(), lambda o: o.change_expected_close(CLOSE_BY)) == []


# --- winning and losing ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["proposal", "negotiation"])
def test_winning_from_a_proposal_on_records_the_final_amount_and_contract(stage: str) -> None:
    opportunity = an_opportunity(at(stage))
    final = Money.of("95000", "CNY")
    events = when(
        opportunity, lambda o: o.win(final, " C-2026-007 "), clock=FixedClock(A_DAY_LATER)
    )
    assert [(type(e), payload(e)) for e in events] == [
        (
            OpportunityWon,
            {"from_stage": stage, "amount": final.model_dump(), "contract_reference": "C-2026-007"},
        )
    ]
    assert (opportunity.stage, opportunity.is_closed, opportunity.amount) == ("won", True, final)
    assert opportunity.stage_history[-1] == StageEntry(stage="won", entered_at=A_DAY_LATER)


@pytest.mark.parametrize("stage", ["qualification", "needs_analysis"])
def test_winning_before_a_proposal_is_rejected(stage: str) -> None:
    opportunity = an_opportunity(at(stage))
    error = rejects(opportunity, lambda o: o.win(HUNDRED_K, "C-1"), OpportunityNotReadyToWin)
    assert error.context == {"opportunity_id": str(OPPORTUNITY_ID), "stage": stage}


def test_winning_without_a_contract_reference_is_rejected() -> None:
    rejects(an_opportunity(at("proposal")), lambda o: o.win(HUNDRED_K, " "), InvalidValue)


def test_losing_records_the_reason_the_competitor_and_the_stage_it_was_lost_at() -> None:
    opportunity = an_opportunity(at("needs_analysis"))
    events = when(opportunity, lambda o: o.lose("went with a competitor", " Globex "))
    assert [(type(e), payload(e)) for e in events] == [
        (
            OpportunityLost,
            {
                "from_stage": "needs_analysis",
                "reason": "went with a competitor",
                "competitor": "Globex",
            },
        )
    ]
    assert (opportunity.stage, opportunity.is_closed) == ("lost", True)


def test_losing_without_a_reason_is_rejected() -> None:
    rejects(an_opportunity(), lambda o: o.lose("  "), InvalidValue)


def test_reopening_a_lost_opportunity_returns_it_to_the_stage_it_was_lost_from() -> None:
    opportunity = an_opportunity(at("negotiation"), lost)
    events = when(opportunity, lambda o: o.reopen(), clock=FixedClock(A_DAY_LATER))
    assert [(type(e), payload(e)) for e in events] == [
        (OpportunityReopened, {"stage": "negotiation"})
    ]
    assert (opportunity.stage, opportunity.stage_entered_at) == ("negotiation", A_DAY_LATER)
    assert not opportunity.is_closed
    assert (opportunity.lost_from_stage, opportunity.loss_reason, opportunity.competitor) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "before", [[won], [], [at("proposal")]], ids=["won", "qualification", "proposal"]
)
def test_reopening_an_opportunity_that_is_not_lost_is_rejected(
    before: list[Callable[[Opportunity], None]],
) -> None:
    opportunity = an_opportunity(*before)
    error = rejects(opportunity, lambda o: o.reopen(), OpportunityNotLost)
    assert error.context["stage"] == opportunity.stage


@pytest.mark.parametrize("closed_by", [won, lost], ids=["won", "lost"])
@pytest.mark.parametrize(
    "command",
    [
        at("proposal"),
        at("negotiation"),
        lambda o: o.change_amount(Money.of("1", "CNY")),
        lambda o: o.change_amount(HUNDRED_K),
        lambda o: o.change_expected_close(CLOSE_BY + timedelta(days=1)),
        lambda o: o.change_expected_close(CLOSE_BY),
        lambda o: o.win(HUNDRED_K, "C-2"),
        lambda o: o.lose("changed our mind"),
    ],
    ids=[
        "move",
        "move-to-same",
        "change_amount",
        "same-amount",
        "change_expected_close",
        "same-close",
        "win",
        "lose",
    ],
)
def test_a_closed_opportunity_rejects_every_change(
    closed_by: Callable[[Opportunity], None], command: Callable[[Opportunity], Any]
) -> None:
    rejects(an_opportunity(closed_by), command, OpportunityIsClosed)


# --- probability -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before, expected",
    [
        ([], 10),
        ([at("needs_analysis")], 25),
        ([at("proposal")], 50),
        ([at("negotiation")], 75),
        ([won], 100),
        ([lost], 0),
    ],
)
def test_the_chance_of_winning_follows_the_stage(
    before: list[Callable[[Opportunity], None]], expected: int
) -> None:
    assert an_opportunity(*before).probability() == expected


def test_the_chance_of_winning_comes_from_the_configured_table() -> None:
    table = dict(DEFAULT_STAGE_PROBABILITIES, proposal=60)
    assert an_opportunity(at("proposal")).probability(table) == 60


# --- storage -----------------------------------------------------------------------------------


def test_every_opportunity_event_survives_the_store_unchanged() -> None:
    events = history(
        open_opportunity,
        at("proposal"),
        lambda o: o.change_amount(Money.of("123.45", "USD")),
        lambda o: o.change_expected_close(CLOSE_BY + timedelta(days=7)),
        lost,
        lambda o: o.reopen(),
        won,
    )
    opportunity_event_types = {
        cls for name, cls in EVENT_TYPES.items() if name.startswith("crm.opportunity.")
    }
    assert {type(e) for e in events} == opportunity_event_types
    assert through_store(events) == events
    assert given(*through_store(events)).state() == given(*events).state()


def test_a_stored_snapshot_restores_the_same_opportunity() -> None:
    opportunity = an_opportunity(at("negotiation"), lost)
    [snapshot] = through_store([Snapshot.take(opportunity)])
    assert snapshot.mutate(None).state() == opportunity.state()
