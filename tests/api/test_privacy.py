"""Data-subject rights over HTTP: erasure, subject export, consent-checked campaign enrolment."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from domain.personal import REDACTED
from tests.api.conftest import Api

Headers = dict[str, str]
REASON = {"reason": "Data subject request #42"}


@pytest.fixture(scope="module")
def api(module_api: Api) -> Api:
    """One API for the module: each test works on data of its own."""
    return module_api


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


def a_person(api: Api) -> tuple[dict[str, Any], str, str]:
    """A customer with an email, a contact, an interaction and a ticket; returns the email."""
    email = f"{unique('person')}@private.example.com"
    name = unique("Secret Person")
    body = {"kind": "person", "name": name, "region": "east", "email": email}
    customer = api.client.post("/customers", json=body, headers=api.admin).json()
    path = f"/customers/{customer['id']}"
    contact = {"name": unique("Secret Contact"), "email": f"c-{email}"}
    assert api.client.post(f"{path}/contacts", json=contact, headers=api.admin).is_success
    note = {"kind": "call", "summary": f"Talked to {name}"}
    assert api.client.post(f"{path}/interactions", json=note, headers=api.admin).is_success
    ticket = {"customer_id": customer["id"], "channel": "email", "subject": f"For {name}"}
    opened = api.client.post("/tickets", json={**ticket, "priority": "P3"}, headers=api.admin)
    assert opened.status_code == 201, opened.text
    return customer, email, name


def customer_360(api: Api, customer_id: str, position: int) -> dict[str, Any]:
    response = api.client.get(
        f"/customers/{customer_id}", params={"min_position": position}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_erasing_a_customer_redacts_the_360_view_the_audit_trail_and_the_access_log(
    api: Api,
) -> None:
    customer, email, name = a_person(api)
    searched = api.client.get("/customers", params={"q": name}, headers=api.admin)
    assert searched.status_code == 200

    erased = api.client.post(f"/customers/{customer['id']}/erasure", json=REASON, headers=api.admin)

    assert erased.status_code == 200, erased.text
    assert erased.headers["ETag"] == f'"{erased.json()["version"]}"'
    document = customer_360(api, customer["id"], erased.json()["position"])
    assert (document["name"], document["email"]) == (REDACTED, REDACTED)
    assert [c["name"] for c in document["contacts"]] == [REDACTED]
    history = api.client.get(f"/audit/customer/{customer['id']}/events", headers=api.admin)
    payloads = str(history.json())
    assert email not in payloads and name not in payloads
    assert history.json()["data"][-1]["type"] == "crm.customer.erased.v1"
    api.services.access_log.flush()
    with psycopg.connect(api.database_url) as conn:
        leaks = conn.execute(
            "SELECT count(*) FROM crm_access_log WHERE strpos(details::text, %s) > 0", (name,)
        ).fetchone()
    assert leaks == (0,)


def test_erasure_needs_an_admin_a_reason_and_a_known_customer(api: Api) -> None:
    customer, _, _ = a_person(api)
    path = f"/customers/{customer['id']}/erasure"

    for role in ("manager", "sales", "marketing", "service", "auditor"):
        refused = api.client.post(path, json=REASON, headers=api.as_(role))  # type: ignore[arg-type]
        assert refused.status_code == 403, role
    assert api.client.post(path, json={}, headers=api.admin).status_code == 422
    assert api.client.post(path, json={"reason": ""}, headers=api.admin).status_code == 422
    unknown = api.client.post(f"/customers/{uuid4()}/erasure", json=REASON, headers=api.admin)
    assert unknown.status_code == 404
    stale = api.client.post(path, json=REASON, headers={**api.admin, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert (
        api.client.get(f"/audit/customer/{customer['id']}/events", headers=api.admin).json()[
            "data"
        ][-1]["type"]
        != "crm.customer.erased.v1"
    )


def test_erasing_twice_changes_nothing_and_the_erased_customer_refuses_personal_data(
    api: Api,
) -> None:
    customer, _, _ = a_person(api)
    path = f"/customers/{customer['id']}"
    first = api.client.post(f"{path}/erasure", json=REASON, headers=api.admin).json()

    second = api.client.post(f"{path}/erasure", json=REASON, headers=api.admin)
    renamed = api.client.patch(path, json={"name": "Someone"}, headers=api.admin)

    assert second.status_code == 200 and second.json()["version"] == first["version"]
    assert renamed.status_code == 409
    assert renamed.json()["type"].endswith("/customer-is-erased")


def test_erasing_a_lead_redacts_its_personal_data(api: Api) -> None:
    name = unique("Secret Lead")
    body = {"channel": "event", "name": name, "region": "east", "phone": "+86 139 0000 1111"}
    lead = api.client.post("/leads", json=body, headers=api.admin).json()

    erased = api.client.post(f"/leads/{lead['id']}/erasure", json=REASON, headers=api.admin)

    assert erased.status_code == 200, erased.text
    shown = api.client.get(
        f"/leads/{lead['id']}",
        params={"min_position": erased.json()["position"]},
        headers=api.admin,
    )
    assert shown.json()["name"] == REDACTED
    assert shown.json()["region"] == "east"
    assert (
        api.client.post(f"/leads/{uuid4()}/erasure", json=REASON, headers=api.admin).status_code
        == 404
    )


def test_the_subject_export_holds_everything_about_the_customer_and_is_logged(
    api: Api,
) -> None:
    customer, email, name = a_person(api)
    consent = {"channel": "email", "granted": True, "legal_basis": "consent"}
    recorded = api.client.post(
        f"/customers/{customer['id']}/consents", json=consent, headers=api.admin
    ).json()

    exported = api.client.get(
        f"/customers/{customer['id']}/export",
        params={"min_position": recorded["position"]},
        headers=api.admin,
    )

    assert exported.status_code == 200, exported.text
    document = exported.json()
    assert document["customer"]["email"] == email
    assert document["consents"]["email"]["granted"] is True
    assert len(document["events"]) == 2  # the customer and its ticket
    assert any(
        e["type"].startswith("crm.ticket.opened") for e in sum(document["events"].values(), [])
    )
    assert document["timeline"]
    assert name in str(document)
    entries, _ = api.services.access_log.query(record_id=UUID(customer["id"]))
    assert "privacy.export" in [entry["action"] for entry in entries]

    erased = api.client.post(
        f"/customers/{customer['id']}/erasure", json=REASON, headers=api.admin
    ).json()
    after = api.client.get(
        f"/customers/{customer['id']}/export",
        params={"min_position": erased["position"]},
        headers=api.admin,
    ).json()
    assert email not in str(after) and name not in str(after["events"])


def test_only_admins_export_and_an_invisible_customer_answers_404(api: Api) -> None:
    customer, _, _ = a_person(api)

    for role in ("manager", "sales", "marketing", "service", "auditor"):
        refused = api.client.get(f"/customers/{customer['id']}/export", headers=api.as_(role))  # type: ignore[arg-type]
        assert refused.status_code == 403, role
    assert api.client.get(f"/customers/{uuid4()}/export", headers=api.admin).status_code == 404


def test_a_campaign_enrolment_needs_the_customers_consent_on_that_channel(api: Api) -> None:
    customer, _, _ = a_person(api)
    path = f"/customers/{customer['id']}"
    marketing = api.as_("marketing")
    enrol = {"campaign": "spring-newsletter", "channel": "email"}

    refused = api.client.post(f"{path}/campaigns", json=enrol, headers=marketing)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/no-consent-for-channel")
    consent = {"channel": "email", "granted": True, "legal_basis": "consent"}
    assert api.client.post(f"{path}/consents", json=consent, headers=api.admin).is_success

    accepted = api.client.post(f"{path}/campaigns", json=enrol, headers=marketing)
    assert accepted.status_code == 200, accepted.text
    by_sms = api.client.post(
        f"{path}/campaigns", json={**enrol, "channel": "sms"}, headers=marketing
    )
    assert by_sms.status_code == 409
    assert (
        api.client.post(f"{path}/campaigns", json=enrol, headers=api.as_("service")).status_code
        == 403
    )
    bad = api.client.post(
        f"{path}/campaigns", json={"campaign": "x", "channel": "fax"}, headers=marketing
    )
    assert bad.status_code == 422


def test_erasing_a_customer_reaches_duplicates_merged_into_it_at_any_depth(api: Api) -> None:
    first, _, first_name = a_person(api)
    second, _, _ = a_person(api)
    survivor, _, _ = a_person(api)
    for duplicate, into in ((first, second), (second, survivor)):
        merged = api.client.post(
            f"/customers/{into['id']}/merge",
            json={"duplicate_id": duplicate["id"]},
            headers=api.admin,
        )
        assert merged.status_code == 200, merged.text
    position = merged.json()["position"]
    api.client.get(
        f"/customers/{survivor['id']}", params={"min_position": position}, headers=api.admin
    )

    erased = api.client.post(f"/customers/{survivor['id']}/erasure", json=REASON, headers=api.admin)

    assert erased.status_code == 200, erased.text
    history = api.client.get(f"/audit/customer/{first['id']}/events", headers=api.admin)
    assert first_name not in str(history.json())
    assert history.json()["data"][0]["payload"]["name"] == REDACTED


def test_billing_numbers_are_shown_to_the_right_roles_and_by_their_last_4_to_others(
    api: Api,
) -> None:
    customer, _, _ = a_person(api)
    path = f"/customers/{customer['id']}"
    body = {"id_number": "110105194912310021", "bank_account": "6222 0212 3456 7890 128"}

    recorded = api.client.post(f"{path}/billing-details", json=body, headers=api.admin)

    assert recorded.status_code == 200, recorded.text
    position = {"min_position": recorded.json()["position"]}
    clear = api.client.get(path, params=position, headers=api.admin).json()
    masked = api.client.get(path, params=position, headers=api.as_("auditor")).json()
    assert (clear["id_number"], clear["bank_account"]) == (
        "110105194912310021",
        "6222021234567890128",
    )
    assert (masked["id_number"], masked["bank_account"]) == ("****0021", "****0128")
    bad = {"id_number": "12/34", "bank_account": None}
    assert (
        api.client.post(f"{path}/billing-details", json=bad, headers=api.admin).status_code == 422
    )
    unknown = api.client.post(f"/customers/{uuid4()}/billing-details", json=body, headers=api.admin)
    assert unknown.status_code == 404


def test_erasure_scrubs_searches_for_the_persons_phone_in_any_format(api: Api) -> None:
    digits = f"139{uuid4().int % 10**8:08d}"
    body = {"kind": "person", "name": unique("Phoned"), "region": "east", "phone": digits}
    customer = api.client.post("/customers", json=body, headers=api.admin).json()
    spaced = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    assert api.client.get("/customers", params={"q": spaced}, headers=api.admin).is_success

    api.client.post(f"/customers/{customer['id']}/erasure", json=REASON, headers=api.admin)

    api.services.access_log.flush()
    with psycopg.connect(api.database_url) as conn:
        leaks = conn.execute(
            "SELECT count(*) FROM crm_access_log WHERE strpos(details::text, %s) > 0", (spaced,)
        ).fetchone()
    assert leaks == (0,)
