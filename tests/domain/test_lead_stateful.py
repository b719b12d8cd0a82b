"""Random sequences of valid and invalid lead commands keep the lead's invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.lead import (
    ActivityKind,
    Channel,
    Lead,
    LeadActivityLogged,
    LeadAlreadyConverted,
    LeadIsDisqualified,
    LeadNeedsContactDetails,
    LeadNotQualified,
    LeadScoreOutOfRange,
)
from domain.shared import DomainError, FixedClock, InvalidValue, command_context
from tests.domain.scenario import ACTOR, MONDAY_9AM, given, through_store
from tests.strategies import cn_mobiles, emails, names, owners, regions, short_text

ACTIVITY_IDS = [UUID(int=n) for n in range(1, 5)]  # a small pool, so some are logged again
channels = st.sampled_from(get_args(Channel))
activity_kinds = st.sampled_from((*get_args(ActivityKind), "fax"))
blank = st.sampled_from(("", "   "))
scores = st.integers(min_value=-5, max_value=105)
aware_times = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2027, 1, 1),
    timezones=st.just(timezone(timedelta(hours=8))),
)


class LeadMachine(RuleBasedStateMachine):
    """Drives one lead with random commands, checking each outcome and the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(MONDAY_9AM)
        self.lead: Lead | None = None
        self.final_state: dict[str, Any] | None = None  # the state once converted

    @initialize(
        lead_id=st.uuids(),
        channel=channels,
        name=names,
        region=regions,
        email=st.none() | emails,
        phone=st.none() | cn_mobiles,
        company=st.none() | short_text,
    )
    def capture(
        self,
        lead_id: UUID,
        channel: Any,
        name: str,
        region: str,
        email: str | None,
        phone: str | None,
        company: str | None,
    ) -> None:
        def capture_lead(email: str | None) -> Lead:
            return Lead.capture(
                lead_id=lead_id,
                channel=channel,
                name=name,
                region=region,
                email=email,
                phone=phone,
                company=company,
            )

        with command_context(actor=ACTOR, clock=self.clock):
            if email is None and phone is None:
                with pytest.raises(LeadNeedsContactDetails):
                    capture_lead(email)
                email = "fallback@example.com"
            self.lead = capture_lead(email)

    @property
    def live(self) -> Lead:
        assert self.lead is not None
        return self.lead

    def attempt(
        self, command: Callable[[Lead], Any], error: type[DomainError] | None, records: bool
    ) -> None:
        """Run `command`: it records one event or (a no-op) none, or raises `error` and records
        nothing. A converted lead refuses every command before checking anything else."""
        if self.live.status == "converted":
            error = LeadAlreadyConverted
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

    @rule(minutes=st.integers(min_value=1, max_value=60 * 24 * 7))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(score=scores, reasons=st.lists(short_text, max_size=3))
    def score(self, score: int, reasons: list[str]) -> None:
        error = None if 0 <= score <= 100 else LeadScoreOutOfRange
        changes = (score, reasons) != (self.live.current_score, self.live.score_reasons)
        self.attempt(lambda lead: lead.score(score, reasons), error, changes)

    @rule(owner=owners | blank, rule_id=st.none() | st.sampled_from(("east", "vip")))
    def assign(self, owner: str, rule_id: str | None) -> None:
        error = InvalidValue if not owner.strip() else None
        changes = owner != self.live.owner
        self.attempt(lambda lead: lead.assign(owner, rule_id, "random"), error, changes)
        if error is None and self.live.status != "converted":
            assert self.live.owner == owner

    @rule(
        activity_id=st.sampled_from(ACTIVITY_IDS),
        kind=activity_kinds,
        summary=short_text | blank,
        occurred_at=st.none() | aware_times,
    )
    def log_activity(
        self, activity_id: UUID, kind: Any, summary: str, occurred_at: datetime | None
    ) -> None:
        valid = kind in get_args(ActivityKind) and summary.strip()
        self.attempt(
            lambda lead: lead.log_activity(activity_id, kind, summary, occurred_at),
            None if valid else InvalidValue,
            activity_id not in self.live.activity_ids,
        )

    @rule()
    def qualify(self) -> None:
        was = self.live.status
        error = LeadIsDisqualified if was == "disqualified" else None
        self.attempt(lambda lead: lead.qualify(), error, was == "open")

    @rule(reason=short_text | blank)
    def disqualify(self, reason: str) -> None:
        error = None if reason.strip() else InvalidValue
        self.attempt(
            lambda lead: lead.disqualify(reason), error, self.live.status != "disqualified"
        )

    @rule()
    def reopen(self) -> None:
        was = self.live.status
        self.attempt(lambda lead: lead.reopen(), None, was == "disqualified")
        assert self.live.status == ("open" if was == "disqualified" else was)

    @rule(customer_id=st.uuids(), opportunity_id=st.none() | st.uuids())
    def convert(self, customer_id: UUID, opportunity_id: UUID | None) -> None:
        was = self.live.status
        error = None if was == "qualified" else LeadNotQualified
        self.attempt(lambda lead: lead.convert(customer_id, opportunity_id), error, True)
        if was == "qualified":
            converted_to = (self.live.converted_customer_id, self.live.converted_opportunity_id)
            assert converted_to == (customer_id, opportunity_id)

    @invariant()
    def version_counts_the_recorded_events(self) -> None:
        if self.lead is not None:
            versions = [e.originator_version for e in self.lead.pending_events]
            assert versions == list(range(1, self.lead.version + 1))

    @invariant()
    def a_converted_lead_never_changes(self) -> None:
        if self.lead is None or self.lead.status != "converted":
            return
        assert self.lead.converted_customer_id is not None
        if self.final_state is None:
            self.final_state = self.lead.state()
        assert self.lead.state() == self.final_state

    @invariant()
    def the_state_agrees_with_the_status_and_the_activities(self) -> None:
        if self.lead is None:
            return
        assert self.live.status in ("open", "qualified", "disqualified", "converted")
        assert (self.live.disqualification_reason is not None) == (
            self.live.status == "disqualified"
        )
        assert (self.live.converted_customer_id is not None) == (self.live.status == "converted")
        logged = [e for e in self.live.pending_events if isinstance(e, LeadActivityLogged)]
        assert self.live.activity_ids == [e.activity_id for e in logged]
        assert self.live.last_activity_at == max((e.occurred_at for e in logged), default=None)

    @invariant()
    def the_stored_history_rebuilds_the_same_lead(self) -> None:
        if self.lead is not None:
            rebuilt = given(*through_store(self.lead.pending_events))
            assert rebuilt.state() == self.lead.state()


LeadMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_lead_commands_keep_the_invariants = LeadMachine.TestCase
