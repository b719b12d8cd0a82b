"""Ticket rules: given events, when a command runs, then these events (or this error)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from domain.shared import (
    EVENT_TYPES,
    DomainError,
    FixedClock,
    Snapshot,
    command_context,
    current_context,
)
from domain.sla import DEFAULT_CALENDAR, DEFAULT_POLICY, Priority, SlaPolicy, SlaTarget
from domain.ticket import (
    REOPEN_WINDOW,
    ClosedTicketCannotBeReopened,
    CsatScoreOutOfRange,
    EscalationLevelOutOfRange,
    InvalidTicketValue,
    Ticket,
    TicketAlreadyRated,
    TicketAssigned,
    TicketCannotBeDeEscalated,
    TicketClosed,
    TicketEscalated,
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
    TicketSlaAtRisk,
    TicketSlaBreached,
)
from infra.mapper import OrjsonTranscoder, PydanticMapper
from tests.domain.scenario import MONDAY_9AM, given, history, payload, through_store, when

TICKET_ID = UUID("00000000-0000-4000-8000-0000000000e1")
CUSTOMER_ID = UUID("00000000-0000-4000-8000-0000000000c1")
SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
ZERO = timedelta(0)
URGENT_POLICY = SlaPolicy(
    version="2026.2-urgent",
    targets={p: SlaTarget(first_response=H / 2, resolution=2 * H) for p in Priority},
)


def local(*args: int) -> datetime:
    """A Shanghai wall-clock time (MONDAY_9AM is local(2026, 3, 2, 9))."""
    return datetime(*args, tzinfo=SHANGHAI)


def open_ticket(**changes: Any) -> Ticket:
    fields: dict[str, Any] = {
        "ticket_id": TICKET_ID,
        "customer_id": CUSTOMER_ID,
        "channel": "wechat",
        "subject": "Invoice PDF is blank",
        "description": "The March invoice downloads as an empty page.",
        "priority": "P2",  # first response due 13:00, resolution due 18:00 on Monday
        "category": "billing",
        "policy": DEFAULT_POLICY,
        "calendar": DEFAULT_CALENDAR,
    }
    return Ticket.open(**(fields | changes))


def a_ticket(*commands: Callable[[Ticket], Any], clock: FixedClock | None = None) -> Ticket:
    """The ticket built from the events that opening it and then `commands` record."""
    ticket: Ticket = given(*history(open_ticket, *commands, clock=clock))
    return ticket


def wait(**delta: float) -> Callable[[Ticket], Any]:
    """A step in a history that only lets time pass (on the clock the history runs with)."""

    def passes(_: Ticket) -> None:
        clock = current_context().clock
        assert isinstance(clock, FixedClock)
        clock.advance(**delta)

    return passes


def at(*args: int) -> FixedClock:
    return FixedClock(local(*args).astimezone(UTC))


def rejects(
    ticket: Ticket,
    command: Callable[[Ticket], Any],
    error: type[DomainError],
    clock: FixedClock | None = None,
) -> DomainError:
    """Run `command`, expect `error` naming this ticket, and check nothing was recorded."""
    with pytest.raises(error) as raised:
        when(ticket, command, clock=clock)
    assert ticket.pending_events == []
    assert getattr(raised.value, "ticket_id", None) == TICKET_ID
    assert raised.value.context["ticket_id"] == str(TICKET_ID)
    return raised.value


def responded(ticket: Ticket) -> None:
    ticket.record_first_response()


def waiting(ticket: Ticket) -> None:
    ticket.wait_on_customer()


def resumed(ticket: Ticket) -> None:
    ticket.resume(DEFAULT_CALENDAR)


def resolved(ticket: Ticket) -> None:
    ticket.resolve("Regenerated the invoice")


def closed(ticket: Ticket) -> None:
    ticket.resolve("Regenerated the invoice")
    ticket.close()


def kinds(events: list[Any]) -> list[type]:
    return [type(e) for e in events]


# --- opening -----------------------------------------------------------------------------------


def test_opening_records_the_request_the_policy_version_and_the_due_times() -> None:
    with command_context(clock=FixedClock(MONDAY_9AM)):
        ticket = open_ticket()
    [event] = ticket.pending_events
    assert isinstance(event, TicketOpened)
    assert payload(event) == {
        "customer_id": CUSTOMER_ID,
        "channel": "wechat",
        "subject": "Invoice PDF is blank",
        "description": "The March invoice downloads as an empty page.",
        "category": "billing",
        "priority": "P2",
        "sla_policy_version": "2026.1",
        "first_response_due": local(2026, 3, 2, 13),
        "resolution_due": local(2026, 3, 2, 18),
    }
    assert (ticket.status, ticket.version, ticket.created_on) == ("open", 1, MONDAY_9AM)


def test_a_ticket_opened_on_friday_night_is_due_from_monday_opening() -> None:
    with command_context(clock=at(2026, 3, 6, 23)):
        ticket = open_ticket(priority="P1")
    assert (ticket.first_response_due, ticket.resolution_due) == (
        local(2026, 3, 9, 10),
        local(2026, 3, 9, 13),
    )


def test_opening_under_another_policy_records_that_policy_and_its_targets() -> None:
    with command_context(clock=FixedClock(MONDAY_9AM)):
        ticket = open_ticket(policy=URGENT_POLICY)
    assert ticket.sla_policy_version == "2026.2-urgent"
    assert ticket.first_response_due == local(2026, 3, 2, 9, 30)


@pytest.mark.parametrize(
    "bad", [{"channel": "carrier_pigeon"}, {"priority": "P5"}, {"priority": 2}, {"subject": " "}]
)
def test_malformed_opening_details_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidTicketValue) as raised:
        open_ticket(**bad)
    assert raised.value.field_name == next(iter(bad))
    assert raised.value.ticket_id == TICKET_ID


# --- assignment --------------------------------------------------------------------------------


def test_assigning_records_the_agent_and_team() -> None:
    ticket = a_ticket()
    events = when(ticket, lambda t: t.assign("user:chen", "billing-l1"))
    assert kinds(events) == [TicketAssigned]
    assert payload(events[0]) == {"agent": "user:chen", "team": "billing-l1"}
    assert (ticket.agent, ticket.team) == ("user:chen", "billing-l1")


def test_assigning_the_same_agent_and_team_again_records_nothing() -> None:
    ticket = a_ticket(lambda t: t.assign("user:chen", "billing-l1"))
    assert when(ticket, lambda t: t.assign("user:chen", "billing-l1")) == []


def test_assigning_a_blank_agent_is_rejected() -> None:
    rejects(a_ticket(), lambda t: t.assign("  "), InvalidTicketValue)


@pytest.mark.parametrize("done", [resolved, closed])
def test_assigning_a_resolved_or_closed_ticket_is_rejected(done: Callable[[Ticket], Any]) -> None:
    error = rejects(a_ticket(done), lambda t: t.assign("user:chen"), TicketNotActive)
    assert error.context["status"] in ("resolved", "closed")


# --- first response ----------------------------------------------------------------------------


def test_a_first_response_before_its_due_time_is_recorded_as_met() -> None:
    events = when(a_ticket(), responded, clock=at(2026, 3, 2, 13))
    assert kinds(events) == [TicketFirstResponded]
    assert payload(events[0]) == {"met_due": True}


def test_a_first_response_after_its_due_time_is_recorded_as_missed() -> None:
    ticket = a_ticket()
    assert payload(when(ticket, responded, clock=at(2026, 3, 2, 13, 1))[0]) == {"met_due": False}
    assert (ticket.first_responded_at, ticket.first_response_met) == (
        local(2026, 3, 2, 13, 1),
        False,
    )


def test_the_first_response_is_recorded_once() -> None:
    ticket = a_ticket(responded)
    assert when(ticket, responded, clock=at(2026, 3, 3, 9)) == []
    assert ticket.first_response_met is True


def test_a_first_response_while_waiting_on_the_customer_is_judged_when_the_clock_stopped() -> None:
    ticket = a_ticket(waiting)  # the SLA clock stopped at 09:00
    assert payload(when(ticket, responded, clock=at(2026, 3, 4, 9))[0]) == {"met_due": True}


def test_responding_to_a_resolved_ticket_is_rejected() -> None:
    rejects(a_ticket(resolved), responded, TicketNotActive)


# --- waiting on the customer -------------------------------------------------------------------


def test_waiting_on_the_customer_stops_the_sla_clock() -> None:
    ticket = a_ticket()
    events = when(ticket, waiting, clock=at(2026, 3, 2, 10))
    assert kinds(events) == [TicketPausedForCustomer]
    assert payload(events[0]) == {}
    assert (ticket.status, ticket.sla_clock_stopped_at) == (
        "waiting_on_customer",
        local(2026, 3, 2, 10),
    )


def test_waiting_on_the_customer_twice_records_nothing() -> None:
    ticket = a_ticket(waiting)
    assert when(ticket, waiting, clock=at(2026, 3, 2, 11)) == []
    assert ticket.sla_clock_stopped_at == MONDAY_9AM


def test_resuming_pushes_the_due_times_back_by_the_business_time_paused() -> None:
    ticket = a_ticket(wait(hours=1), waiting, clock=FixedClock(MONDAY_9AM))  # paused at 10:00
    events = when(ticket, resumed, clock=at(2026, 3, 2, 12))
    assert kinds(events) == [TicketResumed]
    assert payload(events[0]) == {
        "paused": 2 * H,
        "first_response_due": local(2026, 3, 2, 15),
        "resolution_due": local(2026, 3, 3, 11),
    }
    assert (ticket.status, ticket.sla_clock_stopped_at, ticket.paused_business_time) == (
        "open",
        None,
        2 * H,
    )


def test_a_pause_over_the_weekend_counts_only_its_business_hours() -> None:
    ticket = a_ticket(wait(days=4, hours=8), waiting, clock=FixedClock(MONDAY_9AM))  # Fri 17:00
    events = when(ticket, resumed, clock=at(2026, 3, 9, 10))
    assert payload(events[0])["paused"] == 2 * H
    assert ticket.resolution_due == local(2026, 3, 3, 11)


def test_resuming_after_the_first_response_leaves_its_due_time_alone() -> None:
    ticket = a_ticket(responded, waiting)
    events = when(ticket, resumed, clock=at(2026, 3, 2, 11))
    assert payload(events[0])["first_response_due"] == local(2026, 3, 2, 13)
    assert payload(events[0])["resolution_due"] == local(2026, 3, 3, 11)


@pytest.mark.parametrize("state", [responded, resolved])
def test_resuming_a_ticket_that_is_not_waiting_is_rejected(state: Callable[[Ticket], Any]) -> None:
    error = rejects(a_ticket(state), resumed, TicketNotWaitingOnCustomer)
    assert error.context["status"] in ("open", "resolved")


def test_waiting_on_the_customer_for_a_resolved_ticket_is_rejected() -> None:
    rejects(a_ticket(resolved), waiting, TicketNotActive)


# --- escalation --------------------------------------------------------------------------------


def test_escalating_records_the_level_and_the_reason() -> None:
    ticket = a_ticket()
    events = when(ticket, lambda t: t.escalate(2, "VIP customer"))
    assert kinds(events) == [TicketEscalated]
    assert payload(events[0]) == {"level": 2, "reason": "VIP customer"}
    assert ticket.escalation_level == 2


def test_escalating_to_the_current_level_records_nothing() -> None:
    ticket = a_ticket(lambda t: t.escalate(2, "VIP customer"))
    assert when(ticket, lambda t: t.escalate(2, "still VIP")) == []


def test_de_escalating_a_ticket_is_rejected() -> None:
    ticket = a_ticket(lambda t: t.escalate(3, "outage"))
    error = rejects(ticket, lambda t: t.escalate(1, "calmer now"), TicketCannotBeDeEscalated)
    assert (error.context["current"], error.context["level"]) == (3, 1)


@pytest.mark.parametrize("level", [0, 4])
def test_escalation_levels_outside_1_to_3_are_rejected(level: int) -> None:
    rejects(a_ticket(), lambda t: t.escalate(level, "?"), EscalationLevelOutOfRange)


def test_escalating_a_closed_ticket_is_rejected() -> None:
    rejects(a_ticket(closed), lambda t: t.escalate(1, "angry"), TicketNotActive)


# --- SLA warnings and breaches (recorded by the SLA escalation saga) ----------------------------


def test_a_breach_records_the_measure_and_the_due_time_missed() -> None:
    ticket = a_ticket()
    due = ticket.first_response_due
    events = when(ticket, lambda t: t.record_sla_breach("first_response", due))
    assert kinds(events) == [TicketSlaBreached]
    assert ticket.sla_breached == {"first_response": due}


def test_a_warning_records_the_measure_and_the_due_time_at_risk() -> None:
    ticket = a_ticket()
    due = ticket.resolution_due
    events = when(ticket, lambda t: t.flag_sla_at_risk("resolution", due))
    assert kinds(events) == [TicketSlaAtRisk]
    assert ticket.sla_at_risk == {"resolution": due}


def test_the_same_breach_or_warning_again_records_nothing_but_a_new_due_time_does() -> None:
    first = a_ticket().first_response_due
    ticket = a_ticket(
        lambda t: t.flag_sla_at_risk("first_response", first),
        lambda t: t.record_sla_breach("first_response", first),
    )
    assert when(ticket, lambda t: t.flag_sla_at_risk("first_response", first)) == []
    assert when(ticket, lambda t: t.record_sla_breach("first_response", first)) == []
    later = first + H
    events = when(ticket, lambda t: t.record_sla_breach("first_response", later))
    assert kinds(events) == [TicketSlaBreached]


def test_a_breach_of_a_resolved_ticket_or_of_an_unknown_measure_is_rejected() -> None:
    due = a_ticket().resolution_due
    rejects(a_ticket(resolved), lambda t: t.record_sla_breach("resolution", due), TicketNotActive)
    rejects(a_ticket(), lambda t: t.flag_sla_at_risk("lunch", due), InvalidTicketValue)


# --- priority ----------------------------------------------------------------------------------


def change_to(priority: str, policy: SlaPolicy = DEFAULT_POLICY) -> Callable[[Ticket], Any]:
    return lambda t: t.change_priority(priority, policy, DEFAULT_CALENDAR)


def test_changing_priority_recomputes_the_due_times_from_the_opening() -> None:
    ticket = a_ticket()
    events = when(ticket, change_to("P1", URGENT_POLICY), clock=at(2026, 3, 2, 9, 20))
    assert kinds(events) == [TicketPriorityChanged]
    assert payload(events[0]) == {
        "priority": "P1",
        "sla_policy_version": "2026.2-urgent",
        "first_response_due": local(2026, 3, 2, 9, 30),
        "resolution_due": local(2026, 3, 2, 11),
    }
    assert (ticket.priority, ticket.sla_policy_version) == ("P1", "2026.2-urgent")


def test_changing_priority_keeps_the_time_already_paused() -> None:
    ticket = a_ticket(wait(hours=1), waiting, wait(hours=2), resumed, clock=FixedClock(MONDAY_9AM))
    events = when(ticket, change_to("P1"), clock=at(2026, 3, 2, 12))
    assert payload(events[0])["first_response_due"] == local(2026, 3, 2, 12)
    assert payload(events[0])["resolution_due"] == local(2026, 3, 2, 15)


def test_changing_priority_after_the_first_response_leaves_its_due_time_alone() -> None:
    ticket = a_ticket(responded)
    events = when(ticket, change_to("P4"))
    assert payload(events[0])["first_response_due"] == local(2026, 3, 2, 13)
    assert payload(events[0])["resolution_due"] == local(2026, 3, 6, 18)


def test_changing_to_the_same_priority_records_nothing() -> None:
    assert when(a_ticket(), change_to("P2", URGENT_POLICY)) == []


def test_changing_to_an_unknown_priority_is_rejected() -> None:
    rejects(a_ticket(), change_to("urgent"), InvalidTicketValue)


def test_changing_the_priority_of_a_resolved_ticket_is_rejected() -> None:
    rejects(a_ticket(resolved), change_to("P1"), TicketNotActive)


# --- resolution --------------------------------------------------------------------------------


def test_resolving_in_time_records_the_resolution_as_met() -> None:
    ticket = a_ticket()
    events = when(ticket, resolved, clock=at(2026, 3, 2, 18))
    assert kinds(events) == [TicketResolved]
    assert payload(events[0]) == {"resolution": "Regenerated the invoice", "met_due": True}
    assert (ticket.status, ticket.resolved_at, ticket.resolution_met) == (
        "resolved",
        local(2026, 3, 2, 18),
        True,
    )


def test_resolving_late_records_the_resolution_as_missed() -> None:
    assert payload(when(a_ticket(), resolved, clock=at(2026, 3, 3, 9, 1))[0])["met_due"] is False


def test_resolving_while_waiting_on_the_customer_is_judged_when_the_clock_stopped() -> None:
    ticket = a_ticket(waiting)
    assert payload(when(ticket, resolved, clock=at(2026, 3, 5, 9))[0])["met_due"] is True


def test_resolving_a_resolved_ticket_again_records_nothing() -> None:
    ticket = a_ticket(resolved)
    assert when(ticket, lambda t: t.resolve("Something else")) == []
    assert ticket.resolution == "Regenerated the invoice"


def test_a_blank_resolution_is_rejected() -> None:
    rejects(a_ticket(), lambda t: t.resolve(""), InvalidTicketValue)


def test_resolving_a_closed_ticket_is_rejected() -> None:
    rejects(a_ticket(closed), lambda t: t.resolve("again"), TicketNotActive)


# --- closing -----------------------------------------------------------------------------------


def test_closing_a_resolved_ticket_is_recorded() -> None:
    ticket = a_ticket(resolved)
    events = when(ticket, lambda t: t.close())
    assert kinds(events) == [TicketClosed]
    assert payload(events[0]) == {}
    assert ticket.status == "closed"


@pytest.mark.parametrize("state", [responded, waiting])
def test_closing_an_unresolved_ticket_is_rejected(state: Callable[[Ticket], Any]) -> None:
    rejects(a_ticket(state), lambda t: t.close(), TicketNotResolved)


def test_closing_a_closed_ticket_again_records_nothing() -> None:
    assert when(a_ticket(closed), lambda t: t.close()) == []


# --- reopening ---------------------------------------------------------------------------------


def reopened(ticket: Ticket) -> None:
    ticket.reopen(DEFAULT_CALENDAR)


def test_reopening_pushes_the_due_times_back_by_the_business_time_spent_resolved() -> None:
    ticket = a_ticket(wait(hours=1), resolved, clock=FixedClock(MONDAY_9AM))  # resolved at 10:00
    events = when(ticket, reopened, clock=at(2026, 3, 3, 10))
    assert kinds(events) == [TicketReopened]
    assert payload(events[0]) == {
        "paused": 9 * H,
        "first_response_due": local(2026, 3, 3, 13),
        "resolution_due": local(2026, 3, 3, 18),
    }
    assert (ticket.status, ticket.resolved_at, ticket.resolution) == ("open", None, None)


def test_a_ticket_resolved_while_waiting_on_the_customer_stays_paused_since_the_wait() -> None:
    ticket = a_ticket(wait(hours=1), waiting, wait(hours=2), resolved, clock=FixedClock(MONDAY_9AM))
    events = when(ticket, reopened, clock=at(2026, 3, 2, 13))  # stopped 10:00 to 13:00
    assert payload(events[0]) == {
        "paused": 3 * H,
        "first_response_due": local(2026, 3, 2, 16),
        "resolution_due": local(2026, 3, 3, 12),
    }


def test_reopening_a_ticket_fourteen_days_after_its_resolution_is_accepted() -> None:
    clock = FixedClock(MONDAY_9AM)
    ticket = a_ticket(resolved, clock=clock)
    assert kinds(when(ticket, reopened, clock=FixedClock(MONDAY_9AM + REOPEN_WINDOW))) == [
        TicketReopened
    ]


def test_reopening_a_ticket_after_fourteen_days_is_rejected() -> None:
    assert timedelta(days=14) == REOPEN_WINDOW
    ticket = a_ticket(resolved)
    late = FixedClock(MONDAY_9AM + REOPEN_WINDOW + timedelta(seconds=1))
    error = rejects(ticket, reopened, TicketReopenWindowExpired, clock=late)
    assert error.context["resolved_at"] == MONDAY_9AM


def test_reopening_a_closed_ticket_is_rejected() -> None:
    rejects(a_ticket(closed), reopened, ClosedTicketCannotBeReopened)


def test_reopening_an_open_ticket_records_nothing() -> None:
    assert when(a_ticket(waiting), reopened) == []


# --- rating ------------------------------------------------------------------------------------


@pytest.mark.parametrize("done", [resolved, closed])
def test_rating_a_resolved_or_closed_ticket_records_the_score(
    done: Callable[[Ticket], Any],
) -> None:
    ticket = a_ticket(done)
    events = when(ticket, lambda t: t.rate(5, "Fast and friendly"))
    assert kinds(events) == [TicketRated]
    assert payload(events[0]) == {"score": 5, "comment": "Fast and friendly"}
    assert ticket.csat_score == 5


def test_rating_an_unresolved_ticket_is_rejected() -> None:
    rejects(a_ticket(responded), lambda t: t.rate(4), TicketNotResolved)


def test_rating_a_ticket_twice_is_rejected() -> None:
    ticket = a_ticket(resolved, lambda t: t.rate(2))
    error = rejects(ticket, lambda t: t.rate(2), TicketAlreadyRated)
    assert error.context["score"] == 2


@pytest.mark.parametrize("score", [0, 6])
def test_scores_outside_1_to_5_are_rejected(score: int) -> None:
    rejects(a_ticket(resolved), lambda t: t.rate(score), CsatScoreOutOfRange)


# --- storage -----------------------------------------------------------------------------------


def test_every_ticket_event_round_trips_through_the_store() -> None:
    events = history(
        open_ticket,
        lambda t: t.assign("user:chen", None),
        waiting,
        wait(hours=3),
        resumed,
        responded,
        lambda t: t.escalate(1, "VIP"),
        change_to("P3"),
        lambda t: t.flag_sla_at_risk("resolution", t.resolution_due),
        lambda t: t.record_sla_breach("resolution", t.resolution_due),
        resolved,
        wait(days=1),
        reopened,
        closed,
        lambda t: t.rate(4, "ok"),
        clock=FixedClock(MONDAY_9AM),
    )
    ticket_types = {cls for name, cls in EVENT_TYPES.items() if name.startswith("crm.ticket.")}
    assert set(kinds(events)) == ticket_types
    assert through_store(events) == events
    ticket = given(*through_store(events))
    assert ticket.state() == given(*events).state()
    [snapshot] = through_store([Snapshot.take(ticket)])
    assert snapshot.mutate(None).state() == ticket.state()


def v1_opened(priority: int, **extra: Any) -> StoredEvent:
    """A `crm.ticket.opened` event as the v1 draft schema stored it."""
    state = {
        "timestamp": "2025-11-03T02:00:00Z",
        "actor": "user:legacy",
        "correlation_id": "00000000-0000-4000-8000-00000000c0de",
        "causation_id": None,
        "customer_id": str(CUSTOMER_ID),
        "channel": "email",
        "subject": "Cannot log in",
        "description": "",
        "priority": priority,
        "first_response_due": "2025-11-03T06:00:00Z",
        "resolution_due": "2025-11-04T02:00:00Z",
    } | extra
    return StoredEvent(
        originator_id=TICKET_ID,
        originator_version=1,
        topic="crm.ticket.opened.v1",
        state=orjson.dumps(state),
    )


def test_a_v1_opened_event_is_upcast_to_the_current_schema() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    event = mapper.to_domain_event(v1_opened(3))
    assert isinstance(event, TicketOpened)
    assert (event.priority, event.sla_policy_version, event.category) == (
        Priority.P3,
        "legacy-v1",
        "uncategorised",
    )
    assert event.first_response_due == datetime(2025, 11, 3, 6, tzinfo=UTC)
    ticket = given(event)
    assert (ticket.id, ticket.priority, ticket.status, ticket.version) == (
        TICKET_ID,
        "P3",
        "open",
        1,
    )
    assert mapper.to_stored_event(event).topic == "crm.ticket.opened.v2"


def test_a_v1_ticket_keeps_working_and_its_history_is_stored_as_v2() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    opened = mapper.to_domain_event(v1_opened(1, category="access"))
    ticket = given(opened)
    assert ticket.category == "access"
    events = when(ticket, change_to("P2"), clock=FixedClock(datetime(2025, 11, 3, 3, tzinfo=UTC)))
    assert payload(events[0])["resolution_due"] == datetime(2025, 11, 4, 2, tzinfo=UTC)
    rebuilt = given(*through_store([opened, *events]))
    assert rebuilt.state() == ticket.state()


def test_the_v1_upcaster_converts_priority_numbers_and_fills_what_v1_lacked() -> None:
    state: dict[str, Any] = {"priority": 4}
    TicketOpened.upcast_v1_v2(state)
    assert state == {
        "priority": "P4",
        "category": "uncategorised",
        "sla_policy_version": "legacy-v1",
    }
