"""Customers over HTTP: register, search, the 360° view and timeline, and every customer command.

One API serves the whole module (starting one per test costs seconds); each test works on
customers of its own, so tests do not see each other's data.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from api.security import Role
from tests.api.conftest import Api

Headers = dict[str, str]


@pytest.fixture(scope="module")
def api(module_api: Api) -> Api:
    """One API for the module: each test works on data of its own."""
    return module_api


def unique(prefix: str = "x") -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


def register(api: Api, headers: Headers | None = None, **fields: Any) -> dict[str, Any]:
    body = {"kind": "company", "name": unique("Acme"), "region": "east", **fields}
    response = api.client.post("/customers", json=body, headers=headers or api.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def post(
    api: Api, customer: dict[str, Any], action: str, body: Any, headers: Headers | None = None
) -> Any:
    return api.client.post(
        f"/customers/{customer['id']}/{action}", json=body, headers=headers or api.admin
    )


def read(api: Api, customer: dict[str, Any], headers: Headers | None = None) -> Any:
    return api.client.get(
        f"/customers/{customer['id']}",
        params={"min_position": head(api)},
        headers=headers or api.admin,
    )


def document(api: Api, customer: dict[str, Any], headers: Headers | None = None) -> Any:
    response = read(api, customer, headers)
    assert response.status_code == 200, response.text
    return response.json()


def search(api: Api, headers: Headers | None = None, **params: Any) -> list[str]:
    response = api.client.get(
        "/customers", params={"min_position": head(api), **params}, headers=headers or api.admin
    )
    assert response.status_code == 200, response.text
    return [row["customer_id"] for row in response.json()["data"]]


def head(api: Api) -> int:
    return int(api.crm.recorder.max_notification_id() or 0)


def version(api: Api, customer: dict[str, Any]) -> int:
    return int(api.crm.repository.get(UUID(customer["id"])).version)


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return str(response.json()["type"].rsplit("/", 1)[-1])


def sales(api: Api, name: str = "sam") -> Headers:
    return api.as_("sales", name, region="east")


def email() -> str:
    return f"{unique('buyer')}@acme.example"


# --- register ----------------------------------------------------------------------------------


def test_registering_a_customer_answers_201_with_location_and_etag(api: Api) -> None:
    address = email()
    response = api.client.post(
        "/customers",
        json={"kind": "company", "name": "Acme", "region": "east", "email": address},
        headers=sales(api),
    )

    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/customers/{created['id']}"
    assert response.headers["etag"] == f'"{created["version"]}"'
    profile = document(api, created, sales(api))
    assert (profile["email"], profile["owner"], profile["tier"]) == (address, "sam", "standard")


def test_registering_is_refused_for_bad_input_roles_and_others_records(api: Api) -> None:
    body = {"kind": "company", "name": "Acme", "region": "east"}
    before = head(api)

    assert api.client.post("/customers", json=body).status_code == 401
    for role in ("marketing", "service", "auditor"):
        refused = api.client.post("/customers", json=body, headers=api.as_(role))
        assert refused.status_code == 403, role
    someone_else = {**body, "owner": "ann"}
    assert api.client.post("/customers", json=someone_else, headers=sales(api)).status_code == 403
    elsewhere = {**body, "region": "west"}
    manager = api.as_("manager", "mia", region="east")
    assert api.client.post("/customers", json=elsewhere, headers=manager).status_code == 403
    for bad in ({**body, "kind": "robot"}, {**body, "email": "nope"}, {**body, "extra": 1}):
        invalid = api.client.post("/customers", json=bad, headers=api.admin)
        assert invalid.status_code == 422
        assert problem_type(invalid) == "validation-error"
    bad_phone = api.client.post("/customers", json={**body, "phone": "12"}, headers=api.admin)
    assert bad_phone.status_code == 422
    assert head(api) == before


def test_an_email_registered_already_is_refused_with_409(api: Api) -> None:
    address = email()
    register(api, email=address)

    again = api.client.post(
        "/customers",
        json={"kind": "person", "name": "Other", "region": "east", "email": address.upper()},
        headers=api.admin,
    )

    assert again.status_code == 409
    assert problem_type(again) == "customer-email-already-registered"


# --- the 360° view -----------------------------------------------------------------------------


def test_the_360_view_shows_profile_contacts_tags_consents_and_counts(api: Api) -> None:
    customer = register(api, email=email(), phone="+86 138 0013 8000", industry="retail")
    post(api, customer, "contacts", {"name": "Zhang Min", "email": email()})
    post(api, customer, "tags", {"tag": "VIP "})
    post(api, customer, "consents", {"channel": "email", "granted": True, "legal_basis": "consent"})
    api.crm.open_opportunity(
        customer_id=UUID(customer["id"]),
        title="500 units",
        amount="1000",
        currency="CNY",
        expected_close=date.today() + timedelta(days=30),
        owner="admin",
    )

    view = document(api, customer)

    assert view["customer_id"] == customer["id"]
    assert view["phone"] == "+8613800138000"
    assert [c["name"] for c in view["contacts"]] == ["Zhang Min"]
    assert view["tags"] == ["vip"]
    assert view["consents"]["email"]["granted"] is True
    assert view["counts"]["open_opportunities"] == 1
    assert view["won_totals"] == {}
    assert view["merged_ids"] == []


def test_reading_a_customer_is_written_to_the_access_log(api: Api) -> None:
    customer = register(api)
    auditor = api.as_("auditor")

    assert read(api, customer, auditor).status_code == 200

    entries, _ = api.services.access_log.query(username="auditor", record_id=UUID(customer["id"]))
    assert [e["action"] for e in entries] == ["customer.read"]


def test_an_unknown_or_invisible_customer_answers_404(api: Api) -> None:
    others = register(api, owner="ann")
    west = register(api, region="west")

    assert read(api, {"id": str(uuid4())}).status_code == 404
    assert read(api, others, sales(api)).status_code == 404
    assert read(api, others, api.as_("sales", "ann")).status_code == 200
    assert read(api, west, api.as_("manager", "mia", region="east")).status_code == 404
    assert read(api, west, api.as_("manager", "wes", region="west")).status_code == 200
    assert api.client.get(f"/customers/{others['id']}").status_code == 401
    assert api.client.get("/customers/not-a-uuid", headers=api.admin).status_code == 422


def test_marketing_sees_contact_data_only_with_consent(api: Api) -> None:
    address = email()
    name = unique("Consenting")
    customer = register(api, email=address, phone="+86 138 0013 8001", name=name)
    post(api, customer, "contacts", {"name": "Zhang Min", "email": email()})
    marketing = api.as_("marketing")

    hidden = document(api, customer, marketing)
    # Marketing searches by name: a search by address must not confirm a hidden one.
    listed = api.client.get("/customers", params={"q": name}, headers=marketing).json()

    # Masked, not hidden: `b***@acme.example`, `+86 138****8001` (tests/api/test_masking.py).
    assert (hidden["email"], hidden["phone"]) == ("b***@acme.example", "+86 138****8001")
    assert hidden["contacts"][0]["email"] == "b***@acme.example"
    assert listed["data"][0]["email"] == "b***@acme.example"

    post(api, customer, "consents", {"channel": "email", "granted": True, "legal_basis": "consent"})
    shown = document(api, customer, marketing)
    listed = api.client.get(
        "/customers", params={"q": name, "min_position": head(api)}, headers=marketing
    ).json()

    assert (shown["email"], shown["phone"]) == (address, "+86 138****8001")
    assert shown["contacts"][0]["email"] == "b***@acme.example"  # consent is the customer's own
    assert listed["data"][0]["email"] == address


@pytest.mark.parametrize("role", ["service", "marketing"])
def test_roles_without_deal_access_see_no_deal_figures(api: Api, role: Role) -> None:
    customer = register(api)
    api.crm.open_opportunity(
        customer_id=UUID(customer["id"]),
        title="Big deal",
        amount="99000",
        currency="CNY",
        expected_close=date.today() + timedelta(days=30),
        owner="admin",
    )
    service = api.as_(role)

    view = document(api, customer, service)
    timeline = api.client.get(
        f"/customers/{customer['id']}/timeline",
        params={"min_position": head(api)},
        headers=service,
    ).json()["data"]

    assert view["won_totals"] is None
    assert view["counts"]["open_opportunities"] is None
    assert view["counts"]["open_tickets"] == 0
    assert all(entry["aggregate_type"] != "opportunity" for entry in timeline)
    assert [entry["aggregate_type"] for entry in timeline] == ["customer"]


# --- search ------------------------------------------------------------------------------------


def test_searching_finds_customers_by_text_tag_owner_region_and_tier(api: Api) -> None:
    marker = unique("zeta")
    by_name = register(api, name=f"{marker} Trading")
    by_email = register(api, email=f"{marker}@acme.example", name=unique("Beta"))
    by_phone = register(api, phone="+86 139 1234 5678")
    tagged = register(api, name=unique("Tagged"))
    post(api, tagged, "tags", {"tag": marker})
    gold = register(api, owner="olga", region=marker)
    post(api, gold, "tier", {"tier": "gold", "reason": "volume"})

    assert set(search(api, q=marker.upper())) == {by_name["id"], by_email["id"]}
    assert search(api, q="139-1234-5678") == [by_phone["id"]]
    assert search(api, tag=marker) == [tagged["id"]]
    assert search(api, owner="olga", region=marker) == [gold["id"]]
    assert search(api, region=marker, tier="gold") == [gold["id"]]
    assert search(api, region=marker, tier="silver") == []


def test_search_pages_through_customers_by_name_with_a_cursor(api: Api) -> None:
    region = unique("r")
    ids = [register(api, region=region, name=f"Customer {n}")["id"] for n in range(5)]

    first = api.client.get(
        "/customers",
        params={"region": region, "limit": 2, "min_position": head(api)},
        headers=api.admin,
    ).json()
    rest = api.client.get(
        "/customers",
        params={"region": region, "limit": 10, "cursor": first["next_cursor"]},
        headers=api.admin,
    ).json()

    found = [row["customer_id"] for row in first["data"] + rest["data"]]
    assert found == ids
    assert rest["next_cursor"] is None


def test_search_lists_only_customers_the_caller_may_see(api: Api) -> None:
    marker = unique("r")
    mine = register(api, owner="sam", region="east", name=f"{marker} 1 mine")
    anns = register(api, owner="ann", region="east", name=f"{marker} 2 ann's")
    mine_west = register(api, owner="sam", region="west", name=f"{marker} 3 west")

    assert len(search(api, q=marker)) == 3
    assert search(api, sales(api), q=marker) == [mine["id"], mine_west["id"]]
    manager = api.as_("manager", "mia", region="east")
    assert search(api, manager, q=marker) == [mine["id"], anns["id"]]
    assert search(api, manager, q=marker, region="west") == []


def test_search_rejects_bad_parameters(api: Api) -> None:
    for params in (
        {"tier": "diamond"},
        {"limit": 0},
        {"limit": 501},
        {"cursor": "garbage"},
        {"q": "a\x00b"},
        {"region": ""},
    ):
        response = api.client.get("/customers", params=params, headers=api.admin)
        assert response.status_code == 422, params
    assert api.client.get("/customers").status_code == 401


# --- timeline ----------------------------------------------------------------------------------


def test_the_timeline_lists_events_newest_first_by_pages_and_logs_the_read(api: Api) -> None:
    customer = register(api)
    for tag in ("a", "b", "c"):
        post(api, customer, "tags", {"tag": tag})
    url = f"/customers/{customer['id']}/timeline"

    first = api.client.get(
        url, params={"limit": 2, "min_position": head(api)}, headers=api.admin
    ).json()
    rest = api.client.get(
        url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=api.admin
    ).json()

    summaries = [entry["summary"] for entry in first["data"] + rest["data"]]
    assert summaries[:3] == ["Customer tagged: c", "Customer tagged: b", "Customer tagged: a"]
    assert summaries[3].startswith("Customer registered")
    assert rest["next_cursor"] is None
    entries, _ = api.services.access_log.query(record_id=UUID(customer["id"]))
    assert {e["action"] for e in entries} == {"customer.timeline"}


def test_the_timeline_of_an_invisible_customer_answers_404(api: Api) -> None:
    others = register(api, owner="ann")
    url = f"/customers/{others['id']}/timeline"
    caught_up = {"min_position": head(api)}

    assert api.client.get(url, params=caught_up, headers=sales(api)).status_code == 404
    assert api.client.get(url, params=caught_up, headers=api.as_("sales", "ann")).status_code == 200
    unknown = api.client.get(f"/customers/{uuid4()}/timeline", headers=api.admin)
    assert unknown.status_code == 404
    bad_cursor = api.client.get(url, params={**caught_up, "cursor": "x"}, headers=api.admin)
    assert bad_cursor.status_code == 422
    assert problem_type(bad_cursor) == "invalid-cursor"
    assert api.client.get(url).status_code == 401


def test_marketing_sees_addresses_in_the_timeline_masked(api: Api) -> None:
    address = email()
    customer = register(api, email=address)

    timeline = api.client.get(
        f"/customers/{customer['id']}/timeline",
        params={"min_position": head(api)},
        headers=api.as_("marketing"),
    ).json()["data"]

    assert timeline[0]["payload"]["email"] == "b***@acme.example"
    assert address not in str(timeline)


# --- update ------------------------------------------------------------------------------------


def test_patching_keeps_absent_fields_changes_given_ones_and_clears_nulls(api: Api) -> None:
    customer = register(api, email=email(), phone="+86 138 0013 8002", industry="retail")
    new_address = email()

    response = api.client.patch(
        f"/customers/{customer['id']}",
        json={"email": new_address, "phone": None, "industry": None},
        headers={**api.admin, "If-Match": f'"{customer["version"]}"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{customer["version"] + 1}"'
    view = document(api, customer)
    assert (view["email"], view["phone"], view["industry"]) == (new_address, None, "")
    assert view["name"].startswith("Acme")


def test_patching_is_refused_for_taken_emails_cleared_names_and_foreign_regions(api: Api) -> None:
    taken = email()
    register(api, email=taken)
    customer = register(api, email=email())
    url = f"/customers/{customer['id']}"
    before = head(api)

    conflict = api.client.patch(url, json={"email": taken}, headers=api.admin)
    assert conflict.status_code == 409
    assert problem_type(conflict) == "customer-email-already-registered"
    for bad in ({"name": None}, {"region": None}, {"email": "nope"}, {"colour": "red"}):
        assert api.client.patch(url, json=bad, headers=api.admin).status_code == 422, bad
    manager = api.as_("manager", "mia", region="east")
    assert api.client.patch(url, json={"region": "west"}, headers=manager).status_code == 403
    assert api.client.patch(url, json={"name": "X"}, headers=sales(api)).status_code == 404
    marketing = api.as_("marketing")
    assert api.client.patch(url, json={"name": "X"}, headers=marketing).status_code == 403
    assert api.client.patch(url, json={"name": "X"}).status_code == 401
    assert head(api) == before


def test_text_with_a_nul_byte_is_refused_before_it_reaches_the_read_models(api: Api) -> None:
    customer = register(api)
    before = head(api)

    for action, body in (
        ("tags", {"tag": "a\x00"}),
        ("contacts", {"name": "Li\x00"}),
        ("tier", {"tier": "gold", "reason": "\x00"}),
    ):
        assert post(api, customer, action, body).status_code == 422, action
    patched = api.client.patch(
        f"/customers/{customer['id']}", json={"name": "a\x00"}, headers=api.admin
    )
    assert patched.status_code == 422
    untagged = api.client.delete(f"/customers/{customer['id']}/tags/a%00", headers=api.admin)
    assert untagged.status_code == 422
    assert head(api) == before


# --- one command after another -----------------------------------------------------------------


def test_contacts_are_added_with_201_and_removed(api: Api) -> None:
    customer = register(api)

    added = post(api, customer, "contacts", {"name": "Zhang Min", "title": "Buyer"})
    assert added.status_code == 201, added.text
    contact_id = added.json()["contact_id"]
    assert added.headers["location"] == f"/customers/{customer['id']}/contacts/{contact_id}"
    assert [c["contact_id"] for c in document(api, customer)["contacts"]] == [contact_id]

    removed = api.client.delete(
        f"/customers/{customer['id']}/contacts/{contact_id}", headers=api.admin
    )
    assert removed.status_code == 200
    assert document(api, customer)["contacts"] == []

    again = api.client.delete(
        f"/customers/{customer['id']}/contacts/{contact_id}", headers=api.admin
    )
    assert again.status_code == 404
    assert problem_type(again) == "contact-not-found"
    assert post(api, customer, "contacts", {"name": ""}).status_code == 422


def test_tags_are_added_and_removed_and_blank_ones_refused(api: Api) -> None:
    customer = register(api)

    assert post(api, customer, "tags", {"tag": "Key Account"}).status_code == 200
    assert document(api, customer)["tags"] == ["key account"]
    untagged = api.client.delete(f"/customers/{customer['id']}/tags/key account", headers=api.admin)
    assert untagged.status_code == 200
    assert document(api, customer)["tags"] == []
    blank = post(api, customer, "tags", {"tag": "   "})
    assert blank.status_code == 422
    assert problem_type(blank) == "invalid-value"


def test_repeating_a_tag_is_a_no_op_without_a_position(api: Api) -> None:
    customer = register(api)
    post(api, customer, "tags", {"tag": "vip"})

    again = post(api, customer, "tags", {"tag": "vip"})

    assert again.status_code == 200
    assert again.json()["position"] is None
    assert again.json()["version"] == customer["version"] + 1


def test_an_owner_is_assigned_within_what_the_caller_may_see(api: Api) -> None:
    customer = register(api, owner="sam")

    given_away = post(api, customer, "owner", {"owner": "ann"}, sales(api))
    assert given_away.status_code == 403

    manager = api.as_("manager", "mia", region="east")
    assert post(api, customer, "owner", {"owner": "ann"}, manager).status_code == 200
    assert document(api, customer)["owner"] == "ann"
    assert read(api, customer, sales(api)).status_code == 404
    assert post(api, customer, "owner", {"owner": ""}).status_code == 422


def test_interactions_are_logged_but_not_in_the_future(api: Api) -> None:
    customer = register(api)
    occurred = datetime.now(UTC) - timedelta(hours=1)

    logged = post(
        api,
        customer,
        "interactions",
        {"kind": "visit", "summary": "Walked the warehouse", "occurred_at": occurred.isoformat()},
    )
    assert logged.status_code == 200
    assert document(api, customer)["last_interaction_at"] is not None

    future = datetime.now(UTC) + timedelta(days=1)
    refused = post(
        api,
        customer,
        "interactions",
        {"kind": "call", "summary": "Later", "occurred_at": future.isoformat()},
    )
    assert refused.status_code == 409
    assert problem_type(refused) == "interaction-in-the-future"
    unknown_contact = post(
        api, customer, "interactions", {"kind": "call", "summary": "Hi", "contact_id": str(uuid4())}
    )
    assert unknown_contact.status_code == 404
    naive = post(
        api,
        customer,
        "interactions",
        {"kind": "call", "summary": "Hi", "occurred_at": "2025-01-01T09:00:00"},
    )
    assert naive.status_code == 422
    assert post(api, customer, "interactions", {"kind": "fax", "summary": "x"}).status_code == 422


def test_consents_are_recorded_per_channel(api: Api) -> None:
    customer = register(api)

    recorded = post(
        api, customer, "consents", {"channel": "sms", "granted": False, "legal_basis": "contract"}
    )

    assert recorded.status_code == 200
    consent = document(api, customer)["consents"]["sms"]
    assert (consent["granted"], consent["legal_basis"]) == (False, "contract")
    bad = {"channel": "fax", "granted": True, "legal_basis": "consent"}
    assert post(api, customer, "consents", bad).status_code == 422


def test_the_tier_changes_with_a_reason(api: Api) -> None:
    customer = register(api)

    assert post(api, customer, "tier", {"tier": "platinum", "reason": "volume"}).status_code == 200
    assert document(api, customer)["tier"] == "platinum"
    assert post(api, customer, "tier", {"tier": "diamond", "reason": "x"}).status_code == 422
    assert post(api, customer, "tier", {"tier": "gold"}).status_code == 422


# --- merge -------------------------------------------------------------------------------------


def test_merging_folds_the_duplicate_into_the_survivor(api: Api) -> None:
    marker = unique("twin")
    survivor = register(api, name=f"{marker} A")
    duplicate = register(api, name=f"{marker} B", email=email())
    post(api, duplicate, "tags", {"tag": "from-duplicate"})

    merged = post(api, survivor, "merge", {"duplicate_id": duplicate["id"]})

    assert merged.status_code == 200, merged.text
    view = document(api, survivor)
    assert view["merged_ids"] == [duplicate["id"]]
    assert view["tags"] == ["from-duplicate"]
    assert document(api, duplicate)["merged_into"] == survivor["id"]
    assert search(api, q=marker) == [survivor["id"]]
    assert search(api, q=marker, include_merged=True) == [survivor["id"], duplicate["id"]]


def test_a_merged_duplicate_refuses_commands_and_cannot_survive_a_merge(api: Api) -> None:
    survivor, duplicate = register(api), register(api)
    post(api, survivor, "merge", {"duplicate_id": duplicate["id"]})

    frozen = post(api, duplicate, "tags", {"tag": "late"})
    into_merged = post(api, duplicate, "merge", {"duplicate_id": register(api)["id"]})

    assert frozen.status_code == 409
    assert problem_type(frozen) == "customer-is-merged"
    assert into_merged.status_code == 409
    assert problem_type(into_merged) == "cannot-merge-into-merged-customer"


def test_merging_is_refused_for_itself_unknown_and_invisible_duplicates(api: Api) -> None:
    mine = register(api, owner="sam")
    others = register(api, owner="ann")

    itself = post(api, mine, "merge", {"duplicate_id": mine["id"]})
    assert itself.status_code == 409
    assert problem_type(itself) == "cannot-merge-into-itself"
    assert post(api, mine, "merge", {"duplicate_id": str(uuid4())}).status_code == 404
    assert post(api, mine, "merge", {"duplicate_id": others["id"]}, sales(api)).status_code == 404
    assert post(api, others, "merge", {"duplicate_id": mine["id"]}, sales(api)).status_code == 404
    assert post(api, mine, "merge", {"duplicate": mine["id"]}).status_code == 422
    assert document(api, others)["merged_into"] is None


# --- every command: roles, record-level access, If-Match -----------------------------------------


def commands_on(customer: dict[str, Any], contact_id: str) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every command on an existing customer."""
    base = f"/customers/{customer['id']}"
    return [
        ("PATCH", base, {"name": "Renamed"}),
        ("POST", f"{base}/contacts", {"name": "Li"}),
        ("DELETE", f"{base}/contacts/{contact_id}", None),
        ("POST", f"{base}/tags", {"tag": "new"}),
        ("DELETE", f"{base}/tags/old", None),
        ("POST", f"{base}/owner", {"owner": "olga"}),
        ("POST", f"{base}/interactions", {"kind": "call", "summary": "Hi"}),
        (
            "POST",
            f"{base}/consents",
            {"channel": "email", "granted": True, "legal_basis": "consent"},
        ),
        ("POST", f"{base}/tier", {"tier": "gold", "reason": "volume"}),
        ("POST", f"{base}/merge", {"duplicate_id": str(uuid4())}),
    ]


@pytest.fixture
def prepared(api: Api) -> tuple[dict[str, Any], str]:
    customer = register(api, owner="ann")
    contact = post(api, customer, "contacts", {"name": "Zhang Min"}).json()["contact_id"]
    post(api, customer, "tags", {"tag": "old"})
    return customer, contact


def test_no_command_runs_without_a_token_for_a_read_only_role_or_on_an_invisible_customer(
    api: Api, prepared: tuple[dict[str, Any], str]
) -> None:
    customer, contact_id = prepared
    before = head(api)
    callers = {
        401: {},
        403: api.as_("marketing"),
        404: sales(api),
    }
    for status, headers in callers.items():
        for method, path, body in commands_on(customer, contact_id):
            response = api.client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (method, path, response.text)
    for role in ("service", "auditor"):
        for method, path, body in commands_on(customer, contact_id):
            response = api.client.request(method, path, json=body, headers=api.as_(role))
            assert response.status_code == 403, (role, method, path)
    west = api.as_("manager", "wes", region="west")
    for method, path, body in commands_on(customer, contact_id):
        assert api.client.request(method, path, json=body, headers=west).status_code == 404
    assert head(api) == before


def test_a_stale_if_match_answers_412_and_writes_nothing_for_every_command(
    api: Api, prepared: tuple[dict[str, Any], str]
) -> None:
    customer, contact_id = prepared
    stale = {**api.admin, "If-Match": f'"{customer["version"]}"'}
    assert version(api, customer) > customer["version"]
    before = head(api)

    for method, path, body in commands_on(customer, contact_id):
        if path.endswith("/merge"):
            body = {"duplicate_id": register(api)["id"]}
            before = head(api)
        response = api.client.request(method, path, json=body, headers=stale)
        assert response.status_code == 412, (method, path, response.text)
        assert problem_type(response) == "concurrency-conflict"
        assert head(api) == before


def test_a_current_if_match_lets_the_command_through(api: Api) -> None:
    customer = register(api)

    response = post(api, customer, "tags", {"tag": "vip"}, {**api.admin, "If-Match": '"1"'})

    assert response.status_code == 200
    assert response.json()["version"] == 2


def test_access_log_entries_are_stored_by_the_writer_without_a_query(api: Api) -> None:
    customer = register(api)
    auditor = api.as_("auditor")
    read = api.client.get(
        f"/customers/{customer['id']}",
        params={"min_position": customer["position"]},
        headers=auditor,
    )
    assert read.status_code == 200

    deadline = time.monotonic() + 5
    while True:
        with psycopg.connect(api.database_url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM crm_access_log WHERE record_id = %s", (customer["id"],)
            ).fetchone()
        if stored and stored[0] >= 1:
            break
        assert time.monotonic() < deadline, "the access-log writer did not store the entry"
        time.sleep(0.02)


def test_marketing_cannot_confirm_a_hidden_email_by_searching_for_it(api: Api) -> None:
    address = f"{unique('hidden')}@example.com"
    name = unique("Hidden Person")
    customer = register(api, email=address, name=name)
    marketing = api.as_("marketing")

    by_email = api.client.get(
        "/customers",
        params={"q": address, "min_position": head(api)},
        headers=marketing,
    ).json()
    by_name = api.client.get("/customers", params={"q": name}, headers=marketing).json()

    assert by_email["data"] == []
    assert [row["customer_id"] for row in by_name["data"]] == [customer["id"]]


def test_a_taken_email_does_not_reveal_who_holds_it(api: Api) -> None:
    address = f"{unique('taken')}@example.com"
    register(api, email=address)

    response = api.client.post(
        "/customers",
        json={"kind": "person", "name": "Other", "region": "east", "email": address},
        headers=api.admin,
    )

    assert response.status_code == 409
    body = response.json()
    assert "existing_id" not in body
    assert "another record" in body["detail"]
