"""Leads over HTTP: capture, the lead queue, and every command a lead goes through."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from api.security import Principal, Role
from domain.lead import LeadConversionRequested
from infra.sagas import SagaRunner
from sagas.lead_conversion import ConversionRules, LeadConversionSaga
from tests.api.conftest import Api

LEAD = {"channel": "web_form", "name": "Li Wei", "region": "east", "email": "li@example.com"}
CUSTOMER = {"kind": "company", "name": "Acme", "region": "east"}
OPPORTUNITY = {"title": "500 units", "amount": "1000", "currency": "CNY"}


def as_(api: Api, role: Role, username: str | None = None, region: str | None = "east") -> Any:
    """Headers of a user of this role (a token issued directly: no password hashing)."""
    token = api.services.tokens.issue(Principal(username or role, role, region)).token
    return {"Authorization": f"Bearer {token}"}


def admin(api: Api) -> dict[str, str]:
    headers: dict[str, str] = as_(api, "admin", region=None)
    return headers


def capture(api: Api, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    response = api.client.post("/leads", json={**LEAD, **fields}, headers=headers or admin(api))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def post(api: Api, lead: dict[str, Any], action: str, body: Any = None, **headers: str) -> Any:
    return api.client.post(
        f"/leads/{lead['id']}/{action}", json=body, headers={**admin(api), **headers}
    )


def owned_lead(api: Api, owner: str, region: str = "east") -> dict[str, Any]:
    lead = capture(api, region=region)
    assert post(api, lead, "assign", {"owner": owner}).status_code == 200
    return lead


def qualified_lead(api: Api) -> dict[str, Any]:
    lead = capture(api)
    assert post(api, lead, "qualify").status_code == 200
    return lead


def customer(api: Api, owner: str = "admin", region: str = "east") -> str:
    body = {**CUSTOMER, "owner": owner, "region": region}
    response = api.client.post("/customers", json=body, headers=admin(api))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def lead_version(api: Api, lead: dict[str, Any]) -> int:
    return int(api.crm.repository.get(UUID(lead["id"])).version)


def queue(api: Api, headers: dict[str, str], **params: Any) -> list[str]:
    response = api.client.get("/leads", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [row["lead_id"] for row in response.json()["data"]]


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["type"].rsplit("/", 1)[-1])


# --- capture ------------------------------------------------------------------------------------


def test_capturing_a_lead_answers_201_and_the_lead_can_be_read_back(api: Api) -> None:
    response = api.client.post(
        "/leads",
        json={**LEAD, "campaign": "spring", "utm": {"source": "newsletter"}},
        headers=admin(api),
    )
    created = response.json()

    read = api.client.get(
        f"/leads/{created['id']}",
        params={"min_position": created["position"]},
        headers=admin(api),
    )

    assert response.status_code == 201
    assert response.headers["location"] == f"/leads/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert read.status_code == 200
    assert read.json()["name"] == "Li Wei"
    assert read.json()["status"] == "open" and read.json()["owner"] is None
    assert read.json()["campaign"] == "spring"


def test_a_lead_without_contact_details_or_with_a_taken_id_is_refused_with_409(
    api: Api,
) -> None:
    lead = capture(api)

    no_contact = api.client.post("/leads", json={**LEAD, "email": None}, headers=admin(api))
    taken_id = api.client.post("/leads", json={**LEAD, "id": lead["id"]}, headers=admin(api))

    assert (no_contact.status_code, taken_id.status_code) == (409, 409)
    assert problem_type(no_contact) == "lead-needs-contact-details"
    assert problem_type(taken_id) == "already-exists"


def test_capturing_a_lead_with_invalid_fields_is_422_and_writes_nothing(api: Api) -> None:
    head = api.crm.recorder.max_notification_id()
    changes: list[dict[str, Any]] = [
        {"channel": "carrier-pigeon"},
        {"email": "not-an-email"},
        {"name": ""},
        {"region": "x" * 65},
        {"utm": {"colour": "red"}},
        {"owner": "mei"},
        {"id": "not-a-uuid"},
    ]

    for change in changes:
        response = api.client.post("/leads", json={**LEAD, **change}, headers=admin(api))
        assert response.status_code == 422, change
        assert response.json()["errors"], change
    assert api.crm.recorder.max_notification_id() == head


def test_leads_are_captured_by_marketing_and_by_sales_and_managers_in_their_region(
    api: Api,
) -> None:
    assert api.client.post("/leads", json=LEAD).status_code == 401
    for role in ("service", "auditor"):
        response = api.client.post("/leads", json=LEAD, headers=as_(api, role))
        assert response.status_code == 403, role
    assert api.client.post("/leads", json=LEAD, headers=as_(api, "marketing")).status_code == 201
    for role in ("sales", "manager"):
        headers = as_(api, role, region="east")
        west = api.client.post("/leads", json={**LEAD, "region": "west"}, headers=headers)
        east = api.client.post("/leads", json=LEAD, headers=headers)
        assert (west.status_code, east.status_code) == (403, 201), role


# --- the lead queue and reading one lead ---------------------------------------------------------


def test_the_queue_lists_unassigned_leads_first_and_filters_by_status_and_owner(
    api: Api,
) -> None:
    mine = owned_lead(api, "mei")
    unassigned = capture(api)
    dropped = capture(api)
    last = post(api, dropped, "disqualify", {"reason": "no budget"}).json()
    wait = {"min_position": last["position"]}

    everything = queue(api, admin(api), **wait)
    disqualified = queue(api, admin(api), status="disqualified", **wait)
    meis = queue(api, admin(api), owner="mei", **wait)

    assert everything[-1] == mine["id"]
    assert set(everything[:2]) == {unassigned["id"], dropped["id"]}
    assert disqualified == [dropped["id"]]
    assert meis == [mine["id"]]


def test_the_queue_pages_with_an_opaque_cursor(api: Api) -> None:
    leads = [capture(api) for _ in range(3)]
    wait = {"min_position": leads[-1]["position"]}

    first = api.client.get("/leads", params={"limit": 2, **wait}, headers=admin(api)).json()
    second = api.client.get(
        "/leads", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin(api)
    ).json()

    seen = [row["lead_id"] for row in first["data"] + second["data"]]
    assert sorted(seen) == sorted(lead["id"] for lead in leads)
    assert second["next_cursor"] is None


def test_the_queue_refuses_invalid_parameters_with_422(api: Api) -> None:
    for params in [{"cursor": "not-a-cursor"}, {"status": "hot"}, {"limit": 0}, {"limit": 501}]:
        response = api.client.get("/leads", params=params, headers=admin(api))
        assert response.status_code == 422, params


def test_sales_see_their_own_leads_and_the_unassigned_ones_of_their_region(api: Api) -> None:
    mine = owned_lead(api, "mei")
    theirs = owned_lead(api, "bo")
    unassigned = capture(api)
    elsewhere = capture(api, region="west")
    mei = as_(api, "sales", "mei", region="east")
    wait = {"min_position": elsewhere["position"]}

    listed = queue(api, mei, **wait)
    reads = {
        name: api.client.get(f"/leads/{lead['id']}", headers=mei).status_code
        for name, lead in [("mine", mine), ("theirs", theirs), ("unassigned", unassigned)]
        + [("elsewhere", elsewhere)]
    }

    assert set(listed) == {mine["id"], unassigned["id"]}
    assert reads == {"mine": 200, "theirs": 404, "unassigned": 200, "elsewhere": 404}


def test_a_manager_sees_only_the_leads_of_their_region(api: Api) -> None:
    east = owned_lead(api, "bo")
    west = capture(api, region="west")
    boss = as_(api, "manager", "boss", region="east")

    listed = queue(api, boss, min_position=west["position"])

    assert listed == [east["id"]]
    assert api.client.get(f"/leads/{west['id']}", headers=boss).status_code == 404


def test_reading_a_lead_needs_a_token_a_role_that_reads_leads_and_is_logged(api: Api) -> None:
    lead = capture(api)

    assert api.client.get("/leads").status_code == 401
    assert api.client.get(f"/leads/{lead['id']}").status_code == 401
    assert api.client.get("/leads", headers=as_(api, "service")).status_code == 403
    assert api.client.get(f"/leads/{lead['id']}", headers=as_(api, "service")).status_code == 403
    assert api.client.get(f"/leads/{uuid4()}", headers=admin(api)).status_code == 404
    assert api.client.get("/leads/not-a-uuid", headers=admin(api)).status_code == 422
    auditor = as_(api, "auditor")
    read = api.client.get(
        f"/leads/{lead['id']}", params={"min_position": lead["position"]}, headers=auditor
    )
    assert read.status_code == 200
    entries, _ = api.services.access_log.query(record_id=UUID(lead["id"]))
    assert [(entry["action"], entry["username"]) for entry in entries] == [("lead.read", "auditor")]


# --- commands ----------------------------------------------------------------------------------


def test_a_lead_goes_from_capture_through_work_to_conversion(api: Api) -> None:
    lead = capture(api)
    customer_id = customer(api)
    opportunity = api.client.post(
        "/opportunities",
        json={**OPPORTUNITY, "customer_id": customer_id, "expected_close": "2030-01-01"},
        headers=admin(api),
    ).json()

    steps = [
        ("score", {"score": 80, "reasons": ["big company"]}),
        ("assign", {"owner": "mei", "explanation": "speaks the language"}),
        ("activities", {"kind": "call", "summary": "asked for a quote"}),
        ("qualify", None),
        ("convert", {"customer_id": customer_id, "opportunity_id": opportunity["id"]}),
    ]
    answers = [post(api, lead, action, body) for action, body in steps]

    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["version"] for a in answers] == [2, 3, 4, 5, 6]
    assert answers[-1].headers["etag"] == '"6"'
    row = api.client.get(
        f"/leads/{lead['id']}",
        params={"min_position": answers[-1].json()["position"]},
        headers=admin(api),
    ).json()
    assert row["status"] == "converted" and row["owner"] == "mei" and row["score"] == 80
    assert row["converted_customer_id"] == customer_id
    assert row["first_activity_at"] is not None


def test_a_disqualified_lead_must_be_reopened_before_it_is_qualified(api: Api) -> None:
    lead = capture(api)
    reopen_open = post(api, lead, "reopen")
    post(api, lead, "disqualify", {"reason": "no budget"})

    refused = post(api, lead, "qualify")
    reopened = post(api, lead, "reopen")
    qualified = post(api, lead, "qualify")

    assert reopen_open.json() == {"id": lead["id"], "version": 1, "position": None}
    assert refused.status_code == 409
    assert problem_type(refused) == "lead-is-disqualified"
    assert (reopened.status_code, qualified.status_code) == (200, 200)
    assert qualified.json()["version"] == 4


def test_a_converted_lead_refuses_every_further_command_with_409(api: Api) -> None:
    lead = qualified_lead(api)
    customer_id = customer(api)
    assert post(api, lead, "convert", {"customer_id": customer_id}).status_code == 200

    answers = {
        action: post(api, lead, action, body)
        for action, body in [
            ("convert", {"customer_id": customer_id}),
            ("score", {"score": 10}),
            ("assign", {"owner": "bo"}),
            ("activities", {"kind": "note", "summary": "too late"}),
            ("qualify", None),
            ("disqualify", {"reason": "too late"}),
            ("reopen", None),
        ]
    }

    answers["request conversion"] = post(api, lead, "convert")

    assert {action: a.status_code for action, a in answers.items()} == dict.fromkeys(answers, 409)
    assert {problem_type(a) for a in answers.values()} == {"lead-already-converted"}


def test_converting_needs_a_qualified_lead_and_a_known_customer_and_opportunity(
    api: Api,
) -> None:
    open_lead = capture(api)
    lead = qualified_lead(api)

    not_qualified = post(api, open_lead, "convert", {"customer_id": customer(api)})
    no_customer = post(api, lead, "convert", {"customer_id": str(uuid4())})
    no_deal = post(
        api, lead, "convert", {"customer_id": customer(api), "opportunity_id": str(uuid4())}
    )

    assert not_qualified.status_code == 409
    assert problem_type(not_qualified) == "lead-not-qualified"
    assert not_qualified.json()["lead_id"] == open_lead["id"]
    assert (no_customer.status_code, no_deal.status_code) == (404, 404)
    assert lead_version(api, lead) == 2


def test_converting_without_a_customer_requests_it_and_the_saga_converts_the_lead(
    api: Api,
) -> None:
    lead = owned_lead(api, "mei")
    assert post(api, lead, "qualify").status_code == 200

    requested = post(api, lead, "convert")
    repeated = post(api, lead, "convert", {})

    assert requested.status_code == 202, requested.text
    answer = requested.json()
    assert (answer["id"], answer["version"]) == (lead["id"], 4)
    assert answer["position"] == api.crm.recorder.max_notification_id()
    assert requested.headers["etag"] == '"4"'
    assert (repeated.status_code, repeated.json()["position"]) == (202, None)  # still pending
    [event] = [e for e in api.crm.history(UUID(lead["id"])) if e.originator_version == 4]
    assert isinstance(event, LeadConversionRequested) and event.actor == "user:admin"

    rules = ConversionRules()  # no auto-converting channel: the request alone converts
    saga = LeadConversionSaga(rules, api.crm.config.phone_region)
    assert SagaRunner(saga, api.crm).catch_up() == 2  # the qualification, then the request
    row = api.client.get(
        f"/leads/{lead['id']}",
        params={"min_position": api.crm.recorder.max_notification_id()},
        headers=admin(api),
    ).json()
    assert row["status"] == "converted"
    assert row["converted_customer_id"] == str(saga.record_id(event, "customer"))


def test_requesting_a_conversion_needs_a_qualified_lead(api: Api) -> None:
    refused = post(api, capture(api), "convert")

    assert refused.status_code == 409
    assert problem_type(refused) == "lead-not-qualified"


def test_sales_convert_only_into_customers_they_may_see(api: Api) -> None:
    lead = owned_lead(api, "mei")
    post(api, lead, "qualify")
    mei = as_(api, "sales", "mei", region="east")

    others = api.client.post(
        f"/leads/{lead['id']}/convert", json={"customer_id": customer(api, "bo")}, headers=mei
    )
    own = api.client.post(
        f"/leads/{lead['id']}/convert", json={"customer_id": customer(api, "mei")}, headers=mei
    )

    assert (others.status_code, own.status_code) == (404, 200)


def test_marketing_converts_leads_but_may_not_link_them_to_opportunities(api: Api) -> None:
    lead = qualified_lead(api)
    customer_id = customer(api)
    marketing = as_(api, "marketing")
    path = f"/leads/{lead['id']}/convert"

    with_deal = api.client.post(
        path, json={"customer_id": customer_id, "opportunity_id": str(uuid4())}, headers=marketing
    )
    without = api.client.post(path, json={"customer_id": customer_id}, headers=marketing)

    assert (with_deal.status_code, without.status_code) == (403, 200)


def test_sales_take_unassigned_leads_of_their_region_but_give_none_away(api: Api) -> None:
    lead = capture(api)
    mei = as_(api, "sales", "mei", region="east")
    path = f"/leads/{lead['id']}/assign"

    to_colleague = api.client.post(path, json={"owner": "bo"}, headers=mei)
    to_herself = api.client.post(path, json={"owner": "mei"}, headers=mei)

    assert (to_colleague.status_code, to_herself.status_code) == (403, 200)


def test_a_repeated_activity_is_recorded_once(api: Api) -> None:
    lead = capture(api)
    activity = {"kind": "email", "summary": "sent brochure", "id": str(uuid4())}

    first = post(api, lead, "activities", activity)
    repeat = post(api, lead, "activities", activity)

    assert first.json()["version"] == repeat.json()["version"] == 2
    assert repeat.json()["position"] is None


def lead_commands(customer_id: str) -> list[tuple[str, Any]]:
    """One valid request to every lead command."""
    return [
        ("score", {"score": 50}),
        ("assign", {"owner": "mei"}),
        ("activities", {"kind": "call", "summary": "hello"}),
        ("qualify", None),
        ("disqualify", {"reason": "no budget"}),
        ("reopen", None),
        ("convert", {"customer_id": customer_id}),
        ("convert", None),  # a conversion request
    ]


def test_lead_commands_with_invalid_bodies_are_422_and_write_nothing(api: Api) -> None:
    lead = capture(api)
    invalid: list[tuple[str, Any]] = [
        ("score", {"score": 101}),
        ("score", {"score": -1}),
        ("score", {"score": 50, "reasons": [""]}),
        ("assign", {"owner": ""}),
        ("assign", {}),
        ("activities", {"kind": "telepathy", "summary": "hello"}),
        ("activities", {"kind": "call", "summary": ""}),
        ("activities", {"kind": "call", "summary": "hi", "occurred_at": "2025-03-01T09:00:00"}),
        ("disqualify", {"reason": ""}),
        ("convert", {"customer_id": "nope"}),
        ("convert", {"opportunity_id": str(uuid4())}),  # an opportunity needs its customer
    ]

    for action, body in invalid:
        assert post(api, lead, action, body).status_code == 422, (action, body)
    assert post(api, lead, "score", {"score": 5}, **{"If-Match": "three"}).status_code == 422
    assert lead_version(api, lead) == 1


def test_every_lead_command_with_a_stale_if_match_is_412_and_writes_nothing(api: Api) -> None:
    lead = qualified_lead(api)
    commands = lead_commands(customer(api))
    head = api.crm.recorder.max_notification_id()

    statuses = [
        (action, post(api, lead, action, body, **{"If-Match": '"1"'}).status_code)
        for action, body in commands
    ]

    assert statuses == [(action, 412) for action, _ in commands]
    assert api.crm.recorder.max_notification_id() == head
    current = post(api, lead, "score", {"score": 5}, **{"If-Match": '"2"'})
    assert current.status_code == 200
    assert current.headers["etag"] == '"3"'


def test_lead_commands_on_an_unknown_or_invisible_lead_are_404(api: Api) -> None:
    theirs = owned_lead(api, "bo")
    west = capture(api, region="west")
    unknown = {"id": str(uuid4())}
    mei = as_(api, "sales", "mei", region="east")
    boss = as_(api, "manager", "boss", region="east")
    commands = lead_commands(customer(api))
    head = api.crm.recorder.max_notification_id()

    for action, body in commands:
        path = f"/leads/{{}}/{action}"
        assert post(api, unknown, action, body).status_code == 404, action
        assert api.client.post(path.format(theirs["id"]), json=body, headers=mei).status_code == 404
        assert api.client.post(path.format(west["id"]), json=body, headers=boss).status_code == 404
    assert api.crm.recorder.max_notification_id() == head


def test_lead_commands_need_a_token_and_a_role_that_writes_leads(api: Api) -> None:
    lead = capture(api)

    for action, body in lead_commands(str(uuid4())):
        path = f"/leads/{lead['id']}/{action}"
        assert api.client.post(path, json=body).status_code == 401, action
        for role in ("auditor", "service"):
            assert api.client.post(path, json=body, headers=as_(api, role)).status_code == 403
    assert lead_version(api, lead) == 1
