"""Random sequences of valid and invalid task commands keep the task's invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.shared import DomainError, FixedClock, InvalidValue, command_context
from domain.task import Task, TaskAlreadyCancelled, TaskAlreadyCompleted, TaskCompleted
from tests.domain.scenario import ACTOR, MONDAY_9AM, given, through_store
from tests.strategies import owners, short_text

teams = st.sampled_from(("east-sales", "north-sales", "service"))
blank = st.sampled_from(("", "   "))
texts = short_text.filter(lambda s: "\x00" not in s)  # NUL is refused by domain.values


class TaskMachine(RuleBasedStateMachine):
    """Drives one task with random commands, checking each outcome and the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(MONDAY_9AM)
        self.task: Task | None = None
        self.closed_state: dict[str, Any] | None = None

    @initialize(
        task_id=st.uuids(),
        related_id=st.uuids(),
        assignee=st.none() | owners,
        team=teams,
        due_in_hours=st.integers(min_value=-48, max_value=48),
    )
    def create(
        self, task_id: Any, related_id: Any, assignee: str | None, team: str, due_in_hours: int
    ) -> None:
        with command_context(actor=ACTOR, clock=self.clock):
            self.task = Task.create(
                task_id=task_id,
                title="Follow up",
                team=team,
                assignee=assignee,
                related_kind="lead",
                related_id=related_id,
                due_at=MONDAY_9AM + timedelta(hours=due_in_hours),
            )

    @property
    def live(self) -> Task:
        assert self.task is not None
        return self.task

    def attempt(
        self, command: Callable[[Task], Any], error: type[DomainError] | None, records: bool
    ) -> None:
        """Run `command`: it records one event or none, or raises `error` and records nothing."""
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

    def closed_error(self) -> type[DomainError] | None:
        return {"completed": TaskAlreadyCompleted, "cancelled": TaskAlreadyCancelled}.get(
            self.live.status
        )

    @rule(minutes=st.integers(min_value=1, max_value=60 * 24))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(assignee=st.none() | owners | blank, team=st.none() | teams | blank)
    def reassign(self, assignee: str | None, team: str | None) -> None:
        error = self.closed_error()
        if error is None and team is not None and not team.strip():
            error = InvalidValue
        new_assignee = (assignee or "").strip() or None
        new_team = self.live.team if team is None else team.strip()
        changes = (new_assignee, new_team) != (self.live.assignee, self.live.team)
        self.attempt(lambda t: t.reassign(assignee, team), error, changes)

    @rule(note=st.none() | texts)
    def complete(self, note: str | None) -> None:
        error = TaskAlreadyCancelled if self.live.status == "cancelled" else None
        self.attempt(lambda t: t.complete(note), error, self.live.status == "open")

    @rule(reason=texts | blank)
    def cancel(self, reason: str) -> None:
        error: type[DomainError] | None = None
        if self.live.status == "completed":
            error = TaskAlreadyCompleted
        elif not reason.strip():
            error = InvalidValue
        self.attempt(lambda t: t.cancel(reason), error, self.live.status == "open")

    @invariant()
    def overdue_means_open_and_past_the_due_time(self) -> None:
        if self.task is not None:
            now = self.clock.now()
            assert self.live.is_overdue(now) == (
                self.live.status == "open" and now > self.live.due_at
            )

    @invariant()
    def a_closed_task_never_changes_again(self) -> None:
        if self.task is None or self.live.status == "open":
            return
        assert self.live.closed_at is not None
        if self.closed_state is None:
            self.closed_state = self.live.state()
        assert self.live.state() == self.closed_state

    @invariant()
    def it_is_completed_at_most_once(self) -> None:
        if self.task is not None:
            completed = [e for e in self.live.pending_events if isinstance(e, TaskCompleted)]
            assert len(completed) <= 1

    @invariant()
    def the_stored_history_rebuilds_the_same_task(self) -> None:
        if self.task is not None:
            rebuilt = given(*through_store(self.live.pending_events))
            assert rebuilt.state() == self.live.state()
            assert self.live.version == len(self.live.pending_events)


TaskMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_task_commands_keep_the_invariants = TaskMachine.TestCase
