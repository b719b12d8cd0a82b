"""Customer 360°: given commands, the expected document, timeline and search; rebuilds agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import Phase, given, settings
from psycopg.sql import SQL

from domain.application import CRM
from domain.opportunity import PIPELINE
from domain.shared import EVENT_TYPES, FixedClock
from projections.customer_360 import Customer360Projection, Customer360View, InvalidCursor
from tests.domain.scenario import MONDAY_9AM
from tests.projections.rebuilds import REBUILD_EXAMPLES, rebuilt_from_zero, rows_of
from tests.projections.scripts import Command, Step, World, pick, play, random_scripts

CLOSE = date(2026, 6, 30)


@pytest.fixture
def c360(read_model: Any) -> tuple[Customer360View, Callable[[], int]]:
    view, catch_up_live = read_model(Customer360View, Customer360Projection)
    return view, catch_up_live


def register(crm: CRM, name: str, **fields: Any) -> UUID:
    fields.setdefault("region", "east")
    fields.setdefault("owner", "user:alice")
    return crm.register_customer(kind=fields.pop("kind", "company"), name=name, **fields).id


def open_deal(crm: CRM, customer: UUID, amount: str = "1000", currency: str = "CNY") -> UUID:
    return crm.open_opportunity(
        customer_id=customer,
        title="Deal",
        amount=amount,
        currency=currency,
        expected_close=CLOSE,
        owner="user:alice",
    ).id


def win(crm: CRM, deal: UUID, amount: str, currency: str = "CNY") -> None:
    crm.move_opportunity_stage(deal, "proposal")
    crm.win_opportunity(deal, amount=amount, currency=currency, contract_reference="C-1")


def open_ticket(crm: CRM, customer: UUID, subject: str = "Broken") -> UUID:
    return crm.open_ticket(customer_id=customer, channel="email", subject=subject).id


def types(rows: list[dict[str, Any]]) -> list[str]:
    return [row["type"] for row in rows]


def test_a_registered_customer_has_its_profile_and_empty_counts(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme", email="Info@Acme.com", phone="13812345678", source="expo")
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    assert (doc["kind"], doc["name"], doc["email"], doc["phone"]) == (
        "company",
        "Acme",
        "info@acme.com",
        "+8613812345678",
    )
    assert (doc["region"], doc["owner"], doc["source"], doc["tier"]) == (
        "east",
        "user:alice",
        "expo",
        "standard",
    )
    assert (doc["contacts"], doc["tags"], doc["consents"]) == ([], [], {})
    assert (doc["merged_into"], doc["merged_ids"]) == (None, [])
    assert set(doc["counts"].values()) == {0}
    assert (doc["won_totals"], doc["avg_csat"], doc["last_interaction_at"]) == ({}, None, None)
    assert doc["registered_at"] == MONDAY_9AM
    assert view.customer(UUID(int=1)) is None


def test_profile_updates_owner_and_tier_changes_show_in_the_profile(
    crm: CRM, c360: Any, clock: FixedClock
) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme", email="old@acme.com")
    clock.advance(hours=1)
    crm.update_customer_profile(acme, name="Acme Ltd", email=None, industry="retail")
    crm.assign_customer_owner(acme, "user:bob")
    crm.change_customer_tier(acme, "gold", reason="big spender")
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    assert (doc["name"], doc["email"], doc["industry"]) == ("Acme Ltd", None, "retail")
    assert (doc["owner"], doc["tier"], doc["updated_at"]) == ("user:bob", "gold", clock.now())


def test_contacts_added_and_removed_and_tags_follow_the_customer(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme")
    wang = uuid4()
    crm.add_customer_contact(acme, name="Wang", title="CTO", email="wang@acme.com", contact_id=wang)
    crm.add_customer_contact(acme, name="Li", title="CFO")
    crm.remove_customer_contact(acme, wang)
    for tag in ("VIP", "retail", "churn-risk"):
        crm.tag_customer(acme, tag)
    crm.untag_customer(acme, "churn-risk")
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    assert [(c["name"], c["title"], c["email"]) for c in doc["contacts"]] == [("Li", "CFO", None)]
    assert doc["tags"] == ["retail", "vip"]


def test_a_consent_withdrawn_after_its_grant_shows_as_withdrawn(
    crm: CRM, c360: Any, clock: FixedClock
) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme")
    crm.record_customer_consent(acme, "email", granted=True, legal_basis="consent")
    crm.record_customer_consent(acme, "sms", granted=True, legal_basis="contract")
    withdrawn_at = clock.advance(days=3)
    crm.record_customer_consent(acme, "email", granted=False, legal_basis="consent")
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    assert doc["consents"] == {
        "email": {"granted": False, "legal_basis": "consent", "recorded_at": withdrawn_at},
        "sms": {"granted": True, "legal_basis": "contract", "recorded_at": MONDAY_9AM},
    }


def test_the_last_interaction_is_the_latest_that_happened_not_the_latest_logged(
    crm: CRM, c360: Any, clock: FixedClock
) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme")
    clock.advance(days=2)
    crm.log_customer_interaction(acme, kind="call", summary="Intro call")
    crm.log_customer_interaction(
        acme, kind="visit", summary="Old visit", occurred_at=MONDAY_9AM + timedelta(hours=1)
    )
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    assert doc["last_interaction_at"] == clock.now()


def test_opportunities_reopened_and_won_count_with_won_totals_per_currency(
    crm: CRM, c360: Any
) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme")
    comeback = open_deal(crm, acme, "500")
    crm.lose_opportunity(comeback, reason="budget")
    crm.reopen_opportunity(comeback)
    win(crm, comeback, "800.50")
    win(crm, open_deal(crm, acme, "100", "USD"), "120", "USD")
    win(crm, open_deal(crm, acme), "199.50")
    crm.lose_opportunity(open_deal(crm, acme), reason="competitor")
    open_deal(crm, acme)
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    counts = doc["counts"]
    assert (counts["open_opportunities"], counts["won_opportunities"]) == (1, 3)
    assert counts["lost_opportunities"] == 1
    assert doc["won_totals"] == {"CNY": Decimal("1000.00"), "USD": Decimal("120")}


def test_tickets_count_as_open_or_closed_with_the_average_csat(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme")
    for score in (5, 4):
        ticket = open_ticket(crm, acme)
        crm.resolve_ticket(ticket, "fixed")
        crm.rate_ticket(ticket, score)
    crm.close_ticket(ticket)
    crm.wait_on_customer(open_ticket(crm, acme))
    open_ticket(crm, acme)
    catch_up_live()

    doc = view.customer(acme)

    assert doc is not None
    assert (doc["counts"]["open_tickets"], doc["counts"]["closed_tickets"]) == (2, 2)
    assert doc["avg_csat"] == pytest.approx(4.5)


def test_a_converted_leads_earlier_events_join_the_customers_timeline(
    crm: CRM, c360: Any, clock: FixedClock
) -> None:
    view, catch_up_live = c360
    lead = crm.capture_lead(channel="event", name="Li", region="east", email="li@x.com").id
    clock.advance(minutes=5)
    crm.log_lead_activity(lead, kind="call", summary="Met at the expo")
    crm.qualify_lead(lead)
    clock.advance(minutes=5)
    acme = register(crm, "Acme")
    catch_up_live()
    before = types(view.timeline(acme)[0])
    clock.advance(minutes=5)
    crm.convert_lead(lead, acme)
    catch_up_live()

    rows, _ = view.timeline(acme)

    assert before == ["crm.customer.registered.v1"]
    assert types(rows) == [
        "crm.lead.converted.v1",
        "crm.customer.registered.v1",
        "crm.lead.qualified.v1",
        "crm.lead.activity_logged.v1",
        "crm.lead.captured.v1",
    ]
    assert {row["aggregate_id"] for row in rows if row["aggregate_type"] == "lead"} == {lead}
    assert rows[3]["summary"] == "Lead activity logged: call: Met at the expo"
    assert rows[3]["payload"]["summary"] == "Met at the expo"
    assert view.customer(acme)["counts"]["leads"] == 1


def test_a_merged_duplicate_lives_on_in_the_survivors_view(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    survivor = register(crm, "Acme", email="sales@acme.com")
    duplicate = register(crm, "ACME Inc", phone="13812345678")
    crm.tag_customer(survivor, "vip")
    crm.tag_customer(duplicate, "retail")
    crm.add_customer_contact(duplicate, name="Wang")
    deal = open_deal(crm, duplicate, "300")
    ticket = open_ticket(crm, duplicate)
    crm.merge_customers(survivor, duplicate)
    win(crm, deal, "300")  # the duplicate's deal goes on after the merge
    crm.resolve_ticket(ticket, "fixed")
    crm.rate_ticket(ticket, 3)
    catch_up_live()

    doc = view.customer(survivor)
    rows, _ = view.timeline(survivor)

    assert doc is not None
    assert doc["merged_ids"] == [duplicate]
    assert doc["tags"] == ["retail", "vip"]
    assert [c["name"] for c in doc["contacts"]] == ["Wang"]
    assert (doc["counts"]["won_opportunities"], doc["counts"]["closed_tickets"]) == (1, 1)
    assert (doc["won_totals"], doc["avg_csat"]) == ({"CNY": Decimal("300")}, 3.0)
    assert {row["customer_id"] for row in rows} == {survivor, duplicate}
    assert "crm.customer.merged.v1" in types(rows)
    assert "crm.ticket.rated.v1" in types(rows)
    assert view.customer(duplicate)["merged_into"] == survivor
    assert [r["customer_id"] for r in view.search(text="acme")[0]] == [survivor]
    found = view.search(text="acme", include_merged=True)[0]
    assert {r["customer_id"] for r in found} == {survivor, duplicate}


def test_a_survivor_merged_later_brings_its_own_duplicates_along(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    first, second, last = register(crm, "A"), register(crm, "B"), register(crm, "C")
    open_ticket(crm, first)
    crm.merge_customers(second, first)
    crm.merge_customers(last, second)
    catch_up_live()

    doc = view.customer(last)

    assert doc is not None
    assert sorted(doc["merged_ids"]) == sorted([first, second])
    assert doc["counts"]["open_tickets"] == 1
    assert {row["customer_id"] for row in view.timeline(last)[0]} == {first, second, last}


def test_the_timeline_pages_newest_first_with_an_opaque_cursor(
    crm: CRM, c360: Any, clock: FixedClock
) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme")
    register(crm, "Other")
    for tag in ("a", "b", "c", "d"):  # the same instant: log order breaks the tie
        crm.tag_customer(acme, tag)
    catch_up_live()

    first, cursor = view.timeline(acme, limit=2)
    second, cursor2 = view.timeline(acme, limit=2, cursor=cursor)
    third, cursor3 = view.timeline(acme, limit=2, cursor=cursor2)

    summaries = [row["summary"] for row in first + second + third]
    assert summaries == [
        "Customer tagged: d",
        "Customer tagged: c",
        "Customer tagged: b",
        "Customer tagged: a",
        "Customer registered: Acme (company, east)",
    ]
    assert cursor3 is None
    assert all(row["actor"] == "system:crm" for row in first + second + third)
    with pytest.raises(InvalidCursor):
        view.timeline(acme, cursor="not-a-cursor")
    with pytest.raises(InvalidCursor):  # a search cursor does not page a timeline
        view.timeline(acme, cursor=view.search(limit=1)[1] or "")


def test_search_matches_name_email_and_phone_in_any_case_and_filters(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme", email="hello@acme.com", owner="user:bob")
    wang = register(crm, "Wang Shop", phone="13812345678", region="north", kind="person")
    zeta = register(crm, "Zeta", email="info@zeta.io")
    crm.tag_customer(zeta, "VIP")
    crm.change_customer_tier(zeta, "gold", reason="volume")
    catch_up_live()

    def ids(**query: Any) -> list[UUID]:
        return [row["customer_id"] for row in view.search(**query)[0]]

    assert ids(text="ACME") == [acme]
    assert ids(text="Zeta.IO") == [zeta]
    assert ids(text="138 1234 5678") == [wang]
    assert ids(text="shop") == [wang]
    assert ids(tag="vip") == [zeta]
    assert ids(owner="user:bob") == [acme]
    assert ids(region="north") == [wang]
    assert ids(tier="gold") == [zeta]
    assert ids() == [acme, wang, zeta]
    assert view.search(tag="vip")[0][0]["tags"] == ["vip"]


def test_search_pages_with_an_opaque_cursor(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    names = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]
    for name in names:
        register(crm, name)
    catch_up_live()

    first, cursor = view.search(limit=3)
    second, cursor2 = view.search(limit=3, cursor=cursor)

    assert [row["name"] for row in first + second] == sorted(names)
    assert cursor2 is None


def test_events_the_projection_does_not_handle_still_advance_its_position(
    crm: CRM, c360: Any
) -> None:
    view, catch_up_live = c360
    acme = register(crm, "Acme", email="a@acme.com")  # also claims the email: a claim event

    position = catch_up_live()

    assert position == crm.recorder.max_notification_id()
    assert view.position() == position
    assert types(view.timeline(acme)[0]) == ["crm.customer.registered.v1"]


def test_every_customer_lead_opportunity_and_ticket_event_reaches_the_timeline() -> None:
    about_customers = {
        name
        for name in EVENT_TYPES
        if name.split(".")[1] in ("customer", "lead", "opportunity", "ticket")
    }

    assert about_customers - {t.TYPE for t in Customer360Projection.handlers} == set()


def test_read_your_writes_waits_for_the_position_of_a_write(crm: CRM, c360: Any) -> None:
    view, catch_up_live = c360
    result = crm.register_customer(kind="person", name="Li", region="east", owner="user:a")
    catch_up_live()

    assert view.customer(result.id, min_position=result.position) is not None


# --- a rebuild from zero gives the live rows ----------------------------------------------------


def _register(crm: CRM, w: World, a: int, b: int) -> None:
    email = f"c{b % 4}@example.com" if a % 2 else None  # a small pool: some collide
    w.customers.append(register(crm, f"Customer {a}", email=email, region=f"r{b % 3}"))


def _contact(crm: CRM, w: World, a: int, b: int) -> None:
    customer, contact = pick(w.customers, a), uuid4()
    crm.add_customer_contact(customer, name=f"P{b}", contact_id=contact)
    w.contacts.append((customer, contact))


def _lead(crm: CRM, w: World, a: int, b: int) -> None:
    lead = crm.capture_lead(channel="ads", name=f"L{a}", region="east", email=f"l{b}@x.com").id
    w.leads.append(lead)


def _convert(crm: CRM, w: World, a: int, b: int) -> None:
    lead = pick(w.leads, a)
    crm.qualify_lead(lead)
    crm.convert_lead(lead, pick(w.customers, b))


def _deal(crm: CRM, w: World, a: int, b: int) -> None:
    w.deals.append(open_deal(crm, pick(w.customers, a), str(b * 10), ("CNY", "USD")[b % 2]))


def _ticket(crm: CRM, w: World, a: int, b: int) -> None:
    w.tickets.append(open_ticket(crm, pick(w.customers, a), subject=f"Broken {b}"))


def _erase(crm: CRM, w: World, a: int, b: int) -> None:
    """Erase a customer, naming (by b) none, one of the tickets, or one of the leads."""
    named = {1: w.tickets, 2: w.leads}.get(b % 3)
    records = [pick(named, b // 3)] if named else []
    crm.erase_customer(pick(w.customers, a), reason="request", records=records)


COMMANDS: dict[str, Callable[[CRM, World, int, int], Any]] = {
    "register": _register,
    "update": lambda crm, w, a, b: crm.update_customer_profile(
        pick(w.customers, a), name=f"Renamed {b}", region=f"r{b % 3}"
    ),
    "contact": _contact,
    "uncontact": lambda crm, w, a, b: crm.remove_customer_contact(*pick(w.contacts, a)),
    "tag": lambda crm, w, a, b: crm.tag_customer(pick(w.customers, a), f"t{b % 3}"),
    "untag": lambda crm, w, a, b: crm.untag_customer(pick(w.customers, a), f"t{b % 3}"),
    "consent": lambda crm, w, a, b: crm.record_customer_consent(
        pick(w.customers, a), "email", granted=bool(b % 2), legal_basis="consent"
    ),
    "tier": lambda crm, w, a, b: crm.change_customer_tier(
        pick(w.customers, a), ("standard", "silver", "gold")[b % 3], reason="review"
    ),
    "owner": lambda crm, w, a, b: crm.assign_customer_owner(pick(w.customers, a), f"user:{b}"),
    "interaction": lambda crm, w, a, b: crm.log_customer_interaction(
        pick(w.customers, a), kind="call", summary=f"call {b}"
    ),
    "merge": lambda crm, w, a, b: crm.merge_customers(pick(w.customers, a), pick(w.customers, b)),
    "lead": _lead,
    "lead_activity": lambda crm, w, a, b: crm.log_lead_activity(
        pick(w.leads, a), kind="call", summary="hi"
    ),
    "convert": _convert,
    "deal": _deal,
    "stage": lambda crm, w, a, b: crm.move_opportunity_stage(
        pick(w.deals, a), PIPELINE[b % len(PIPELINE)]
    ),
    "amount": lambda crm, w, a, b: crm.change_opportunity_amount(pick(w.deals, a), str(b), "EUR"),
    "win": lambda crm, w, a, b: win(crm, pick(w.deals, a), str(b)),
    "lose": lambda crm, w, a, b: crm.lose_opportunity(pick(w.deals, a), reason="no"),
    "reopen_deal": lambda crm, w, a, b: crm.reopen_opportunity(pick(w.deals, a)),
    "ticket": _ticket,
    "wait": lambda crm, w, a, b: crm.wait_on_customer(pick(w.tickets, a)),
    "resolve": lambda crm, w, a, b: crm.resolve_ticket(pick(w.tickets, a), "done"),
    "close": lambda crm, w, a, b: crm.close_ticket(pick(w.tickets, a)),
    "reopen_ticket": lambda crm, w, a, b: crm.reopen_ticket(pick(w.tickets, a)),
    "rate": lambda crm, w, a, b: crm.rate_ticket(
        pick(w.tickets, a), 1 + b % 5, comment=f"rated {b}" if b % 2 else ""
    ),
    "enrol": lambda crm, w, a, b: crm.enrol_customer_in_campaign(
        pick(w.customers, a), f"campaign {b % 3}", channel="email"
    ),
    "erase": _erase,
    "erase_lead": lambda crm, w, a, b: crm.erase_lead(pick(w.leads, a), reason="request"),
}

# Customers, deals, tickets and leads first, so that most commands have something to act on,
# and one merge and one conversion, which random scripts reach too rarely.
PRELUDE = [
    *[("register", 2 * n, n) for n in range(4)],  # even: no email, so no clash
    *[(kind, n, n + 1) for kind in ("deal", "ticket", "lead") for n in range(2)],
    ("ticket", 3, 0),
    ("merge", 0, 3),
    ("convert", 0, 1),
    ("consent", 1, 1),
    ("enrol", 1, 1),
    ("interaction", 1, 1),
    ("resolve", 1, 0),
    ("erase", 1, 7),  # customer 1 and customer 3's ticket: every script covers an erasure
]


def commands(crm: CRM, world: World, clock: FixedClock) -> dict[str, Command]:
    """COMMANDS on this CRM and world, each some minutes on: some instants shared, some not."""

    def at_next_instant(command: Callable[[CRM, World, int, int], Any]) -> Command:
        def run(a: int, b: int) -> None:
            clock.advance(minutes=a % 3)
            command(crm, world, a, b)

        return run

    return {name: at_next_instant(command) for name, command in COMMANDS.items()}


# No shrinking: every example replays the whole log, which grows with each one, so shrinking a
# failure takes minutes; a failing script of at most 40 commands is short enough to read.
@settings(REBUILD_EXAMPLES, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(script=random_scripts(sorted(COMMANDS), a=20, b=20, max_size=40))
def test_a_rebuild_from_zero_gives_the_rows_of_the_live_projection(
    crm: CRM, c360: Any, clock: FixedClock, script: list[Step]
) -> None:
    live, catch_up_live = c360
    play([*PRELUDE, *script], commands(crm, World(), clock), catch_up_live, catch_up_every=4)

    with rebuilt_from_zero(crm, live, Customer360Projection) as rebuilt:
        for table in Customer360View.tables:
            assert rows_of(rebuilt, table) == rows_of(live, table), table


# --- the one-statement document equals the several-query one it replaced ----------------------

# The former `customer()`: seven queries in one REPEATABLE READ snapshot (the reference).
REFERENCE_GROUP = (
    "WITH RECURSIVE group_(customer_id) AS (SELECT %s::uuid UNION "
    "SELECT c.customer_id FROM {customers} c JOIN group_ g ON c.merged_into = g.customer_id) "
)
REFERENCE_IN_GROUP = "customer_id IN (SELECT customer_id FROM group_)"
REFERENCE_COUNTS = (
    "SELECT (SELECT count(*) FROM {leads} WHERE " + REFERENCE_IN_GROUP + ") AS leads, o.*, t.*, "
    "(SELECT max(last_interaction_at) FROM {customers} WHERE " + REFERENCE_IN_GROUP + ") "
    "AS last_interaction_at "
    "FROM (SELECT count(*) FILTER (WHERE stage NOT IN ('won', 'lost')) "
    "AS open_opportunities, count(*) FILTER (WHERE stage = 'won') AS won_opportunities, "
    "count(*) FILTER (WHERE stage = 'lost') AS lost_opportunities "
    "FROM {opportunities} WHERE " + REFERENCE_IN_GROUP + ") o, "
    "(SELECT count(*) FILTER (WHERE status IN ('open', 'waiting_on_customer')) AS open_tickets, "
    "count(*) FILTER (WHERE status NOT IN ('open', 'waiting_on_customer')) AS closed_tickets, "
    "avg(csat) AS avg_csat FROM {tickets} WHERE " + REFERENCE_IN_GROUP + ") t"
)


def reference_customer(view: Customer360View, customer_id: UUID) -> dict[str, Any] | None:
    """The 360° document as the multi-query implementation built it."""
    readers = {logical: view.reader(logical) for logical in view.tables}

    def rows(query: str, *params: Any, group: bool = False) -> list[dict[str, Any]]:
        if group:
            query, params = REFERENCE_GROUP + query, (customer_id, *params)
        curs.execute(SQL(query).format(**readers), params)
        return list(curs.fetchall())

    with view.datastore.transaction(commit=False) as curs:
        curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        found = rows("SELECT * FROM {customers} WHERE customer_id = %s", customer_id)
        if not found:
            return None
        merged = rows(
            "SELECT customer_id FROM group_ WHERE customer_id <> %s ORDER BY customer_id",
            customer_id,
            group=True,
        )
        contacts = rows(
            "SELECT contact_id, name, title, email, phone FROM {contacts} "
            "WHERE customer_id = %s ORDER BY name, contact_id",
            customer_id,
        )
        tags = rows("SELECT tag FROM {tags} WHERE customer_id = %s ORDER BY tag", customer_id)
        consents = rows(
            "SELECT channel, granted, legal_basis, recorded_at FROM {consents} "
            "WHERE customer_id = %s ORDER BY channel",
            customer_id,
        )
        campaigns = rows(
            "SELECT campaign, channel, enrolled_at FROM {campaigns} "
            "WHERE customer_id = %s ORDER BY campaign",
            customer_id,
        )
        counts = rows(REFERENCE_COUNTS, group=True)[0]
        won = rows(
            "SELECT currency, sum(amount) AS total FROM {opportunities} "
            "WHERE stage = 'won' AND " + REFERENCE_IN_GROUP + " "
            "GROUP BY currency ORDER BY currency",
            group=True,
        )
    avg_csat = counts.pop("avg_csat")
    return {
        **found[0],
        "last_interaction_at": counts.pop("last_interaction_at"),
        "merged_ids": [row["customer_id"] for row in merged],
        "contacts": contacts,
        "tags": [row["tag"] for row in tags],
        "consents": {row.pop("channel"): row for row in consents},
        "campaigns": campaigns,
        "counts": counts,
        "won_totals": {row["currency"]: row["total"] for row in won},
        "avg_csat": None if avg_csat is None else float(avg_csat),
    }


def test_the_one_statement_document_equals_the_multi_query_one(
    crm: CRM, c360: Any, clock: FixedClock
) -> None:
    view, catch_up_live = c360
    survivor = register(crm, "Acme", email="sales@acme.com")
    duplicate = register(crm, "ACME Inc", phone="13812345678")
    older = register(crm, "Acme Old")  # merged into the duplicate first: a chain of merges
    crm.add_customer_contact(survivor, name="Wang", title="CTO", email="wang@acme.com")
    crm.add_customer_contact(survivor, name="Li", title="CFO")
    crm.add_customer_contact(duplicate, name="Zhao", title="CEO", phone="13900000000")
    for customer, tag in ((survivor, "vip"), (duplicate, "retail"), (older, "legacy")):
        crm.tag_customer(customer, tag)
    crm.record_customer_consent(survivor, "sms", granted=True, legal_basis="contract")
    crm.enrol_customer_in_campaign(survivor, "spring", channel="sms")
    clock.advance(hours=1)
    crm.record_customer_consent(survivor, "email", granted=False, legal_basis="consent")
    win(crm, open_deal(crm, survivor), "1000.50")
    win(crm, open_deal(crm, duplicate, "100", "USD"), "120.25", "USD")
    win(crm, open_deal(crm, older), "300")
    crm.lose_opportunity(open_deal(crm, survivor), reason="budget")
    open_deal(crm, duplicate)
    for customer, score in ((survivor, 5), (duplicate, 4), (older, 4)):
        ticket = open_ticket(crm, customer)
        crm.resolve_ticket(ticket, "fixed")
        crm.rate_ticket(ticket, score)
    open_ticket(crm, older)
    lead = crm.capture_lead(channel="ads", name="L", region="east", email="l@x.com").id
    crm.qualify_lead(lead)
    crm.convert_lead(lead, duplicate)
    clock.advance(days=1)
    crm.log_customer_interaction(older, kind="call", summary="Before the merge")
    crm.merge_customers(duplicate, older)
    crm.merge_customers(survivor, duplicate)
    catch_up_live()

    doc = view.customer(survivor)

    assert doc is not None
    assert doc == reference_customer(view, survivor)
    assert repr(doc) == repr(reference_customer(view, survivor))  # the same types, key order
    assert doc["merged_ids"] == sorted([duplicate, older])
    assert all(isinstance(merged, UUID) for merged in doc["merged_ids"])
    assert [c["name"] for c in doc["contacts"]] == ["Li", "Wang", "Zhao"]
    assert all(isinstance(c["contact_id"], UUID) for c in doc["contacts"])
    assert doc["contacts"][0]["email"] is None
    assert doc["tags"] == ["legacy", "retail", "vip"]
    assert list(doc["consents"]) == ["email", "sms"]
    assert doc["consents"]["email"] == {
        "granted": False,
        "legal_basis": "consent",
        "recorded_at": MONDAY_9AM + timedelta(hours=1),
    }
    assert doc["campaigns"] == [{"campaign": "spring", "channel": "sms", "enrolled_at": MONDAY_9AM}]
    assert doc["won_totals"] == {"CNY": Decimal("1300.50"), "USD": Decimal("120.25")}
    assert all(isinstance(total, Decimal) for total in doc["won_totals"].values())
    assert doc["counts"] == {
        "leads": 1,
        "open_opportunities": 1,
        "won_opportunities": 3,
        "lost_opportunities": 1,
        "open_tickets": 1,
        "closed_tickets": 3,
    }
    assert doc["avg_csat"] == pytest.approx(13 / 3)
    assert doc["last_interaction_at"] == MONDAY_9AM + timedelta(days=1, hours=1)
    assert doc["last_interaction_at"].tzinfo is not None
    for customer in (duplicate, older):  # the merged ones: empty lists, None, as before
        assert view.customer(customer) == reference_customer(view, customer)
    fresh = register(crm, "Fresh")
    catch_up_live()
    assert repr(view.customer(fresh)) == repr(reference_customer(view, fresh))
    assert view.customer(UUID(int=7)) is None
    assert reference_customer(view, UUID(int=7)) is None


def test_the_document_is_one_statement_without_an_explicit_transaction(
    crm: CRM, c360: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    view, catch_up_live = c360
    survivor, duplicate = register(crm, "Acme"), register(crm, "Acme Inc")
    crm.merge_customers(survivor, duplicate)
    catch_up_live()
    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(query if isinstance(query, str) else query.as_string(self))
        return execute(self, query, *args, **kwargs)

    def no_transaction(**kwargs: Any) -> Any:
        raise AssertionError("customer() opened an explicit transaction")

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    monkeypatch.setattr(view.datastore, "transaction", no_transaction)

    doc = view.customer(survivor)
    missing = view.customer(UUID(int=7))

    assert doc is not None and doc["merged_ids"] == [duplicate]
    assert missing is None
    assert len(statements) == 2  # one per call
    assert all(statement.startswith("WITH RECURSIVE group_") for statement in statements)
