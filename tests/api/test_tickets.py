"""Tickets over HTTP: open, work and read them with SLA state; who may see and change which."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.shared import FixedClock
from tests.api.conftest import Api

ACTIONS_WITHOUT_BODY = ("respond", "wait", "resume", "close", "reopen")
ACTIONS: dict[str, dict[str, Any] | None] = {
    "assign": {"agent": "wang", "team": "support-east"},
    "respond": None,
    "wait": None,
    "resume": None,
    "escalate": {"level": 1, "reason": "VIP"},
    "priority": {"priority": "P1"},
    "resolve": {"resolution": "Refunded"},
    "close": None,
    "reopen": None,
    "rating": {"score": 4},
}


def register_customer(
    api: Api, headers: dict[str, str] | None = None, region: str = "east", owner: str = "li"
) -> str:
    body = {"kind": "company", "name": f"Acme {uuid4().hex[:6]}", "region": region, "owner": owner}
    response = api.client.post("/customers", json=body, headers=headers or api.admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def open_ticket(
    api: Api, customer_id: str, headers: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"customer_id": customer_id, "channel": "email", "subject": "It broke", **fields}
    response = api.client.post("/tickets", json=body, headers=headers or api.admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def act(
    api: Api,
    ticket: dict[str, Any] | str,
    action: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    if_match: str | None = None,
) -> Any:
    ticket_id = ticket if isinstance(ticket, str) else ticket["id"]
    extra = {} if if_match is None else {"If-Match": if_match}
    return api.client.post(
        f"/tickets/{ticket_id}/{action}", json=body, headers={**(headers or api.admin), **extra}
    )


def read(
    api: Api, ticket_id: str, position: int | None, headers: dict[str, str] | None = None
) -> Any:
    return api.client.get(
        f"/tickets/{ticket_id}", params={"min_position": position}, headers=headers or api.admin
    )


def listed(api: Api, headers: dict[str, str], position: int, **filters: Any) -> list[str]:
    response = api.client.get(
        "/tickets", params={"min_position": position, **filters}, headers=headers
    )
    assert response.status_code == 200, response.text
    return [row["ticket_id"] for row in response.json()["data"]]


# --- opening and reading ------------------------------------------------------------------------


def test_service_opens_a_ticket_and_reads_it_with_its_sla_state(api: Api) -> None:
    service = api.as_("service")
    customer = register_customer(api)

    response = api.client.post(
        "/tickets",
        json={
            "customer_id": customer,
            "channel": "phone",
            "subject": "No dial tone",
            "priority": "P2",
            "category": "network",
        },
        headers=service,
    )
    opened = response.json()
    ticket = read(api, opened["id"], opened["position"], service)

    assert response.status_code == 201
    assert response.headers["location"] == f"/tickets/{opened['id']}"
    assert response.headers["etag"] == '"1"'
    assert ticket.status_code == 200
    body = ticket.json()
    assert (body["customer_id"], body["status"], body["priority"]) == (customer, "open", "P2")
    assert (body["channel"], body["category"]) == ("phone", "network")
    assert body["sla"]["sla"] == "first_response"
    assert body["sla"]["state"] == "on_track"


def test_the_sla_state_is_computed_when_read_from_the_crms_clock(api: Api) -> None:
    opened = open_ticket(api, register_customer(api), priority="P1")
    api.crm.clock = FixedClock(api.crm.clock.now() + timedelta(days=30))

    ticket = read(api, opened["id"], opened["position"]).json()

    assert ticket["sla"]["state"] == "breached"


def test_a_resolved_ticket_has_no_sla_state(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    resolved = act(api, opened, "resolve", {"resolution": "Fixed"}).json()

    ticket = read(api, opened["id"], resolved["position"]).json()

    assert (ticket["status"], ticket["sla"]) == ("resolved", None)


def test_opening_a_ticket_for_an_unknown_customer_is_404(api: Api) -> None:
    response = api.client.post(
        "/tickets",
        json={"customer_id": str(uuid4()), "channel": "email", "subject": "Hello"},
        headers=api.admin,
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_a_manager_cannot_open_a_ticket_for_a_customer_outside_their_region(api: Api) -> None:
    west = register_customer(api, region="west")

    response = api.client.post(
        "/tickets",
        json={"customer_id": west, "channel": "email", "subject": "Hello"},
        headers=api.as_("manager", region="east"),
    )

    assert response.status_code == 404


def test_opening_a_ticket_with_invalid_fields_is_422(api: Api) -> None:
    customer = register_customer(api)
    valid = {"customer_id": customer, "channel": "email", "subject": "Hello"}
    for change in (
        {"channel": "fax"},
        {"subject": ""},
        {"priority": "P9"},
        {"customer_id": "not-a-uuid"},
        {"unexpected": 1},
        {"subject": "x" * 201},
        {"subject": "nul \x00 byte"},
    ):
        response = api.client.post("/tickets", json={**valid, **change}, headers=api.admin)
        assert response.status_code == 422, change
        assert response.json()["errors"], change


def test_reading_an_unknown_ticket_is_404_and_a_malformed_id_422(api: Api) -> None:
    assert api.client.get(f"/tickets/{uuid4()}", headers=api.admin).status_code == 404
    assert api.client.get("/tickets/not-a-uuid", headers=api.admin).status_code == 422


# --- who may do what ----------------------------------------------------------------------------


def test_ticket_routes_without_a_token_are_401(api: Api) -> None:
    ticket_id = uuid4()
    assert api.client.get("/tickets").status_code == 401
    assert api.client.get(f"/tickets/{ticket_id}").status_code == 401
    assert api.client.post("/tickets", json={}).status_code == 401
    assert api.client.post(f"/tickets/{ticket_id}/close").status_code == 401


def test_marketing_gets_403_on_every_ticket_route(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    marketing = api.as_("marketing")

    assert api.client.get("/tickets", headers=marketing).status_code == 403
    assert read(api, opened["id"], opened["position"], marketing).status_code == 403
    assert api.client.post("/tickets", json={}, headers=marketing).status_code == 403
    for action, body in ACTIONS.items():
        assert act(api, opened, action, body, marketing).status_code == 403, action


def test_sales_and_auditors_may_read_tickets_but_not_change_them(api: Api) -> None:
    customer = register_customer(api, owner="li")
    opened = open_ticket(api, customer)
    sales, auditor = api.as_("sales", "li"), api.as_("auditor")

    for reader in (sales, auditor):
        assert read(api, opened["id"], opened["position"], reader).status_code == 200
        create = {"customer_id": customer, "channel": "email", "subject": "Hi"}
        assert api.client.post("/tickets", json=create, headers=reader).status_code == 403
        assert act(api, opened, "resolve", {"resolution": "x"}, reader).status_code == 403


def test_sales_see_only_tickets_of_customers_they_own(api: Api) -> None:
    mine = open_ticket(api, register_customer(api, owner="li"))
    theirs = open_ticket(api, register_customer(api, owner="wang"))
    sales = api.as_("sales", "li")

    assert listed(api, sales, theirs["position"]) == [mine["id"]]
    assert read(api, theirs["id"], theirs["position"], sales).status_code == 404
    assert read(api, mine["id"], theirs["position"], sales).status_code == 200


def test_a_manager_sees_and_works_only_tickets_of_their_regions_customers(api: Api) -> None:
    east = open_ticket(api, register_customer(api, region="east"))
    west = open_ticket(api, register_customer(api, region="west"))
    manager = api.as_("manager", "zhao", region="east")

    assert listed(api, manager, west["position"]) == [east["id"]]
    assert read(api, west["id"], west["position"], manager).status_code == 404
    assert act(api, west, "assign", {"agent": "zhao"}, manager).status_code == 404
    assert act(api, east, "assign", {"agent": "zhao"}, manager).status_code == 200


# --- listing ------------------------------------------------------------------------------------


def test_tickets_are_listed_newest_first_and_filtered(api: Api) -> None:
    customer, other = register_customer(api), register_customer(api)
    first = open_ticket(api, customer, priority="P1")
    second = open_ticket(api, other, priority="P3")
    assigned = act(api, second, "assign", {"agent": "wang", "team": "vip"}).json()
    position = assigned["position"]

    assert listed(api, api.admin, position) == [second["id"], first["id"]]
    assert listed(api, api.admin, position, priority="P1") == [first["id"]]
    assert listed(api, api.admin, position, customer_id=other) == [second["id"]]
    assert listed(api, api.admin, position, team="vip", agent="wang") == [second["id"]]
    assert listed(api, api.admin, position, status="resolved") == []


def test_the_ticket_listing_pages_with_a_cursor(api: Api) -> None:
    customer = register_customer(api)
    opened = [open_ticket(api, customer) for _ in range(3)]
    position = opened[-1]["position"]

    first = api.client.get(
        "/tickets", params={"limit": 2, "min_position": position}, headers=api.admin
    ).json()
    second = api.client.get(
        "/tickets", params={"limit": 2, "cursor": first["next_cursor"]}, headers=api.admin
    ).json()

    pages = [row["ticket_id"] for row in first["data"] + second["data"]]
    assert pages == [ticket["id"] for ticket in reversed(opened)]
    assert second["next_cursor"] is None


def test_listing_with_bad_filters_or_a_foreign_cursor_is_422(api: Api) -> None:
    for params in (
        {"status": "lost"},
        {"priority": "urgent"},
        {"customer_id": "nope"},
        {"limit": 0},
        {"cursor": "garbage"},
        {"team": ""},
        {"agent": "\x00"},
    ):
        response = api.client.get("/tickets", params=params, headers=api.admin)
        assert response.status_code == 422, params


# --- working a ticket ---------------------------------------------------------------------------


def test_a_ticket_is_worked_through_its_life_and_the_read_model_follows(api: Api) -> None:
    opened = open_ticket(api, register_customer(api), priority="P3")
    service = api.as_("service")
    versions = []
    steps: list[tuple[str, dict[str, Any] | None]] = [
        ("assign", {"agent": "wang", "team": "support-east"}),
        ("respond", None),
        ("wait", None),
        ("resume", None),
        ("escalate", {"level": 2, "reason": "Angry"}),
        ("priority", {"priority": "P2"}),
        ("resolve", {"resolution": "Replaced the router"}),
        ("rating", {"score": 5, "comment": "Great"}),
        ("close", None),
    ]
    response = None
    for action, body in steps:
        response = act(api, opened, action, body, service)
        assert response.status_code == 200, (action, response.text)
        assert response.headers["etag"] == f'"{response.json()["version"]}"'
        versions.append(response.json()["version"])

    assert response is not None
    ticket = read(api, opened["id"], response.json()["position"]).json()
    assert versions == list(range(2, 2 + len(steps)))
    assert (ticket["agent"], ticket["team"], ticket["priority"]) == ("wang", "support-east", "P2")
    assert (ticket["escalation_level"], ticket["status"]) == (2, "closed")
    assert ticket["first_responded_at"] is not None and ticket["resolution_met"] is True


def test_a_resolved_ticket_can_be_reopened(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    act(api, opened, "resolve", {"resolution": "Fixed"})

    reopened = act(api, opened, "reopen")
    ticket = read(api, opened["id"], reopened.json()["position"]).json()

    assert reopened.status_code == 200
    assert ticket["status"] == "open" and ticket["sla"] is not None


def test_repeating_a_command_whose_outcome_holds_writes_nothing(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    first = act(api, opened, "wait").json()

    again = act(api, opened, "wait")

    assert again.status_code == 200
    assert again.json()["version"] == first["version"]
    assert again.json()["position"] is None


def test_resolving_a_closed_ticket_is_409_naming_the_rule(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    act(api, opened, "resolve", {"resolution": "Fixed"})
    act(api, opened, "close")

    response = act(api, opened, "resolve", {"resolution": "Again"})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/ticket-not-active")


def test_commands_the_ticket_rules_refuse_are_409(api: Api) -> None:
    customer = register_customer(api)
    active = open_ticket(api, customer)
    act(api, active, "escalate", {"level": 2, "reason": "Urgent"})
    closed = open_ticket(api, customer)
    act(api, closed, "resolve", {"resolution": "Fixed"})
    act(api, closed, "rating", {"score": 3})
    act(api, closed, "close")

    refusals = [
        (active, "close", None, "ticket-not-resolved"),
        (active, "rating", {"score": 5}, "ticket-not-resolved"),
        (active, "resume", None, "ticket-not-waiting-on-customer"),
        (active, "escalate", {"level": 1, "reason": "Calmer"}, "ticket-cannot-be-de-escalated"),
        (closed, "reopen", None, "closed-ticket-cannot-be-reopened"),
        (closed, "rating", {"score": 5}, "ticket-already-rated"),
        (closed, "assign", {"agent": "wang"}, "ticket-not-active"),
        (closed, "respond", None, "ticket-not-active"),
        (closed, "wait", None, "ticket-not-active"),
        (closed, "priority", {"priority": "P1"}, "ticket-not-active"),
    ]
    for ticket, action, body, rule in refusals:
        response = act(api, ticket, action, body)
        assert response.status_code == 409, (action, response.text)
        assert response.json()["type"].endswith(f"/{rule}"), (action, response.json())


def test_a_stale_if_match_is_412_and_writes_nothing(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    assigned = act(api, opened, "assign", {"agent": "wang"}, if_match='"1"').json()

    stale = act(api, opened, "resolve", {"resolution": "Fixed"}, if_match='"1"')
    ticket = read(api, opened["id"], assigned["position"]).json()
    current = act(api, opened, "resolve", {"resolution": "Fixed"}, if_match='"2"')

    assert stale.status_code == 412
    assert ticket["status"] == "open"
    assert len(api.crm.history(UUID(opened["id"]))) == 2 + 1  # opened, assigned, resolved
    assert current.status_code == 200 and current.json()["version"] == 3


def test_commands_on_an_unknown_ticket_are_404(api: Api) -> None:
    unknown = str(uuid4())
    for action, body in ACTIONS.items():
        assert act(api, unknown, action, body).status_code == 404, action


def test_commands_with_invalid_input_are_422_and_write_nothing(api: Api) -> None:
    opened = open_ticket(api, register_customer(api))
    invalid = [
        ("assign", {"agent": ""}),
        ("assign", {}),
        ("escalate", {"level": 4, "reason": "x"}),
        ("escalate", {"level": 0}),
        ("priority", {"priority": "P9"}),
        ("resolve", {"resolution": ""}),
        ("rating", {"score": 6}),
        ("rating", {"score": 5, "extra": True}),
    ]
    for action, body in invalid:
        response = act(api, opened, action, body)
        assert response.status_code == 422, (action, body, response.text)
    bad_if_match = act(api, opened, "respond", if_match="version-one")

    assert bad_if_match.status_code == 422
    assert act(api, "not-a-uuid", "close").status_code == 422
    assert len(api.crm.history(UUID(opened["id"]))) == 1
