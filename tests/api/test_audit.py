"""Audit routes: a record's events and past states, the global log, the access log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson

from api.masking import mask_personal
from domain.customer import Customer
from tests.api.conftest import Api

CUSTOMER = {"kind": "company", "name": "Acme", "region": "east", "email": "buy@acme.example"}
ROLES_WITHOUT_AUDIT = ["manager", "sales", "marketing", "service"]


def register(api: Api, **changes: Any) -> UUID:
    response = api.client.post("/customers", json={**CUSTOMER, **changes}, headers=api.admin)
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


def tag(api: Api, customer_id: UUID, name: str) -> None:
    api.crm.tag_customer(customer_id, name)


def state_now(api: Api, customer_id: UUID) -> dict[str, Any]:
    state: dict[str, Any] = api.crm.state_at(Customer, customer_id).state()
    return state


# --- GET /audit/{kind}/{id}/events ------------------------------------------------------------


def test_a_records_events_carry_type_version_position_time_actor_and_payload(api: Api) -> None:
    customer_id = register(api)
    correlation = str(uuid4())
    api.client.post(
        f"/customers/{customer_id}/tags",
        json={"tag": "vip"},
        headers={**api.admin, "X-Correlation-ID": correlation},
    )
    tag(api, customer_id, "key-account")

    response = api.client.get(f"/audit/customer/{customer_id}/events", headers=api.as_("auditor"))

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "customer" and body["id"] == str(customer_id)
    events = body["data"]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    first = events[0]
    assert first["type"] == "crm.customer.registered.v1"
    assert first["actor"] == "user:admin"
    assert first["record_id"] == str(customer_id)
    assert first["payload"]["name"] == "Acme"
    assert first["time"] and first["correlation_id"]
    tags = [e for e in events if e["type"].startswith("crm.customer.tagged")]
    assert [t["payload"]["tag"] for t in tags][-1] == "key-account"
    if len(tags) == 2:  # the tags route exists: its event carries the caller's correlation id
        assert tags[0]["correlation_id"] == correlation


def test_a_records_positions_are_its_places_in_the_global_log(api: Api) -> None:
    customer_id = register(api)
    tag(api, customer_id, "vip")

    events = api.client.get(f"/audit/customer/{customer_id}/events", headers=api.admin).json()
    log = api.client.get("/audit/events", headers=api.admin, params={"limit": 500}).json()

    by_position = {e["position"]: e for e in log["data"]}
    for event in events["data"]:
        assert by_position[event["position"]] == event


def test_an_unknown_record_or_one_of_another_kind_is_404_a_bad_kind_or_id_422(api: Api) -> None:
    customer_id = register(api)
    for kind in ("lead", "opportunity", "ticket"):
        response = api.client.get(f"/audit/{kind}/{customer_id}/events", headers=api.admin)
        assert response.status_code == 404, kind
        assert response.headers["content-type"] == "application/problem+json"
    assert api.client.get(f"/audit/customer/{uuid4()}/events", headers=api.admin).status_code == 404
    assert api.client.get(f"/audit/widget/{uuid4()}/events", headers=api.admin).status_code == 422
    assert api.client.get("/audit/customer/not-a-uuid/events", headers=api.admin).status_code == 422
    assert api.client.get(f"/audit/customer/{uuid4()}/events").status_code == 401


def test_roles_other_than_admin_and_auditor_may_not_read_audit_routes(api: Api) -> None:
    customer_id = register(api)

    for role in ROLES_WITHOUT_AUDIT:
        for path in (
            f"/audit/customer/{customer_id}/events",
            f"/audit/customer/{customer_id}/state",
            "/audit/events",
            "/audit/access",
        ):
            response = api.client.get(path, headers=api.as_(role))  # type: ignore[arg-type]
            assert response.status_code == 403, (role, path)


def test_reading_a_records_events_is_written_to_the_access_log(api: Api) -> None:
    customer_id = register(api)
    auditor = api.as_("auditor", "audrey")

    api.client.get(
        f"/audit/customer/{customer_id}/events", headers={**auditor, "User-Agent": "audit-tool"}
    )
    api.client.get(f"/audit/customer/{customer_id}/state?version=1", headers=auditor)
    log = api.client.get("/audit/access", params={"record_id": str(customer_id)}, headers=auditor)

    assert log.status_code == 200
    entries = [e for e in log.json()["data"] if e["username"] == "audrey"]
    assert {e["action"] for e in entries} == {"audit.events", "audit.state"}
    events_read = next(e for e in entries if e["action"] == "audit.events")
    assert events_read["role"] == "auditor"
    assert events_read["record_kind"] == "customer"
    assert events_read["user_agent"] == "audit-tool"


# --- GET /audit/{kind}/{id}/state -------------------------------------------------------------


def test_the_state_at_a_version_is_what_the_record_was_then_and_without_one_now(api: Api) -> None:
    customer_id = register(api)
    states = {1: state_now(api, customer_id)}
    tag(api, customer_id, "vip")
    states[2] = state_now(api, customer_id)
    api.crm.update_customer_profile(customer_id, name="Acme Holdings")
    states[3] = state_now(api, customer_id)

    for version, expected in states.items():
        response = api.client.get(
            f"/audit/customer/{customer_id}/state",
            params={"version": version},
            headers=api.as_("auditor"),
        )
        assert response.status_code == 200
        assert response.json()["version"] == version
        assert response.json()["state"] == mask_personal(expected)  # auditors see it masked
    assert states[1]["tags"] != states[2]["tags"] and states[2]["name"] != states[3]["name"]
    now = api.client.get(f"/audit/customer/{customer_id}/state", headers=api.as_("auditor"))
    assert now.json()["version"] == 3 and now.json()["state"] == mask_personal(states[3])


def test_the_state_at_an_instant_equals_what_the_record_was_then(api: Api) -> None:
    customer_id = register(api)
    first = state_now(api, customer_id)
    tag(api, customer_id, "vip")
    second = state_now(api, customer_id)
    registered, tagged = (e.timestamp for e in api.crm.history(customer_id))
    between = registered + (tagged - registered) / 2

    def at(instant: Any) -> Any:
        return api.client.get(
            f"/audit/customer/{customer_id}/state",
            params={"at": instant.isoformat()},
            headers=api.admin,
        )

    assert registered < between < tagged
    assert at(registered).json()["state"] == first
    assert at(between).json()["state"] == first
    assert at(tagged).json()["state"] == second
    assert at(tagged + timedelta(days=1)).json()["state"] == second
    assert at(between).json()["as_of"].startswith(registered.isoformat()[:19])
    assert at(registered - timedelta(seconds=1)).status_code == 404


def test_a_version_it_never_had_or_a_record_of_another_kind_is_not_found(api: Api) -> None:
    customer_id = register(api)
    path = f"/audit/customer/{customer_id}/state"

    never = api.client.get(path, params={"version": 7}, headers=api.admin)
    other_kind = api.client.get(f"/audit/lead/{customer_id}/state", headers=api.admin)
    other_kind_at = api.client.get(
        f"/audit/ticket/{customer_id}/state",
        params={"at": "2030-01-01T00:00:00Z"},
        headers=api.admin,
    )

    assert never.status_code == other_kind.status_code == other_kind_at.status_code == 404


def test_an_invalid_version_or_instant_is_422(api: Api) -> None:
    customer_id = register(api)

    for params in (
        {"version": 1, "at": "2030-01-01T00:00:00Z"},
        {"version": 0},
        {"at": "2030-01-01T00:00:00"},  # no time zone: ambiguous
        {"at": "yesterday"},
    ):
        response = api.client.get(
            f"/audit/customer/{customer_id}/state", params=params, headers=api.admin
        )
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


# --- GET /audit/events ------------------------------------------------------------------------


def everything(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get("/audit/events", params={"limit": 500, **params}, headers=api.admin)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_the_global_log_pages_through_every_event_in_position_order(api: Api) -> None:
    for n in range(3):
        register(api, email=f"buyer{n}@acme.example", name=f"Acme {n}")
    all_events = everything(api)

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.client.get("/audit/events", params=params, headers=api.as_("auditor")).json()
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    positions = [e["position"] for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert seen == [mask_personal(event) for event in all_events]  # the auditor's, masked
    assert positions[-1] == api.crm.recorder.max_notification_id()


def test_the_global_log_filters_by_position_range_type_actor_and_time(api: Api) -> None:
    first = register(api)
    api.crm.tag_customer(first, "vip")  # by the system actor
    all_events = everything(api)
    positions = [e["position"] for e in all_events]
    middle = positions[len(positions) // 2]
    tagged = next(e for e in all_events if e["type"].startswith("crm.customer.tagged"))

    in_range = everything(api, from_position=positions[1], to_position=middle)
    of_type = everything(api, type="crm.customer.")
    by_system = everything(api, actor="system:crm")
    since_tagged = everything(api, since=tagged["time"])
    before_tagged = everything(api, until=tagged["time"])

    assert [e["position"] for e in in_range] == [
        p for p in positions if positions[1] <= p <= middle
    ]
    assert of_type and all(e["type"].startswith("crm.customer.") for e in of_type)
    assert len(of_type) < len(all_events)  # the email claim is not a customer event
    assert [e["position"] for e in by_system] == [tagged["position"]]
    assert tagged in since_tagged and tagged not in before_tagged
    assert before_tagged + since_tagged == all_events
    assert everything(api, type="crm.no-such-type") == []


def test_the_global_log_streams_ndjson_when_asked_and_every_read_is_access_logged(api: Api) -> None:
    for n in range(3):
        register(api, email=f"buyer{n}@acme.example", name=f"Acme {n}")

    response = api.client.get(
        "/audit/events",
        params={"limit": 1},  # pages are for JSON; NDJSON streams the whole range
        headers={**api.admin, "Accept": "application/x-ndjson"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert lines == everything(api)
    entries = api.client.get("/audit/access", headers=api.admin).json()["data"]
    assert [e["action"] for e in entries] == ["audit.log", "audit.log"]


def test_invalid_global_log_queries_are_422(api: Api) -> None:
    for params in (
        {"from_position": 0},
        {"limit": 0},
        {"limit": 501},
        {"since": "2030-01-01T00:00:00"},  # no time zone
        {"cursor": "not-a-cursor"},
        {"type": "x" * 201},
    ):
        response = api.client.get("/audit/events", params=params, headers=api.admin)
        assert response.status_code == 422, params
    assert api.client.get("/audit/events").status_code == 401


# --- GET /audit/access ------------------------------------------------------------------------


def test_the_access_log_lists_reads_newest_first_by_user_and_pages(api: Api) -> None:
    customer_id = register(api)
    for _ in range(3):
        api.client.get(f"/audit/customer/{customer_id}/events", headers=api.as_("auditor", "ann"))

    first = api.client.get(
        "/audit/access", params={"username": "ann", "limit": 2}, headers=api.admin
    ).json()
    second = api.client.get(
        "/audit/access",
        params={"username": "ann", "limit": 2, "cursor": first["next_cursor"]},
        headers=api.admin,
    ).json()

    entries = first["data"] + second["data"]
    assert len(entries) == 3 and second["next_cursor"] is None
    assert {e["username"] for e in entries} == {"ann"}
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert api.client.get("/audit/access").status_code == 401
    bad = api.client.get("/audit/access", params={"record_id": "x"}, headers=api.admin)
    assert bad.status_code == 422
