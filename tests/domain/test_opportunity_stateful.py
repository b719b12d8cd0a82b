"""Random sequences of valid and invalid opportunity commands keep the pipeline's invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.opportunity import (
    DEFAULT_STAGE_PROBABILITIES,
    PIPELINE,
    STAGES,
    Opportunity,
    OpportunityIsClosed,
    OpportunityNotLost,
    OpportunityNotReadyToWin,
)
from domain.shared import DomainError, FixedClock, InvalidValue, command_context
from domain.values import Money
from tests.domain.scenario import ACTOR, MONDAY_9AM, given, through_store
from tests.strategies import amounts, currencies, names, owners, short_text

# A configured table unlike the default one, to show `probability` reads whatever it is given.
CONFIGURED_PROBABILITIES = {stage: 100 - 7 * n for n, stage in enumerate(STAGES)}

money = st.builds(Money.of, amounts, currencies)
close_dates = st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31))
blank = st.sampled_from(("", "  "))


class OpportunityMachine(RuleBasedStateMachine):
    """Drives one opportunity with random commands, checking each outcome and the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(MONDAY_9AM)
        self.opportunity: Opportunity | None = None

    @initialize(
        opportunity_id=st.uuids(),
        customer_id=st.uuids(),
        title=names,
        amount=money,
        expected_close=close_dates,
        owner=owners,
        source_lead_id=st.none() | st.uuids(),
    )
    def open(
        self,
        opportunity_id: UUID,
        customer_id: UUID,
        title: str,
        amount: Money,
        expected_close: date,
        owner: str,
        source_lead_id: UUID | None,
    ) -> None:
        with command_context(actor=ACTOR, clock=self.clock):
            self.opportunity = Opportunity.open(
                opportunity_id=opportunity_id,
                customer_id=customer_id,
                title=title,
                amount=amount,
                expected_close=expected_close,
                owner=owner,
                source_lead_id=source_lead_id,
            )

    @property
    def live(self) -> Opportunity:
        assert self.opportunity is not None
        return self.opportunity

    def attempt(
        self, command: Callable[[Opportunity], Any], error: type[DomainError] | None, records: bool
    ) -> None:
        """Run a change; a closed opportunity refuses it before checking anything else."""
        if self.live.is_closed:
            error = OpportunityIsClosed
        self.run(command, error, records)

    def run(
        self, command: Callable[[Opportunity], Any], error: type[DomainError] | None, records: bool
    ) -> None:
        """Run `command`: it records one event or (a no-op) none, or raises `error` and records
        nothing."""
        before, recorded = self.live.state(), len(self.live.pending_events)
        with command_context(actor=ACTOR, clock=self.clock):
            if error is None:
                command(self.live)
                assert len(self.live.pending_events) - recorded == int(records)
                return
            with pytest.raises(error):
                command(self.live)
        assert self.live.state() == before
        assert len(self.live.pending_events) == recorded

    @rule(minutes=st.integers(min_value=1, max_value=60 * 24 * 30))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(stage=st.sampled_from((*STAGES, "closing")))
    def move_to_stage(self, stage: Any) -> None:
        error = None if stage in PIPELINE else InvalidValue
        self.attempt(lambda o: o.move_to_stage(stage), error, stage != self.live.stage)
        if not self.live.is_closed and error is None:
            assert self.live.stage == stage

    @rule(amount=money)
    def change_amount(self, amount: Money) -> None:
        self.attempt(lambda o: o.change_amount(amount), None, amount != self.live.amount)

    @rule(expected_close=close_dates)
    def change_expected_close(self, expected_close: date) -> None:
        changes = expected_close != self.live.expected_close
        self.attempt(lambda o: o.change_expected_close(expected_close), None, changes)

    @rule(amount=money, contract_reference=short_text | blank)
    def win(self, amount: Money, contract_reference: str) -> None:
        error: type[DomainError] | None = None
        if self.live.stage not in ("proposal", "negotiation"):
            error = OpportunityNotReadyToWin
        elif not contract_reference.strip():
            error = InvalidValue
        was_open = not self.live.is_closed
        self.attempt(lambda o: o.win(amount, contract_reference), error, True)
        if was_open and error is None:
            assert (self.live.stage, self.live.amount) == ("won", amount)

    @rule(reason=short_text | blank, competitor=st.none() | names)
    def lose(self, reason: str, competitor: str | None) -> None:
        error = None if reason.strip() else InvalidValue
        self.attempt(lambda o: o.lose(reason, competitor), error, True)

    @rule()
    def reopen(self) -> None:
        lost_from = self.live.lost_from_stage
        error = None if self.live.stage == "lost" else OpportunityNotLost
        self.run(lambda o: o.reopen(), error, True)
        if lost_from is not None:
            assert self.live.stage == lost_from

    @invariant()
    def version_counts_the_recorded_events(self) -> None:
        if self.opportunity is not None:
            versions = [e.originator_version for e in self.live.pending_events]
            assert versions == list(range(1, self.live.version + 1))

    @invariant()
    def the_stage_is_always_in_the_pipeline_and_its_history(self) -> None:
        if self.opportunity is None:
            return
        assert self.live.stage in STAGES
        assert self.live.is_closed == (self.live.stage in ("won", "lost"))
        assert (self.live.lost_from_stage is not None) == (self.live.stage == "lost")
        last = self.live.stage_history[-1]
        assert (last.stage, last.entered_at) == (self.live.stage, self.live.stage_entered_at)

    @invariant()
    def the_chance_of_winning_matches_the_stage(self) -> None:
        if self.opportunity is None:
            return
        stage = self.live.stage
        assert self.live.probability() == DEFAULT_STAGE_PROBABILITIES[stage]
        assert self.live.probability(CONFIGURED_PROBABILITIES) == CONFIGURED_PROBABILITIES[stage]

    @invariant()
    def the_stored_history_rebuilds_the_same_opportunity(self) -> None:
        if self.opportunity is not None:
            rebuilt = given(*through_store(self.live.pending_events))
            assert rebuilt.state() == self.live.state()


OpportunityMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
test_opportunity_commands_keep_the_invariants = OpportunityMachine.TestCase
