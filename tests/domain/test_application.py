"""The application service on in-memory storage: use cases, metadata, concurrency, uniqueness."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

import pytest

from domain.application import CRM, CommandResult, CRMConfig
from domain.customer import Customer, CustomerIsMerged
from domain.lead import Lead, LeadNotQualified
from domain.opportunity import Opportunity
from domain.shared import (
    AlreadyExists,
    ConcurrencyConflict,
    FixedClock,
    InvalidValue,
    NotFound,
    command_context,
)
from domain.ticket import Ticket
from domain.uniqueness import CustomerEmailAlreadyRegistered, CustomerPhoneAlreadyRegistered
from infra.persistence import event_store_env
from infra.settings import Settings
from tests.domain.scenario import MONDAY_9AM


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_9AM)


@pytest.fixture
def crm(clock: FixedClock) -> CRM:
    settings = Settings(persistence="memory", customer_snapshot_interval=3)
    return CRM(env=event_store_env(settings, None), clock=clock, config=CRMConfig())


def register(crm: CRM, **overrides: Any) -> CommandResult:
    fields: dict[str, Any] = {
        "kind": "company",
        "name": "Acme",
        "region": "east",
        "owner": "user:alice",
        "email": "info@acme.example.com",
    }
    fields.update(overrides)
    return crm.register_customer(**fields)


def test_events_carry_actor_correlation_and_the_application_clock(crm: CRM) -> None:
    correlation = uuid4()
    with command_context(actor="user:42", correlation_id=correlation):
        result = crm.register_customer(kind="person", name="Li Lei", region="east", owner="user:42")

    [registered] = crm.history(result.id)
    assert registered.actor == "user:42"
    assert registered.correlation_id == correlation
    assert registered.timestamp == MONDAY_9AM
    assert registered.causation_id is None


def test_a_command_reports_id_version_and_log_position(crm: CRM) -> None:
    first = register(crm)
    tagged = crm.tag_customer(first.id, "vip")

    assert tagged.version == 2
    assert tagged.position is not None and tagged.position > first.position


def test_a_command_that_changes_nothing_reports_no_position(crm: CRM) -> None:
    customer = register(crm)
    crm.tag_customer(customer.id, "vip")

    again = crm.tag_customer(customer.id, "VIP")

    assert (again.version, again.position) == (2, None)


def test_a_stale_expected_version_is_a_conflict_carrying_the_actual_version(crm: CRM) -> None:
    customer = register(crm)
    crm.tag_customer(customer.id, "vip")

    with pytest.raises(ConcurrencyConflict) as conflict:
        crm.tag_customer(customer.id, "key-account", expected_version=1)

    assert conflict.value.actual_version == 2
    assert len(crm.history(customer.id)) == 2


def test_a_matching_expected_version_is_accepted(crm: CRM) -> None:
    customer = register(crm)

    result = crm.tag_customer(customer.id, "vip", expected_version=1)

    assert result.version == 2


def test_registering_a_second_customer_with_the_same_email_names_the_first(crm: CRM) -> None:
    first = register(crm, email="Info@Acme.example.com")

    with pytest.raises(CustomerEmailAlreadyRegistered) as error:
        register(crm, name="Acme again", email="info@acme.example.com")

    assert error.value.owner_id == first.id


def test_registering_a_second_customer_with_the_same_phone_is_rejected(crm: CRM) -> None:
    register(crm, email=None, phone="138 1234 5678")

    with pytest.raises(CustomerPhoneAlreadyRegistered):
        register(crm, email=None, phone="+86 13812345678")


def test_a_rejected_registration_records_nothing(crm: CRM) -> None:
    register(crm)
    before = crm.recorder.max_notification_id()

    with pytest.raises(CustomerEmailAlreadyRegistered):
        register(crm, name="Dup")

    assert crm.recorder.max_notification_id() == before


def test_changing_a_customers_email_frees_the_old_one(crm: CRM) -> None:
    first = register(crm)
    crm.update_customer_profile(first.id, email="sales@acme.example.com")

    second = register(crm, name="Other")

    assert second.id != first.id
    with pytest.raises(CustomerEmailAlreadyRegistered):
        register(crm, name="Third", email="sales@acme.example.com")


def test_changing_to_an_email_another_customer_holds_is_rejected(crm: CRM) -> None:
    register(crm)
    other = register(crm, name="Other", email="other@example.com")

    with pytest.raises(CustomerEmailAlreadyRegistered):
        crm.update_customer_profile(other.id, email="info@acme.example.com")

    assert crm.state_at(Customer, other.id).email == "other@example.com"


def test_choosing_an_existing_id_is_rejected(crm: CRM) -> None:
    first = register(crm)

    with pytest.raises(AlreadyExists):
        register(crm, customer_id=first.id, email="x@example.com")


def test_merging_frees_the_duplicates_email_and_phone(crm: CRM) -> None:
    survivor = register(crm)
    duplicate = register(crm, name="Acme Ltd", email="hello@acme.example.com", phone="13912345678")

    crm.merge_customers(survivor.id, duplicate.id)

    assert crm.state_at(Customer, duplicate.id).merged_into == survivor.id
    again = register(crm, name="Acme again", email="hello@acme.example.com", phone="13912345678")
    assert again.id not in (survivor.id, duplicate.id)


def test_repeating_a_finished_merge_changes_nothing(crm: CRM) -> None:
    survivor = register(crm)
    duplicate = register(crm, name="Acme Ltd", email="hello@acme.example.com")
    crm.merge_customers(survivor.id, duplicate.id)

    again = crm.merge_customers(survivor.id, duplicate.id)

    assert again.position is None


def test_logging_an_interaction_without_a_time_uses_the_commands_instant() -> None:
    crm = CRM(env=event_store_env(Settings(persistence="memory"), None))  # the system clock
    customer = crm.register_customer(kind="person", name="Li", region="east", owner="user:a")

    result = crm.log_customer_interaction(customer.id, kind="call", summary="hello")

    logged = crm.history(customer.id)[-1]
    assert result.version == 2
    assert logged.occurred_at == logged.timestamp  # type: ignore[attr-defined]


def test_a_merged_customer_refuses_new_opportunities(crm: CRM) -> None:
    survivor = register(crm)
    duplicate = register(crm, name="Acme Ltd", email="hello@acme.example.com")
    crm.merge_customers(survivor.id, duplicate.id)

    with pytest.raises(CustomerIsMerged):
        crm.open_opportunity(
            customer_id=duplicate.id,
            title="Deal",
            amount="10",
            currency="CNY",
            expected_close=date(2026, 12, 1),
            owner="user:alice",
        )


def test_unknown_ids_are_not_found(crm: CRM) -> None:
    with pytest.raises(NotFound):
        crm.tag_customer(uuid4(), "vip")
    with pytest.raises(NotFound):
        crm.open_ticket(customer_id=uuid4(), channel="email", subject="Help")


def test_an_id_of_another_kind_is_not_found(crm: CRM) -> None:
    customer = register(crm)

    with pytest.raises(NotFound):
        crm.qualify_lead(customer.id)


def test_converting_a_lead_records_its_lineage(crm: CRM) -> None:
    customer = register(crm)
    lead = crm.capture_lead(channel="web_form", name="Li", region="east", email="li@example.com")
    with pytest.raises(LeadNotQualified):
        crm.convert_lead(lead.id, customer.id)
    crm.qualify_lead(lead.id)
    opportunity = crm.open_opportunity(
        customer_id=customer.id,
        title="Deal",
        amount="1000.50",
        currency="cny",
        expected_close=date(2026, 12, 1),
        owner="user:alice",
        source_lead_id=lead.id,
    )

    crm.convert_lead(lead.id, customer.id, opportunity.id)

    converted = crm.state_at(Lead, lead.id)
    assert (converted.converted_customer_id, converted.converted_opportunity_id) == (
        customer.id,
        opportunity.id,
    )
    opened = crm.state_at(Opportunity, opportunity.id)
    assert (opened.amount.currency, opened.source_lead_id) == ("CNY", lead.id)


def test_unknown_utm_keys_are_refused(crm: CRM) -> None:
    with pytest.raises(InvalidValue):
        crm.capture_lead(
            channel="ads", name="Li", region="east", phone="13812345678", utm={"sauce": "x"}
        )


def test_tickets_get_due_times_from_the_configured_policy(crm: CRM) -> None:
    customer = register(crm)

    ticket = crm.open_ticket(
        customer_id=customer.id, channel="email", subject="Down", priority="P1"
    )

    opened = crm.state_at(Ticket, ticket.id)
    assert opened.sla_policy_version == crm.config.sla_policy.version
    assert (opened.first_response_due - MONDAY_9AM).total_seconds() == 3600


def test_configured_stage_probabilities_override_the_defaults(clock: FixedClock) -> None:
    settings = Settings(persistence="memory")
    crm = CRM(
        env=event_store_env(settings, None),
        clock=clock,
        config=CRMConfig(stage_probabilities={"qualification": 5}),
    )
    customer = register(crm)
    opportunity = crm.open_opportunity(
        customer_id=customer.id,
        title="Deal",
        amount="1",
        currency="USD",
        expected_close=date(2026, 12, 1),
        owner="user:alice",
    )

    assert crm.opportunity_probability(crm.state_at(Opportunity, opportunity.id)) == 5


def test_customers_are_snapshotted_and_past_versions_can_be_read(crm: CRM) -> None:
    customer = register(crm)
    for tag in ("a", "b", "c", "d", "e"):
        crm.tag_customer(customer.id, tag)

    assert crm.snapshots is not None
    assert [s.originator_version for s in crm.snapshots.get(customer.id)] == [3, 6]
    assert crm.state_at(Customer, customer.id, version=2).tags == {"a"}
    assert crm.state_at(Customer, customer.id).tags == {"a", "b", "c", "d", "e"}


def test_all_events_of_one_command_share_one_instant_of_a_moving_clock() -> None:
    crm = CRM(env=event_store_env(Settings(persistence="memory"), None))  # the system clock

    result = crm.register_customer(
        kind="person",
        name="Li",
        region="east",
        owner="user:a",
        email="li@example.com",
        phone="13812345678",
    )

    stamps = {
        n.originator_id: crm.mapper.to_domain_event(n).timestamp
        for n in crm.recorder.select_notifications(1, 10)
    }
    assert len(stamps) == 3 and result.id in stamps
    assert len(set(stamps.values())) == 1


def test_phone_numbers_without_a_country_code_take_the_configured_region(clock: FixedClock) -> None:
    crm = CRM(
        env=event_store_env(Settings(persistence="memory"), None),
        clock=clock,
        config=CRMConfig(phone_region="US"),
    )

    result = crm.register_customer(
        kind="person", name="Ann", region="west", owner="user:a", phone="(202) 555-0143"
    )

    assert crm.state_at(Customer, result.id).phone == "+12025550143"
