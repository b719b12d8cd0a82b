"""Lead rules: given events, when a command runs, then these events (or this error)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from domain.lead import (
    Lead,
    LeadActivityLogged,
    LeadAlreadyConverted,
    LeadAssigned,
    LeadCaptured,
    LeadConversionRequested,
    LeadConverted,
    LeadDisqualified,
    LeadIsDisqualified,
    LeadNeedsContactDetails,
    LeadNotQualified,
    LeadQualified,
    LeadReopened,
    LeadScored,
    LeadScoreOutOfRange,
)
from domain.shared import (
    EVENT_TYPES,
    DomainError,
    FixedClock,
    InvalidValue,
    Snapshot,
    command_context,
)
from tests.domain.scenario import MONDAY_9AM, given, history, payload, through_store, when

LEAD_ID = UUID("00000000-0000-4000-8000-00000000001e")
CUSTOMER_ID = UUID("00000000-0000-4000-8000-0000000000c1")
OPPORTUNITY_ID = UUID("00000000-0000-4000-8000-0000000000a1")
ACTIVITY_ID = UUID("00000000-0000-4000-8000-0000000000ac")
OTHER_ACTIVITY_ID = UUID("00000000-0000-4000-8000-0000000000ad")
SHANGHAI = timezone(timedelta(hours=8))


def capture(**changes: Any) -> Lead:
    fields: dict[str, Any] = {
        "lead_id": LEAD_ID,
        "channel": "web_form",
        "name": "Wang Fang",
        "region": "east",
        "email": "Wang.Fang@Example.COM",
        "phone": "138 0013 8000",
    }
    return Lead.capture(**(fields | changes))


def a_lead(*commands: Callable[[Lead], Any]) -> Lead:
    """The lead built from the events that capturing it and then `commands` record."""
    lead: Lead = given(*history(capture, *commands))
    return lead


def qualified(lead: Lead) -> None:
    lead.qualify()


def disqualified(lead: Lead) -> None:
    lead.disqualify("no budget")


def conversion_requested(lead: Lead) -> None:
    lead.qualify()
    lead.request_conversion()


def converted(lead: Lead) -> None:
    lead.qualify()
    lead.convert(CUSTOMER_ID, OPPORTUNITY_ID)


def rejects(lead: Lead, command: Callable[[Lead], Any], error: type[DomainError]) -> DomainError:
    """Run `command`, expect `error`, and check the lead recorded nothing."""
    with pytest.raises(error) as raised:
        when(lead, command)
    assert lead.pending_events == []
    return raised.value


# --- capture -----------------------------------------------------------------------------------


def test_capturing_records_normalised_contact_details_and_attribution() -> None:
    with command_context(clock=FixedClock(MONDAY_9AM)):
        lead = capture(
            channel="landing_page",
            company="  Acme Trading ",
            campaign="spring-expo",
            interest="ERP",
            utm_source="baidu",
            utm_medium="cpc",
            utm_campaign="spring",
            utm_term="crm software",
            utm_content="banner-a",
        )
    [event] = lead.pending_events
    assert isinstance(event, LeadCaptured)
    assert payload(event) == {
        "channel": "landing_page",
        "campaign": "spring-expo",
        "name": "Wang Fang",
        "company": "Acme Trading",
        "email": "wang.fang@example.com",
        "phone": "+8613800138000",
        "region": "east",
        "interest": "ERP",
        "utm_source": "baidu",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_term": "crm software",
        "utm_content": "banner-a",
    }
    assert (lead.status, lead.owner, lead.version) == ("open", None, 1)
    assert (lead.email, lead.phone) == ("wang.fang@example.com", "+8613800138000")


def test_a_lead_without_email_or_phone_is_rejected() -> None:
    with pytest.raises(LeadNeedsContactDetails) as raised:
        capture(email=None, phone=None)
    assert raised.value.lead_id == LEAD_ID


def test_blank_contact_fields_count_as_missing() -> None:
    with pytest.raises(LeadNeedsContactDetails):
        capture(email="  ", phone="")


@pytest.mark.parametrize("contact", [{"email": None}, {"phone": None}])
def test_one_way_to_reach_the_lead_is_enough(contact: dict[str, Any]) -> None:
    assert capture(**contact).status == "open"


def test_national_phone_numbers_are_read_in_the_given_region() -> None:
    lead = capture(phone="020 7946 0958", phone_region="GB")
    assert lead.phone == "+442079460958"


@pytest.mark.parametrize(
    "bad",
    [
        {"email": "not-an-email"},
        {"phone": "12345"},
        {"channel": "carrier_pigeon"},
        {"name": "   "},
        {"region": ""},
    ],
)
def test_malformed_capture_details_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue) as raised:
        capture(**bad)
    assert raised.value.field_name == next(iter(bad))


# --- scoring -----------------------------------------------------------------------------------


def test_scoring_records_the_score_and_its_reasons() -> None:
    lead = a_lead()
    events = when(lead, lambda lead: lead.score(80, ["budget confirmed", "decision maker"]))
    assert [type(e) for e in events] == [LeadScored]
    assert payload(events[0]) == {"score": 80, "reasons": ("budget confirmed", "decision maker")}
    assert (lead.current_score, lead.score_reasons) == (80, ["budget confirmed", "decision maker"])


@pytest.mark.parametrize("score", [0, 100])
def test_scores_at_the_ends_of_the_range_are_accepted(score: int) -> None:
    assert [type(e) for e in when(a_lead(), lambda lead: lead.score(score))] == [LeadScored]


@pytest.mark.parametrize("score", [-1, 101])
def test_scores_outside_0_to_100_are_rejected(score: int) -> None:
    error = rejects(a_lead(), lambda lead: lead.score(score), LeadScoreOutOfRange)
    assert error.context == {"lead_id": str(LEAD_ID), "score": score}


def test_scoring_again_with_the_same_score_and_reasons_records_nothing() -> None:
    lead = a_lead(lambda lead: lead.score(60, ["visited pricing"]))
    assert when(lead, lambda lead: lead.score(60, ["visited pricing"])) == []


def test_rescoring_with_other_reasons_is_recorded() -> None:
    lead = a_lead(lambda lead: lead.score(60, ["visited pricing"]))
    events = when(lead, lambda lead: lead.score(60, ["asked for a demo"]))
    assert [payload(e) for e in events] == [{"score": 60, "reasons": ("asked for a demo",)}]


# --- assignment --------------------------------------------------------------------------------


def test_assigning_records_the_owner_and_the_rule_that_chose_them() -> None:
    lead = a_lead()
    events = when(lead, lambda lead: lead.assign("user:chen", "east-round-robin", "east region"))
    assert [type(e) for e in events] == [LeadAssigned]
    assert payload(events[0]) == {
        "owner": "user:chen",
        "rule_id": "east-round-robin",
        "explanation": "east region",
    }
    assert lead.owner == "user:chen"


def test_assigning_the_same_owner_again_records_nothing() -> None:
    lead = a_lead(lambda lead: lead.assign("user:chen", None, "by hand"))
    assert when(lead, lambda lead: lead.assign("user:chen", "east-round-robin", "again")) == []


def test_assigning_a_blank_owner_is_rejected() -> None:
    rejects(a_lead(), lambda lead: lead.assign(" ", None, "nobody"), InvalidValue)


# --- activities --------------------------------------------------------------------------------


def test_logging_an_activity_records_when_it_happened() -> None:
    lead = a_lead()
    at = datetime(2026, 2, 27, 15, 30, tzinfo=SHANGHAI)
    events = when(lead, lambda lead: lead.log_activity(ACTIVITY_ID, "call", "Discussed needs", at))
    assert [type(e) for e in events] == [LeadActivityLogged]
    assert payload(events[0]) == {
        "activity_id": ACTIVITY_ID,
        "kind": "call",
        "summary": "Discussed needs",
        "occurred_at": at,
    }
    assert lead.last_activity_at == at


def test_an_activity_logged_without_a_time_happened_now() -> None:
    [event] = when(a_lead(), lambda lead: lead.log_activity(ACTIVITY_ID, "note", "Left a note"))
    assert isinstance(event, LeadActivityLogged)
    assert event.occurred_at == MONDAY_9AM


def test_logging_the_same_activity_twice_records_it_once() -> None:
    lead = a_lead(lambda lead: lead.log_activity(ACTIVITY_ID, "call", "First call"))
    assert when(lead, lambda lead: lead.log_activity(ACTIVITY_ID, "call", "First call")) == []


def test_the_latest_activity_is_remembered_even_when_logged_late() -> None:
    later, earlier = MONDAY_9AM, MONDAY_9AM - timedelta(days=3)
    lead = a_lead(
        lambda lead: lead.log_activity(ACTIVITY_ID, "meeting", "Demo", later),
        lambda lead: lead.log_activity(OTHER_ACTIVITY_ID, "email", "Old email", earlier),
    )
    assert lead.last_activity_at == later


@pytest.mark.parametrize(
    "kind, summary, occurred_at",
    [
        ("fax", "Sent a fax", None),
        ("call", "  ", None),
        ("call", "Called", datetime(2026, 3, 1, 9, 0)),  # no time zone
    ],
)
def test_malformed_activities_are_rejected(
    kind: Any, summary: str, occurred_at: datetime | None
) -> None:
    rejects(
        a_lead(),
        lambda lead: lead.log_activity(ACTIVITY_ID, kind, summary, occurred_at),
        InvalidValue,
    )


# --- qualification -----------------------------------------------------------------------------


def test_qualifying_an_open_lead_records_it() -> None:
    lead = a_lead()
    assert [type(e) for e in when(lead, qualified)] == [LeadQualified]
    assert lead.status == "qualified"


def test_qualifying_a_qualified_lead_again_records_nothing() -> None:
    assert when(a_lead(qualified), qualified) == []


def test_qualifying_a_disqualified_lead_is_rejected() -> None:
    rejects(a_lead(disqualified), qualified, LeadIsDisqualified)


def test_disqualifying_records_the_reason() -> None:
    lead = a_lead(qualified)
    events = when(lead, lambda lead: lead.disqualify(" student project "))
    assert [(type(e), payload(e)) for e in events] == [
        (LeadDisqualified, {"reason": "student project"})
    ]
    assert (lead.status, lead.disqualification_reason) == ("disqualified", "student project")


def test_disqualifying_without_a_reason_is_rejected() -> None:
    rejects(a_lead(), lambda lead: lead.disqualify("  "), InvalidValue)


def test_disqualifying_a_disqualified_lead_again_records_nothing() -> None:
    assert when(a_lead(disqualified), lambda lead: lead.disqualify("still no budget")) == []


def test_reopening_a_disqualified_lead_makes_it_open_again() -> None:
    lead = a_lead(qualified, disqualified)
    assert [type(e) for e in when(lead, lambda lead: lead.reopen())] == [LeadReopened]
    assert (lead.status, lead.disqualification_reason) == ("open", None)


@pytest.mark.parametrize("worked", [[], [qualified]])
def test_reopening_a_lead_that_is_not_disqualified_records_nothing(
    worked: list[Callable[[Lead], None]],
) -> None:
    assert when(a_lead(*worked), lambda lead: lead.reopen()) == []


# --- conversion --------------------------------------------------------------------------------


def test_requesting_conversion_of_a_qualified_lead_records_the_request() -> None:
    lead = a_lead(qualified)
    events = when(lead, lambda lead: lead.request_conversion())
    assert [(type(e), payload(e)) for e in events] == [(LeadConversionRequested, {})]
    assert (lead.status, lead.conversion_requested) == ("qualified", True)


def test_requesting_conversion_again_while_it_is_pending_records_nothing() -> None:
    assert when(a_lead(conversion_requested), lambda lead: lead.request_conversion()) == []


def test_a_lead_disqualified_after_a_request_needs_a_new_request() -> None:
    lead = a_lead(conversion_requested, disqualified, lambda lead: lead.reopen(), qualified)
    assert lead.conversion_requested is False
    events = when(lead, lambda lead: lead.request_conversion())
    assert [type(e) for e in events] == [LeadConversionRequested]


@pytest.mark.parametrize("worked", [[], [qualified, disqualified]], ids=["open", "disqualified"])
def test_requesting_conversion_of_an_unqualified_lead_is_rejected(
    worked: list[Callable[[Lead], None]],
) -> None:
    error = rejects(a_lead(*worked), lambda lead: lead.request_conversion(), LeadNotQualified)
    assert error.context["lead_id"] == str(LEAD_ID)


def test_a_lead_with_a_pending_request_can_still_be_converted_by_hand() -> None:
    lead = a_lead(conversion_requested)
    events = when(lead, lambda lead: lead.convert(CUSTOMER_ID, OPPORTUNITY_ID))
    assert [type(e) for e in events] == [LeadConverted]
    assert lead.status == "converted"


@pytest.mark.parametrize("opportunity_id", [OPPORTUNITY_ID, None])
def test_converting_a_qualified_lead_records_the_customer_and_opportunity(
    opportunity_id: UUID | None,
) -> None:
    lead = a_lead(qualified)
    events = when(lead, lambda lead: lead.convert(CUSTOMER_ID, opportunity_id))
    assert [(type(e), payload(e)) for e in events] == [
        (LeadConverted, {"customer_id": CUSTOMER_ID, "opportunity_id": opportunity_id})
    ]
    assert lead.status == "converted"
    assert (lead.converted_customer_id, lead.converted_opportunity_id) == (
        CUSTOMER_ID,
        opportunity_id,
    )


def test_converting_an_open_lead_is_rejected() -> None:
    error = rejects(a_lead(), lambda lead: lead.convert(CUSTOMER_ID), LeadNotQualified)
    assert error.context == {"lead_id": str(LEAD_ID), "status": "open"}


def test_converting_a_disqualified_lead_is_rejected() -> None:
    rejects(
        a_lead(qualified, disqualified), lambda lead: lead.convert(CUSTOMER_ID), LeadNotQualified
    )


def test_converting_a_lead_twice_is_rejected() -> None:
    error = rejects(a_lead(converted), lambda lead: lead.convert(CUSTOMER_ID), LeadAlreadyConverted)
    assert error.context == {"lead_id": str(LEAD_ID), "customer_id": str(CUSTOMER_ID)}


@pytest.mark.parametrize(
    "command",
    [
        lambda lead: lead.score(50),
        lambda lead: lead.assign("user:alice", None, "by hand"),
        lambda lead: lead.log_activity(ACTIVITY_ID, "call", "Follow-up"),
        lambda lead: lead.qualify(),
        lambda lead: lead.disqualify("changed their mind"),
        lambda lead: lead.reopen(),
        lambda lead: lead.request_conversion(),
        lambda lead: lead.convert(CUSTOMER_ID, OPPORTUNITY_ID),
    ],
    ids=[
        "score",
        "assign",
        "log_activity",
        "qualify",
        "disqualify",
        "reopen",
        "request_conversion",
        "convert",
    ],
)
def test_a_converted_lead_rejects_every_command(command: Callable[[Lead], Any]) -> None:
    rejects(a_lead(converted), command, LeadAlreadyConverted)


# --- storage -----------------------------------------------------------------------------------


def test_every_lead_event_survives_the_store_unchanged() -> None:
    clock = FixedClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    events = history(
        lambda: capture(company="Acme", utm_source="baidu"),
        lambda lead: lead.score(70, ["budget"]),
        lambda lead: lead.assign("user:dana", "vip", "big account"),
        lambda lead: lead.log_activity(ACTIVITY_ID, "visit", "Site visit", MONDAY_9AM),
        disqualified,
        lambda lead: lead.reopen(),
        conversion_requested,
        converted,
        lambda lead: lead.erase("Data subject request"),
        clock=clock,
    )
    lead_event_types = {cls for name, cls in EVENT_TYPES.items() if name.startswith("crm.lead.")}
    assert {type(e) for e in events} == lead_event_types
    assert through_store(events) == events
    assert given(*through_store(events)).state() == given(*events).state()


def test_a_stored_snapshot_restores_the_same_lead() -> None:
    lead = a_lead(
        lambda lead: lead.score(40, ["trade show"]),
        lambda lead: lead.log_activity(ACTIVITY_ID, "meeting", "Booth chat", MONDAY_9AM),
        converted,
    )
    [snapshot] = through_store([Snapshot.take(lead)])
    assert snapshot.mutate(None).state() == lead.state()
