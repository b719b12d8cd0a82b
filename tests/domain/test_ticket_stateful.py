"""Random sequences of valid and invalid ticket commands keep the ticket's invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.shared import DomainError, FixedClock, command_context
from domain.sla import DEFAULT_CALENDAR, DEFAULT_POLICY, Priority, SlaPolicy, SlaTarget
from domain.ticket import (
    REOPEN_WINDOW,
    Channel,
    ClosedTicketCannotBeReopened,
    CsatScoreOutOfRange,
    EscalationLevelOutOfRange,
    InvalidTicketValue,
    SlaClockRestarted,
    Ticket,
    TicketAlreadyRated,
    TicketCannotBeDeEscalated,
    TicketClosed,
    TicketFirstResponded,
    TicketNotActive,
    TicketNotResolved,
    TicketNotWaitingOnCustomer,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketRated,
    TicketReopened,
    TicketReopenWindowExpired,
    TicketResolved,
    TicketResumed,
)
from tests.domain.scenario import ACTOR, MONDAY_9AM, given, through_store
from tests.strategies import owners, short_text

H = timedelta(hours=1)
URGENT_POLICY = SlaPolicy(
    version="2026.2-urgent",
    targets={p: SlaTarget(first_response=H / 2, resolution=2 * H) for p in Priority},
)
policies = st.sampled_from((DEFAULT_POLICY, URGENT_POLICY))
priorities = st.sampled_from((*Priority, "P0", "urgent"))
blank = st.sampled_from(("", "   "))
ACTIVE = ("open", "waiting_on_customer")

# Which status each event may follow, and the status it leaves the ticket in.
TRANSITIONS: dict[type, tuple[tuple[str, ...], str | None]] = {
    TicketPausedForCustomer: (("open",), "waiting_on_customer"),
    TicketResumed: (("waiting_on_customer",), "open"),
    TicketResolved: (ACTIVE, "resolved"),
    TicketClosed: (("resolved",), "closed"),
    TicketReopened: (("resolved",), "open"),
    TicketRated: (("resolved", "closed"), None),
}


class TicketMachine(RuleBasedStateMachine):
    """Drives one ticket with random commands, predicting each outcome from a small model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(MONDAY_9AM)
        self.ticket: Ticket | None = None
        # the model: what the rules say the ticket should be
        self.status = "open"
        self.level = 0
        self.rated = False
        self.assignee: tuple[str, str | None] | None = None
        self.priority = Priority.P4
        self.policy = DEFAULT_POLICY
        self.responded_due: datetime | None = None  # the first response due when it was given
        self.resolved_at: datetime | None = None
        self.stopped_since: datetime | None = None  # the SLA clock is stopped since
        self.paused = timedelta(0)

    @initialize(
        ticket_id=st.uuids(),
        customer_id=st.uuids(),
        channel=st.sampled_from(Channel),
        subject=short_text,
        priority=st.sampled_from(Priority),
        policy=policies,
        opened_after=st.integers(min_value=0, max_value=60 * 24 * 7),
    )
    def open(
        self,
        ticket_id: UUID,
        customer_id: UUID,
        channel: Channel,
        subject: str,
        priority: Priority,
        policy: SlaPolicy,
        opened_after: int,
    ) -> None:
        self.clock.advance(minutes=opened_after)  # some tickets arrive at night or at weekends
        with command_context(actor=ACTOR, clock=self.clock):
            self.ticket = Ticket.open(
                ticket_id,
                customer_id,
                channel,
                subject,
                "",
                priority,
                "general",
                policy,
                DEFAULT_CALENDAR,
            )
        self.priority, self.policy = priority, policy

    @property
    def live(self) -> Ticket:
        assert self.ticket is not None
        return self.ticket

    def attempt(
        self,
        command: Callable[[Ticket], Any],
        error: type[DomainError] | None,
        records: bool | None = True,
    ) -> None:
        """Run `command`: expect `error` and no change, or one event (none if `records` is False,
        either if it is None)."""
        before, recorded = self.live.state(), len(self.live.pending_events)
        with command_context(actor=ACTOR, clock=self.clock):
            if error is None:
                command(self.live)
                new = len(self.live.pending_events) - recorded
                assert new in ((0, 1) if records is None else (int(records),))
                if not new:
                    assert self.live.state() == before
                return
            with pytest.raises(error) as raised:
                command(self.live)
        assert getattr(raised.value, "ticket_id", None) == self.live.id
        assert self.live.state() == before
        assert len(self.live.pending_events) == recorded

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def sla_clock(self) -> datetime:
        return self.stopped_since or self.clock.now()

    def restart_sla_clock(self) -> None:
        assert self.stopped_since is not None
        self.paused += DEFAULT_CALENDAR.business_time_between(self.stopped_since, self.clock.now())
        self.stopped_since = None

    @rule(
        minutes=st.integers(min_value=1, max_value=60 * 24 * 3)
        | st.sampled_from((60 * 24 * 14, 60 * 24 * 14 + 1))
    )
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(agent=owners | blank, team=st.none() | st.sampled_from(("l1", "l2")))
    def assign(self, agent: str, team: str | None) -> None:
        error = (
            InvalidTicketValue if not agent.strip() else None if self.active else TicketNotActive
        )
        self.attempt(lambda t: t.assign(agent, team), error, (agent, team) != self.assignee)
        if error is None:
            self.assignee = (agent, team)

    @rule()
    def record_first_response(self) -> None:
        error = None if self.active else TicketNotActive
        due = self.live.first_response_due
        self.attempt(lambda t: t.record_first_response(), error, self.responded_due is None)
        if error is None and self.responded_due is None:
            self.responded_due = due
            assert self.live.first_response_met == (self.sla_clock() <= due)

    @rule()
    def wait_on_customer(self) -> None:
        error = None if self.active else TicketNotActive
        waiting = self.status == "waiting_on_customer"
        self.attempt(lambda t: t.wait_on_customer(), error, not waiting)
        if error is None and not waiting:
            self.status, self.stopped_since = "waiting_on_customer", self.clock.now()

    @rule()
    def resume(self) -> None:
        waiting = self.status == "waiting_on_customer"
        self.attempt(
            lambda t: t.resume(DEFAULT_CALENDAR), None if waiting else TicketNotWaitingOnCustomer
        )
        if waiting:
            self.status = "open"
            self.restart_sla_clock()

    @rule(level=st.integers(min_value=-1, max_value=4), reason=short_text)
    def escalate(self, level: int, reason: str) -> None:
        error: type[DomainError] | None = None
        if not 1 <= level <= 3:
            error = EscalationLevelOutOfRange
        elif not self.active:
            error = TicketNotActive
        elif level < self.level:
            error = TicketCannotBeDeEscalated
        self.attempt(lambda t: t.escalate(level, reason), error, level != self.level)
        if error is None:
            self.level = level

    @rule(priority=priorities, policy=policies)
    def change_priority(self, priority: str, policy: SlaPolicy) -> None:
        error: type[DomainError] | None = None
        if priority not in tuple(Priority):
            error = InvalidTicketValue
        elif not self.active:
            error = TicketNotActive
        changes = priority != self.priority
        self.attempt(
            lambda t: t.change_priority(priority, policy, DEFAULT_CALENDAR), error, changes
        )
        if error is None and changes:
            self.priority, self.policy = Priority(priority), policy

    @rule(resolution=short_text | blank)
    def resolve(self, resolution: str) -> None:
        error: type[DomainError] | None = None
        if not resolution.strip():
            error = InvalidTicketValue
        elif self.status == "closed":
            error = TicketNotActive
        due = self.live.resolution_due
        self.attempt(lambda t: t.resolve(resolution), error, self.active)
        if error is None and self.active:
            assert self.live.resolution_met == (self.sla_clock() <= due)
            self.status, self.resolved_at = "resolved", self.clock.now()
            self.stopped_since = self.sla_clock()

    @rule()
    def close(self) -> None:
        error = TicketNotResolved if self.active else None
        self.attempt(lambda t: t.close(), error, self.status == "resolved")
        if error is None:
            self.status = "closed"

    @rule(minutes_later=st.sampled_from((0, 60 * 24 * 14, 60 * 24 * 14 + 1)))
    def reopen(self, minutes_later: int) -> None:
        self.clock.advance(minutes=minutes_later)  # the reopen window's edges, often
        error: type[DomainError] | None = None
        if self.status == "closed":
            error = ClosedTicketCannotBeReopened
        elif self.status == "resolved":
            assert self.resolved_at is not None
            if self.clock.now() - self.resolved_at > REOPEN_WINDOW:
                error = TicketReopenWindowExpired
        self.attempt(lambda t: t.reopen(DEFAULT_CALENDAR), error, self.status == "resolved")
        if error is None and self.status == "resolved":
            self.status, self.resolved_at = "open", None
            self.restart_sla_clock()

    @rule(score=st.integers(min_value=0, max_value=6), comment=st.just("") | short_text)
    def rate(self, score: int, comment: str) -> None:
        error: type[DomainError] | None = None
        if not 1 <= score <= 5:
            error = CsatScoreOutOfRange
        elif self.rated:
            error = TicketAlreadyRated
        elif self.active:
            error = TicketNotResolved
        self.attempt(lambda t: t.rate(score, comment), error)
        self.rated = self.rated or error is None

    @invariant()
    def the_ticket_is_where_the_rules_say(self) -> None:
        if self.ticket is None:
            return
        assert self.live.status == self.status
        assert (self.live.escalation_level, self.live.priority) == (self.level, self.priority)
        assert (self.live.csat_score is not None) == self.rated
        assert self.live.resolved_at == self.resolved_at
        assert self.live.sla_clock_stopped_at == self.stopped_since
        assert (self.stopped_since is None) == (self.status == "open")

    @invariant()
    def the_due_times_are_the_targets_from_opening_plus_the_business_time_paused(self) -> None:
        if self.ticket is None:
            return
        assert self.live.paused_business_time == self.paused
        target = self.policy.targets[self.priority]
        opened_at = self.live.created_on
        assert self.live.resolution_due == DEFAULT_CALENDAR.add_business_time(
            opened_at, target.resolution + self.paused
        )
        first_due = self.responded_due or DEFAULT_CALENDAR.add_business_time(
            opened_at, target.first_response + self.paused
        )
        assert self.live.first_response_due == first_due

    @invariant()
    def version_counts_the_recorded_events(self) -> None:
        if self.ticket is not None:
            versions = [e.originator_version for e in self.live.pending_events]
            assert versions == list(range(1, self.live.version + 1))

    @invariant()
    def the_history_follows_the_state_machine(self) -> None:
        if self.ticket is None:
            return
        opened, *later = self.live.pending_events
        assert isinstance(opened, TicketOpened)
        status = "open"
        for event in later:
            allowed_from, to = TRANSITIONS.get(type(event), (ACTIVE, None))
            assert status in allowed_from, (type(event).__name__, status)
            status = to or status
        assert sum(isinstance(e, TicketRated) for e in later) <= 1
        assert sum(isinstance(e, TicketFirstResponded) for e in later) <= 1

    @invariant()
    def pauses_never_bring_due_times_forward(self) -> None:
        if self.ticket is None:
            return
        opened, *later = self.live.pending_events
        assert isinstance(opened, TicketOpened)
        dues = (opened.first_response_due, opened.resolution_due)
        for event in later:
            if isinstance(event, SlaClockRestarted):
                assert event.paused >= timedelta(0)
                assert event.first_response_due >= dues[0]
                assert event.resolution_due >= dues[1]
            if isinstance(event, SlaClockRestarted | TicketPriorityChanged):
                dues = (event.first_response_due, event.resolution_due)

    @invariant()
    def the_stored_history_rebuilds_the_same_ticket(self) -> None:
        if self.ticket is not None:
            rebuilt = given(*through_store(self.live.pending_events))
            assert rebuilt.state() == self.live.state()


TicketMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_ticket_commands_keep_the_invariants = TicketMachine.TestCase
