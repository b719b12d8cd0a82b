"""Lead conversion on real PostgreSQL: one customer, one opportunity, one conversion per lead."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest

from domain.application import CRM
from domain.customer import Customer, CustomerRegistered
from domain.lead import Lead, LeadConversionRequested, LeadConverted, LeadQualified
from domain.opportunity import Opportunity, OpportunityOpened
from domain.uniqueness import CUSTOMER_EMAIL, UniqueClaim, claim_id
from infra.sagas import SagaEventFailed, SagaRunner
from sagas.lead_conversion import ConversionRules, LeadConversionSaga
from tests.sagas.flows import crashing, customer, effects_of, head, last_of, log, rewind

ACTOR = "saga:lead_conversion"
RULES = ConversionRules(auto_convert_channels=frozenset({"web_form", "referral"}))


@pytest.fixture
def saga(crm: CRM) -> LeadConversionSaga:
    return LeadConversionSaga(RULES, crm.config.phone_region)


@pytest.fixture
def conversion(saga: LeadConversionSaga, crm: CRM) -> SagaRunner:
    return SagaRunner(saga, crm)


def qualified_lead(crm: CRM, owner: str | None = "alice", **fields: Any) -> UUID:
    details: dict[str, Any] = {
        "channel": "web_form",
        "name": "Li Lei",
        "region": "east",
        "email": "li.lei@example.com",
        "company": "Li Trading",
        "interest": "CRM",
    }
    lead_id = crm.capture_lead(**(details | fields)).id
    if owner is not None:
        crm.assign_lead(lead_id, owner)
    crm.qualify_lead(lead_id)
    return lead_id


def count(crm: CRM, kind: type) -> int:
    return sum(isinstance(e, kind) for e in log(crm))


def test_a_qualified_lead_becomes_a_customer_and_an_opportunity_for_its_owner(
    crm: CRM, conversion: SagaRunner, saga: LeadConversionSaga
) -> None:
    lead_id = qualified_lead(crm)

    assert conversion.catch_up() == 1

    cause = last_of(crm, lead_id, LeadQualified)
    lead = crm.commands.load(Lead, lead_id)
    assert lead.status == "converted"
    assert lead.converted_customer_id == saga.record_id(cause, "customer")
    assert lead.converted_opportunity_id == saga.record_id(cause, "opportunity")
    new = crm.commands.load(Customer, lead.converted_customer_id)
    assert (new.kind, new.name, new.owner, new.email) == (
        "company",
        "Li Trading",
        "alice",
        "li.lei@example.com",
    )
    claim = crm.commands.load(UniqueClaim, claim_id(CUSTOMER_EMAIL, "li.lei@example.com"))
    assert claim.owner_id == new.id
    deal = crm.commands.load(Opportunity, lead.converted_opportunity_id)
    assert (deal.stage, deal.owner, deal.customer_id) == ("qualification", "alice", new.id)
    assert (deal.source_lead_id, deal.title) == (lead_id, "CRM: Li Trading")
    assert deal.expected_close == date(2026, 5, 31)  # 90 days after the qualification
    effects = effects_of(crm, cause)
    assert {type(e) for e in effects} >= {CustomerRegistered, OpportunityOpened, LeadConverted}
    assert all(e.actor == ACTOR and e.correlation_id == cause.correlation_id for e in effects)


def test_an_existing_customer_is_found_by_normalised_email_or_phone(
    crm: CRM, conversion: SagaRunner
) -> None:
    by_email = customer(crm, "Acme", email="Buyer@Acme.example.com")
    by_phone = customer(crm, "Beta", phone="+86 138 0013 8000")
    first = qualified_lead(crm, email=" buyer@ACME.example.com ")
    second = qualified_lead(crm, email="someone@else.example.com", phone="13800138000")
    conversion.catch_up()

    leads = [crm.commands.load(Lead, i) for i in (first, second)]
    assert [lead.converted_customer_id for lead in leads] == [by_email, by_phone]
    assert count(crm, CustomerRegistered) == 2  # the two above, nothing new
    for lead in leads:
        assert lead.converted_opportunity_id is not None
        deal = crm.commands.load(Opportunity, lead.converted_opportunity_id)
        assert deal.customer_id == lead.converted_customer_id


def test_other_channels_leads_converted_by_hand_and_unowned_leads_are_handled_as_configured(
    crm: CRM, conversion: SagaRunner
) -> None:
    phoned = qualified_lead(crm, channel="phone", email="p@example.com")
    by_hand = qualified_lead(crm, email="h@example.com")
    crm.convert_lead(by_hand, customer(crm, "Hand"))
    unowned = qualified_lead(crm, owner=None, email="u@example.com", company=None)
    conversion.catch_up()

    assert crm.commands.load(Lead, phoned).status == "qualified"  # not an auto channel
    assert crm.commands.load(Lead, by_hand).converted_opportunity_id is None  # left alone
    lead = crm.commands.load(Lead, unowned)
    assert lead.converted_opportunity_id is not None and lead.converted_customer_id is not None
    assert crm.commands.load(Opportunity, lead.converted_opportunity_id).owner == "queue:sales"
    person = crm.commands.load(Customer, lead.converted_customer_id)
    assert (person.kind, person.name) == ("person", "Li Lei")


def test_a_crash_between_reading_and_writing_loses_nothing_and_duplicates_nothing(
    crm: CRM, saga: LeadConversionSaga
) -> None:
    first = qualified_lead(crm, email="one@example.com")
    second = qualified_lead(crm, email="two@example.com")
    dies = crashing(saga, lambda event: event.originator_id == second)

    with pytest.raises(SagaEventFailed):
        SagaRunner(dies, crm).catch_up()
    assert crm.commands.load(Lead, second).status == "qualified"

    assert SagaRunner(saga, crm).catch_up() == 1

    assert [crm.commands.load(Lead, i).status for i in (first, second)] == ["converted"] * 2
    assert count(crm, CustomerRegistered) == count(crm, OpportunityOpened) == 2


def test_running_again_from_position_zero_over_a_finished_history_creates_nothing(
    crm: CRM, conversion: SagaRunner
) -> None:
    customer(crm, "Acme", email="buyer@acme.example.com")
    for email in ("buyer@acme.example.com", "new@example.com", "other@example.com"):
        qualified_lead(crm, email=email)
    conversion.catch_up()
    before, finished_at = head(crm), conversion.position()
    rewind(conversion)

    assert conversion.catch_up() == 3

    assert head(crm) == before
    assert conversion.position() == finished_at
    assert count(crm, CustomerRegistered) == 3 and count(crm, OpportunityOpened) == 3


def test_a_requested_conversion_converts_a_lead_from_any_channel_once_naming_the_request(
    crm: CRM, conversion: SagaRunner, saga: LeadConversionSaga
) -> None:
    lead_id = qualified_lead(crm, channel="phone", email="asked@example.com")
    crm.request_lead_conversion(lead_id)
    crm.request_lead_conversion(lead_id)  # a repeat while pending records nothing

    assert conversion.catch_up() == 2  # the qualification (not an auto channel) and the request

    cause = last_of(crm, lead_id, LeadConversionRequested)
    lead = crm.commands.load(Lead, lead_id)
    assert lead.status == "converted"
    assert lead.converted_customer_id == saga.record_id(cause, "customer")
    assert lead.converted_opportunity_id == saga.record_id(cause, "opportunity")
    deal = crm.commands.load(Opportunity, lead.converted_opportunity_id)
    assert (deal.stage, deal.owner, deal.customer_id) == (
        "qualification",
        "alice",
        lead.converted_customer_id,
    )
    effects = effects_of(crm, cause)
    assert sorted(type(e).__name__ for e in effects) == [
        "CustomerRegistered",
        "LeadConverted",
        "OpportunityOpened",
        "ValueClaimed",
    ]
    assert all(e.actor == ACTOR and e.correlation_id == cause.correlation_id for e in effects)
    assert count(crm, CustomerRegistered) == count(crm, OpportunityOpened) == 1
    assert count(crm, LeadConverted) == 1

    before = head(crm)
    rewind(conversion)
    conversion.catch_up()
    assert head(crm) == before


def test_a_request_for_a_lead_the_qualification_already_converted_creates_nothing_more(
    crm: CRM, conversion: SagaRunner
) -> None:
    lead_id = qualified_lead(crm, email="both@example.com")  # an auto-converting channel
    crm.request_lead_conversion(lead_id)

    assert conversion.catch_up() == 2

    converted = crm.commands.load(Lead, lead_id)
    qualified_cause = last_of(crm, lead_id, LeadQualified)
    assert [type(e) for e in effects_of(crm, qualified_cause)].count(LeadConverted) == 1
    assert effects_of(crm, last_of(crm, lead_id, LeadConversionRequested)) == []
    assert converted.status == "converted"
    assert count(crm, CustomerRegistered) == count(crm, OpportunityOpened) == 1
