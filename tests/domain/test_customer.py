"""Customer rules: given events, when a command, then the events recorded or the rule broken."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pytest

from domain.customer import (
    CannotMergeIntoItself,
    CannotMergeIntoMergedCustomer,
    ContactIdAlreadyUsed,
    ContactNotFound,
    Customer,
    CustomerAbsorbedDuplicate,
    CustomerConsentRecorded,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerErased,
    CustomerInteractionLogged,
    CustomerIsErased,
    CustomerIsMerged,
    CustomerMerged,
    CustomerOwnerAssigned,
    CustomerProfileUpdated,
    CustomerRegistered,
    CustomerTagged,
    CustomerTierChanged,
    CustomerUntagged,
    InteractionInTheFuture,
    NoConsentForChannel,
)
from domain.personal import REDACTED
from domain.shared import EVENT_TYPES, DomainError, InvalidValue, NotFound, Snapshot
from tests.domain.scenario import MONDAY_9AM, given, history, payload, through_store, when

E = TypeVar("E", bound=DomainError)
Command = Callable[[Customer], Any]

ACME = UUID("00000000-0000-4000-8000-00000000ac3e")
SURVIVOR = UUID("00000000-0000-4000-8000-00000000005a")
OTHER = UUID("00000000-0000-4000-8000-0000000000e7")
ZHANG = UUID("00000000-0000-4000-8000-000000000001")
LI = UUID("00000000-0000-4000-8000-000000000002")
CALL = UUID("00000000-0000-4000-8000-0000000000ca")
AN_HOUR_AGO = MONDAY_9AM - timedelta(hours=1)


def register(customer_id: UUID = ACME, **overrides: Any) -> Customer:
    fields: dict[str, Any] = {
        "customer_id": customer_id,
        "kind": "company",
        "name": "Acme Trading",
        "email": "sales@acme.com",
        "phone": "138 0013 8000",
        "region": "east",
        "industry": "retail",
        "owner": "user:alice",
        "source": "trade-show",
    }
    return Customer.register(**(fields | overrides))


def a_customer(*commands: Command, customer_id: UUID = ACME) -> Customer:
    """The customer built from the registration plus `commands`, with nothing pending."""
    customer: Customer = given(*history(lambda: register(customer_id), *commands))
    return customer


def merged(customer_id: UUID = ACME, into: UUID = SURVIVOR) -> Customer:
    return a_customer(lambda c: c.merge_into(a_customer(customer_id=into)), customer_id=customer_id)


def add_zhang(customer: Customer) -> None:
    customer.add_contact(contact_id=ZHANG, name="Zhang Wei", title="Buyer")


def rejected(customer: Customer, command: Command, error: type[E]) -> E:
    """Run a command that must break `error`'s rule, and check it recorded and changed nothing."""
    before = customer.state()
    with pytest.raises(error) as caught:
        when(customer, command)
    assert customer.pending_events == []
    assert customer.state() == before
    return caught.value


def types(events: list[Any]) -> list[type]:
    return [type(event) for event in events]


# --- registering -------------------------------------------------------------------------------


def test_registering_a_customer_records_its_normalised_profile() -> None:
    events = history(lambda: register(name="  Acme Trading ", email=" Sales@ACME.com "))

    assert types(events) == [CustomerRegistered]
    assert payload(events[0]) == {
        "kind": "company",
        "name": "Acme Trading",
        "email": "sales@acme.com",
        "phone": "+8613800138000",
        "region": "east",
        "industry": "retail",
        "owner": "user:alice",
        "source": "trade-show",
    }
    customer = given(*events)
    assert (customer.id, customer.version, customer.tier) == (ACME, 1, "standard")
    assert (customer.email, customer.phone) == ("sales@acme.com", "+8613800138000")


def test_registering_without_email_or_phone_keeps_none() -> None:
    customer = given(*history(lambda: register(email=None, phone="  ")))

    assert (customer.email, customer.phone) == (None, None)


def test_registering_reads_national_phone_numbers_in_the_given_region() -> None:
    customer = given(*history(lambda: register(phone="020 7183 8750", phone_region="GB")))

    assert customer.phone == "+442071838750"


@pytest.mark.parametrize("field", ["name", "region", "owner"])
def test_registering_a_customer_without_a_required_field_is_rejected(field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        register(**{field: "   "})
    assert caught.value.field_name == field


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "robot"), ("email", "not-an-email"), ("phone", "12345")],
)
def test_registering_a_customer_with_a_malformed_value_is_rejected(field: str, value: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        register(**{field: value})
    assert caught.value.field_name == field


# --- profile -----------------------------------------------------------------------------------


def test_updating_the_profile_records_only_the_changed_fields() -> None:
    customer = a_customer()

    events = when(
        customer,
        lambda c: c.update_profile(name="Acme Trading", region=" north", industry="wholesale "),
    )

    assert types(events) == [CustomerProfileUpdated]
    assert payload(events[0]) == {"changes": {"region": "north", "industry": "wholesale"}}
    assert (customer.region, customer.industry) == ("north", "wholesale")


def test_updating_the_profile_normalises_email_and_phone() -> None:
    customer = a_customer()

    events = when(customer, lambda c: c.update_profile(email="Buy@Acme.COM", phone="139 1234 5678"))

    assert payload(events[0]) == {"changes": {"email": "buy@acme.com", "phone": "+8613912345678"}}
    assert (customer.email, customer.phone) == ("buy@acme.com", "+8613912345678")


def test_updating_the_profile_can_clear_the_email_and_phone() -> None:
    customer = a_customer()

    events = when(customer, lambda c: c.update_profile(email=None, phone=""))

    assert payload(events[0]) == {"changes": {"email": None, "phone": None}}
    assert (customer.email, customer.phone) == (None, None)


def test_updating_the_profile_without_changes_is_a_no_op() -> None:
    customer = a_customer()

    events = when(
        customer,
        lambda c: c.update_profile(
            name=" Acme Trading",
            email="SALES@acme.com",
            phone="+86 138 0013 8000",
            industry="retail",
        ),
    )

    assert events == []


@pytest.mark.parametrize(
    ("field", "value"), [("name", " "), ("region", ""), ("email", "@acme"), ("phone", "12345")]
)
def test_updating_the_profile_with_a_bad_value_is_rejected(field: str, value: str) -> None:
    error = rejected(a_customer(), lambda c: c.update_profile(**{field: value}), InvalidValue)

    assert error.field_name == field


# --- contacts ----------------------------------------------------------------------------------


def test_adding_a_contact_records_it_normalised() -> None:
    customer = a_customer()

    events = when(
        customer,
        lambda c: c.add_contact(
            contact_id=ZHANG, name=" Zhang Wei ", title="Buyer", email="Wei@Acme.com", phone=None
        ),
    )

    assert types(events) == [CustomerContactAdded]
    assert payload(events[0]) == {
        "contact": {
            "contact_id": ZHANG,
            "name": "Zhang Wei",
            "title": "Buyer",
            "email": "wei@acme.com",
            "phone": None,
        }
    }
    assert list(customer.contacts) == [ZHANG]


def test_adding_the_same_contact_again_is_a_no_op() -> None:
    assert when(a_customer(add_zhang), add_zhang) == []


def test_adding_a_different_contact_under_a_used_id_is_rejected() -> None:
    error = rejected(
        a_customer(add_zhang),
        lambda c: c.add_contact(contact_id=ZHANG, name="Li Na"),
        ContactIdAlreadyUsed,
    )

    assert (error.customer_id, error.contact_id) == (ACME, ZHANG)


def test_adding_a_contact_without_a_name_is_rejected() -> None:
    rejected(a_customer(), lambda c: c.add_contact(contact_id=ZHANG, name=" "), InvalidValue)


def test_removing_a_contact_records_it() -> None:
    customer = a_customer(add_zhang)

    events = when(customer, lambda c: c.remove_contact(ZHANG))

    assert types(events) == [CustomerContactRemoved]
    assert payload(events[0]) == {"contact_id": ZHANG}
    assert customer.contacts == {}


def test_removing_an_unknown_contact_is_rejected() -> None:
    error = rejected(a_customer(add_zhang), lambda c: c.remove_contact(LI), ContactNotFound)

    assert isinstance(error, NotFound)
    assert (error.customer_id, error.contact_id) == (ACME, LI)


# --- tags --------------------------------------------------------------------------------------


def test_tagging_a_customer_records_the_normalised_tag() -> None:
    customer = a_customer()

    events = when(customer, lambda c: c.tag("  Key Account "))

    assert types(events) == [CustomerTagged]
    assert payload(events[0]) == {"tag": "key account"}
    assert customer.tags == {"key account"}


def test_re_tagging_a_customer_is_a_no_op() -> None:
    assert when(a_customer(lambda c: c.tag("vip")), lambda c: c.tag(" VIP")) == []


def test_the_state_of_a_customer_lists_its_tags_sorted() -> None:
    letters = "zyxwvutsrqponmlkjihgfedcba"
    customer = a_customer(*[lambda c, tag=tag: c.tag(tag) for tag in letters])

    assert customer.state()["tags"] == sorted(letters)


def test_untagging_a_customer_records_the_normalised_tag() -> None:
    customer = a_customer(lambda c: c.tag("vip"), lambda c: c.tag("export"))

    events = when(customer, lambda c: c.untag("VIP "))

    assert types(events) == [CustomerUntagged]
    assert payload(events[0]) == {"tag": "vip"}
    assert customer.tags == {"export"}


def test_untagging_an_absent_tag_is_a_no_op() -> None:
    assert when(a_customer(lambda c: c.tag("vip")), lambda c: c.untag("export")) == []


@pytest.mark.parametrize("command", [lambda c: c.tag("  "), lambda c: c.untag("")])
def test_tagging_or_untagging_with_a_blank_tag_is_rejected(command: Command) -> None:
    error = rejected(a_customer(lambda c: c.tag("vip")), command, InvalidValue)

    assert error.field_name == "tag"


# --- owner -------------------------------------------------------------------------------------


def test_assigning_a_new_owner_records_the_previous_one() -> None:
    customer = a_customer()

    events = when(customer, lambda c: c.assign_owner(" user:bob "))

    assert types(events) == [CustomerOwnerAssigned]
    assert payload(events[0]) == {"owner": "user:bob", "previous_owner": "user:alice"}
    assert customer.owner == "user:bob"


def test_assigning_the_same_owner_is_a_no_op() -> None:
    assert when(a_customer(), lambda c: c.assign_owner("user:alice")) == []


def test_assigning_a_blank_owner_is_rejected() -> None:
    rejected(a_customer(), lambda c: c.assign_owner(""), InvalidValue)


# --- interactions ------------------------------------------------------------------------------


def log_call(at: datetime = AN_HOUR_AGO, interaction_id: UUID = CALL, **overrides: Any) -> Command:
    fields = {"kind": "call", "summary": "Asked for a quote", "occurred_at": at} | overrides
    return lambda c: c.log_interaction(interaction_id=interaction_id, **fields)


def test_logging_an_interaction_records_it() -> None:
    customer = a_customer()

    events = when(customer, log_call())

    assert types(events) == [CustomerInteractionLogged]
    assert payload(events[0]) == {
        "interaction_id": CALL,
        "kind": "call",
        "summary": "Asked for a quote",
        "occurred_at": AN_HOUR_AGO,
        "contact_id": None,
    }
    assert customer.last_interaction_at == AN_HOUR_AGO


def test_logging_an_interaction_with_a_contact_records_who_took_part() -> None:
    events = when(a_customer(add_zhang), log_call(contact_id=ZHANG))

    assert payload(events[0])["contact_id"] == ZHANG


def test_logging_an_interaction_with_an_unknown_contact_is_rejected() -> None:
    error = rejected(a_customer(add_zhang), log_call(contact_id=LI), ContactNotFound)

    assert error.contact_id == LI


def test_logging_the_same_interaction_again_is_a_no_op() -> None:
    assert when(a_customer(log_call()), log_call()) == []


def test_logging_an_earlier_interaction_late_keeps_the_latest_as_last() -> None:
    customer = a_customer(log_call())

    when(customer, log_call(at=AN_HOUR_AGO - timedelta(days=3), interaction_id=LI))

    assert customer.last_interaction_at == AN_HOUR_AGO


def test_logging_an_interaction_in_the_future_is_rejected() -> None:
    later = MONDAY_9AM + timedelta(minutes=1)

    error = rejected(a_customer(), log_call(at=later), InteractionInTheFuture)

    assert (error.customer_id, error.interaction_id) == (ACME, CALL)


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("kind", {"kind": "fax"}),
        ("summary", {"summary": "  "}),
        ("occurred_at", {"at": AN_HOUR_AGO.replace(tzinfo=None)}),
    ],
)
def test_logging_a_malformed_interaction_is_rejected(field: str, overrides: Any) -> None:
    error = rejected(a_customer(), log_call(**overrides), InvalidValue)

    assert error.field_name == field


# --- consent -----------------------------------------------------------------------------------


def test_recording_consent_keeps_the_current_answer_per_channel() -> None:
    customer = a_customer()

    events = when(
        customer, lambda c: c.record_consent("email", granted=True, legal_basis="consent")
    )

    assert types(events) == [CustomerConsentRecorded]
    assert payload(events[0]) == {"channel": "email", "granted": True, "legal_basis": "consent"}
    assert customer.has_consent("email")
    assert not customer.has_consent("sms")
    assert customer.consents["email"].recorded_at == MONDAY_9AM


def test_withdrawing_consent_replaces_the_grant() -> None:
    customer = a_customer(lambda c: c.record_consent("sms", granted=True, legal_basis="consent"))

    events = when(customer, lambda c: c.record_consent("sms", granted=False, legal_basis="consent"))

    assert payload(events[0]) == {"channel": "sms", "granted": False, "legal_basis": "consent"}
    assert not customer.has_consent("sms")


def grant_wechat(customer: Customer) -> None:
    customer.record_consent("wechat", granted=True, legal_basis="contract")


def test_recording_the_same_consent_again_is_a_no_op() -> None:
    assert when(a_customer(grant_wechat), grant_wechat) == []


@pytest.mark.parametrize(
    ("field", "command"),
    [
        ("channel", lambda c: c.record_consent("fax", granted=True, legal_basis="consent")),
        ("legal_basis", lambda c: c.record_consent("sms", granted=True, legal_basis="whim")),
    ],
)
def test_recording_consent_with_an_unknown_value_is_rejected(field: str, command: Command) -> None:
    error = rejected(a_customer(), command, InvalidValue)

    assert error.field_name == field


# --- billing details, campaigns, erasure -------------------------------------------------------


def test_billing_details_are_recorded_compact_and_upper_case() -> None:
    customer = a_customer()

    events = when(
        customer,
        lambda c: c.record_billing_details(
            id_number="11010519491231002x", bank_account="6222 0212 3456 7890 128"
        ),
    )

    assert payload(events[0]) == {
        "id_number": "11010519491231002X",
        "bank_account": "6222021234567890128",
    }
    assert (
        when(
            customer,
            lambda c: c.record_billing_details(
                id_number="11010519491231002X", bank_account="6222021234567890128"
            ),
        )
        == []
    )


@pytest.mark.parametrize("value", ["12345", "6222/0212", "x" * 35, "银行卡号"])
def test_billing_numbers_that_are_not_identifiers_are_rejected(value: str) -> None:
    command: Command = lambda c: c.record_billing_details(id_number=None, bank_account=value)  # noqa: E731

    error = rejected(a_customer(), command, InvalidValue)

    assert error.field_name == "bank_account"


def test_a_campaign_enrolment_needs_consent_on_its_channel() -> None:
    customer = a_customer(grant_wechat)

    rejected(
        customer, lambda c: c.enrol_in_campaign("spring", channel="email"), NoConsentForChannel
    )
    events = when(customer, lambda c: c.enrol_in_campaign("spring", channel="wechat"))

    assert payload(events[0]) == {"campaign": "spring", "channel": "wechat"}
    withdrawn = when(
        customer, lambda c: c.record_consent("wechat", granted=False, legal_basis="contract")
    )
    assert withdrawn and customer.campaigns == {}


def test_an_erased_customer_reads_redacted_and_refuses_new_personal_data() -> None:
    customer = a_customer(
        add_zhang,
        grant_wechat,
        lambda c: c.enrol_in_campaign("spring", channel="wechat"),
        lambda c: c.record_billing_details(id_number="110105194912310021", bank_account=None),
    )

    events = when(customer, lambda c: c.erase(reason="Data subject request"))

    assert types(events) == [CustomerErased]
    assert (customer.name, customer.id_number, customer.bank_account) == (REDACTED, REDACTED, None)
    assert customer.contacts[ZHANG].name == REDACTED
    assert customer.campaigns == {}
    rejected(customer, lambda c: c.update_profile(name="New"), CustomerIsErased)
    rejected(customer, add_zhang, CustomerIsErased)
    assert when(customer, lambda c: c.erase(reason="Again")) == []
    assert when(customer, lambda c: c.tag("kept")) != []  # business goes on


# --- tier --------------------------------------------------------------------------------------


def test_changing_the_tier_records_the_previous_tier_and_the_reason() -> None:
    customer = a_customer()

    events = when(customer, lambda c: c.change_tier("gold", reason=" Annual spend over 1M "))

    assert types(events) == [CustomerTierChanged]
    assert payload(events[0]) == {
        "tier": "gold",
        "previous_tier": "standard",
        "reason": "Annual spend over 1M",
    }
    assert customer.tier == "gold"


def test_changing_to_the_same_tier_is_a_no_op() -> None:
    customer = a_customer(lambda c: c.change_tier("silver", reason="Spend"))

    assert when(customer, lambda c: c.change_tier("silver", reason="Still")) == []


@pytest.mark.parametrize(
    ("field", "command"),
    [
        ("tier", lambda c: c.change_tier("diamond", reason="Spend")),
        ("reason", lambda c: c.change_tier("gold", reason=" ")),
    ],
)
def test_changing_the_tier_with_a_bad_value_is_rejected(field: str, command: Command) -> None:
    error = rejected(a_customer(), command, InvalidValue)

    assert error.field_name == field


# --- merging -----------------------------------------------------------------------------------


def test_merging_a_duplicate_records_its_survivor() -> None:
    duplicate = a_customer()

    events = when(duplicate, lambda c: c.merge_into(a_customer(customer_id=SURVIVOR)))

    assert types(events) == [CustomerMerged]
    assert payload(events[0]) == {"survivor_id": SURVIVOR}
    assert (duplicate.merged_into, duplicate.is_merged) == (SURVIVOR, True)


def test_merging_a_customer_into_itself_is_rejected() -> None:
    customer = a_customer()

    error = rejected(customer, lambda c: c.merge_into(a_customer()), CannotMergeIntoItself)

    assert error.customer_id == ACME


def test_merging_a_customer_that_is_already_merged_is_rejected() -> None:
    survivor = a_customer(customer_id=SURVIVOR)

    error = rejected(merged(into=SURVIVOR), lambda c: c.merge_into(survivor), CustomerIsMerged)

    assert (error.customer_id, error.merged_into) == (ACME, SURVIVOR)


def test_merging_into_a_merged_customer_is_rejected() -> None:
    merged_survivor = merged(SURVIVOR, into=OTHER)

    error = rejected(
        a_customer(), lambda c: c.merge_into(merged_survivor), CannotMergeIntoMergedCustomer
    )

    assert (error.survivor_id, error.merged_into) == (SURVIVOR, OTHER)


EVERY_COMMAND: list[Command] = [
    lambda c: c.update_profile(name="Acme Group"),
    lambda c: c.update_profile(name="Acme Trading"),  # would be a no-op
    add_zhang,
    lambda c: c.remove_contact(ZHANG),
    lambda c: c.tag("vip"),
    lambda c: c.untag("vip"),
    lambda c: c.assign_owner("user:bob"),
    log_call(),
    lambda c: c.record_consent("email", granted=True, legal_basis="consent"),
    lambda c: c.change_tier("gold", reason="Spend"),
    lambda c: c.merge_into(a_customer(customer_id=OTHER)),
]


@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_a_merged_customer_rejects_every_command(command: Command) -> None:
    error = rejected(merged(), command, CustomerIsMerged)

    assert (error.customer_id, error.merged_into) == (ACME, SURVIVOR)


def test_a_merged_customer_stays_readable() -> None:
    customer = merged()

    assert (customer.name, customer.email, customer.phone) == (
        "Acme Trading",
        "sales@acme.com",
        "+8613800138000",
    )
    assert (customer.merged_into, customer.is_merged) == (SURVIVOR, True)


def test_absorbing_a_duplicate_takes_over_the_tags_and_contacts_the_survivor_lacks() -> None:
    duplicate = a_customer(
        add_zhang,
        lambda c: c.add_contact(contact_id=LI, name="Li Na (old)"),
        lambda c: c.tag("vip"),
        lambda c: c.tag("export"),
    )
    survivor = a_customer(
        lambda c: c.add_contact(contact_id=LI, name="Li Na"),
        lambda c: c.tag("vip"),
        customer_id=SURVIVOR,
    )

    events = when(survivor, lambda c: c.absorb(duplicate))

    assert types(events) == [CustomerAbsorbedDuplicate]
    assert payload(events[0]) == {
        "duplicate_id": ACME,
        "tags": ("export",),
        "contacts": (
            {
                "contact_id": ZHANG,
                "name": "Zhang Wei",
                "title": "Buyer",
                "email": None,
                "phone": None,
            },
        ),
    }
    assert survivor.tags == {"vip", "export"}
    assert set(survivor.contacts) == {LI, ZHANG}
    assert survivor.contacts[LI].name == "Li Na"
    assert survivor.absorbed_ids == {ACME}


def test_absorbing_the_same_duplicate_again_is_a_no_op() -> None:
    duplicate = a_customer()
    survivor = a_customer(lambda c: c.absorb(duplicate), customer_id=SURVIVOR)

    assert when(survivor, lambda c: c.absorb(duplicate)) == []


def test_absorbing_a_duplicate_already_merged_into_this_survivor_is_allowed() -> None:
    survivor = a_customer(customer_id=SURVIVOR)
    duplicate = merged(into=SURVIVOR)

    assert types(when(survivor, lambda c: c.absorb(duplicate))) == [CustomerAbsorbedDuplicate]


def test_a_merged_customer_cannot_absorb() -> None:
    merged_survivor = merged(SURVIVOR, into=OTHER)

    error = rejected(
        merged_survivor, lambda c: c.absorb(a_customer()), CannotMergeIntoMergedCustomer
    )

    assert (error.survivor_id, error.merged_into) == (SURVIVOR, OTHER)


def test_absorbing_itself_is_rejected() -> None:
    rejected(a_customer(), lambda c: c.absorb(a_customer()), CannotMergeIntoItself)


def test_absorbing_a_duplicate_merged_into_another_customer_is_rejected() -> None:
    duplicate = merged(into=OTHER)

    error = rejected(
        a_customer(customer_id=SURVIVOR), lambda c: c.absorb(duplicate), CustomerIsMerged
    )

    assert (error.customer_id, error.merged_into) == (ACME, OTHER)


# --- storage -----------------------------------------------------------------------------------


def every_kind_of_event() -> list[Any]:
    duplicate = a_customer(add_zhang, lambda c: c.tag("vip"), customer_id=OTHER)
    survivor = a_customer(customer_id=SURVIVOR)
    return history(
        lambda: register(),
        lambda c: c.update_profile(email=None, industry="wholesale"),
        add_zhang,
        lambda c: c.remove_contact(ZHANG),
        lambda c: c.tag("vip"),
        lambda c: c.untag("vip"),
        lambda c: c.assign_owner("user:bob"),
        log_call(),
        lambda c: c.record_consent("email", granted=True, legal_basis="legitimate_interests"),
        lambda c: c.enrol_in_campaign("spring", channel="email"),
        lambda c: c.record_billing_details(id_number="110105194912310021", bank_account=None),
        lambda c: c.change_tier("platinum", reason="Spend"),
        lambda c: c.absorb(duplicate),
        lambda c: c.merge_into(survivor),
        lambda c: c.erase(reason="Data subject request"),
    )


def test_every_customer_event_round_trips_through_the_store_unchanged() -> None:
    events = every_kind_of_event()
    customer_event_types = {
        t for name, t in EVENT_TYPES.items() if name.startswith("crm.customer.")
    }

    assert set(types(events)) == customer_event_types
    assert through_store(events) == events
    assert given(*through_store(events)).state() == given(*events).state()


def test_a_snapshot_of_a_customer_restores_the_same_state() -> None:
    customer = given(*every_kind_of_event())

    assert Snapshot.take(customer).mutate(None).state() == customer.state()
