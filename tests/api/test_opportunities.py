"""Opportunities over HTTP: open, list, read, and move a deal through the pipeline."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from api.security import Principal, Role
from tests.api.conftest import Api

CUSTOMER = {"kind": "company", "name": "Acme", "region": "east"}
DEAL = {
    "title": "500 units",
    "amount": "1000.50",
    "currency": "CNY",
    "expected_close": "2030-06-30",
}


def as_(api: Api, role: Role, username: str | None = None, region: str | None = "east") -> Any:
    """Headers of a user of this role (a token issued directly: no password hashing)."""
    token = api.services.tokens.issue(Principal(username or role, role, region)).token
    return {"Authorization": f"Bearer {token}"}


def admin(api: Api) -> dict[str, str]:
    headers: dict[str, str] = as_(api, "admin", region=None)
    return headers


def customer(api: Api, owner: str = "admin", region: str = "east") -> str:
    body = {**CUSTOMER, "owner": owner, "region": region}
    response = api.client.post("/customers", json=body, headers=admin(api))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def deal(api: Api, owner: str = "admin", region: str = "east", **fields: Any) -> dict[str, Any]:
    body = {**DEAL, "customer_id": customer(api, owner, region), "owner": owner, **fields}
    response = api.client.post("/opportunities", json=body, headers=admin(api))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def post(api: Api, record: dict[str, Any], action: str, body: Any = None, **headers: str) -> Any:
    return api.client.post(
        f"/opportunities/{record['id']}/{action}", json=body, headers={**admin(api), **headers}
    )


def version(api: Api, record: dict[str, Any]) -> int:
    return int(api.crm.repository.get(UUID(record["id"])).version)


def listed(api: Api, headers: dict[str, str], **params: Any) -> list[str]:
    response = api.client.get("/opportunities", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [row["opportunity_id"] for row in response.json()["data"]]


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["type"].rsplit("/", 1)[-1])


def commands() -> list[tuple[str, Any]]:
    """One valid request to every command on an existing opportunity."""
    return [
        ("stage", {"stage": "proposal"}),
        ("amount", {"amount": "2000", "currency": "EUR"}),
        ("close-date", {"expected_close": "2031-01-31"}),
        ("win", {"amount": "2000", "currency": "CNY", "contract_reference": "C-1"}),
        ("lose", {"reason": "price"}),
        ("reopen", None),
    ]


# --- opening -------------------------------------------------------------------------------------


def test_opening_an_opportunity_answers_201_and_it_can_be_read_back(api: Api) -> None:
    customer_id = customer(api, "mei")
    lead = api.client.post(
        "/leads",
        json={"channel": "event", "name": "Li", "region": "east", "phone": "+8613800138000"},
        headers=admin(api),
    ).json()
    mei = as_(api, "sales", "mei")

    response = api.client.post(
        "/opportunities",
        json={**DEAL, "customer_id": customer_id, "source_lead_id": lead["id"]},
        headers=mei,
    )
    created = response.json()
    read = api.client.get(
        f"/opportunities/{created['id']}",
        params={"min_position": created["position"]},
        headers=mei,
    )

    assert response.status_code == 201
    assert response.headers["location"] == f"/opportunities/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert read.status_code == 200
    row = read.json()
    assert (row["owner"], row["region"], row["stage"]) == ("mei", "east", "qualification")
    assert (row["amount"], row["currency"]) == ("1000.50", "CNY")
    assert (row["customer_id"], row["lead_id"]) == (customer_id, lead["id"])


def test_an_opportunity_is_opened_only_for_a_customer_the_caller_may_see(api: Api) -> None:
    bos = customer(api, "bo")
    west = customer(api, "admin", "west")
    mei = as_(api, "sales", "mei")
    boss = as_(api, "manager", "boss", "east")
    head = api.crm.recorder.max_notification_id()

    answers = [
        api.client.post("/opportunities", json={**DEAL, "customer_id": bos}, headers=mei),
        api.client.post("/opportunities", json={**DEAL, "customer_id": west}, headers=boss),
        api.client.post("/opportunities", json={**DEAL, "customer_id": str(uuid4())}, headers=mei),
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404]
    assert api.crm.recorder.max_notification_id() == head


def test_sales_open_opportunities_only_for_themselves(api: Api) -> None:
    customer_id = customer(api, "mei")
    mei = as_(api, "sales", "mei")

    for_bo = api.client.post(
        "/opportunities", json={**DEAL, "customer_id": customer_id, "owner": "bo"}, headers=mei
    )
    for_mei = api.client.post(
        "/opportunities", json={**DEAL, "customer_id": customer_id, "owner": "mei"}, headers=mei
    )

    assert (for_bo.status_code, for_mei.status_code) == (403, 201)


def test_opening_an_opportunity_needs_a_token_and_a_role_that_writes_them(api: Api) -> None:
    body = {**DEAL, "customer_id": customer(api)}

    assert api.client.post("/opportunities", json=body).status_code == 401
    for role in ("service", "marketing", "auditor"):
        response = api.client.post("/opportunities", json=body, headers=as_(api, role))
        assert response.status_code == 403, role
        assert problem_type(response) == "forbidden"


def test_opening_an_opportunity_with_invalid_fields_is_422_and_writes_nothing(api: Api) -> None:
    customer_id = customer(api)
    head = api.crm.recorder.max_notification_id()
    changes: list[dict[str, Any]] = [
        {"amount": "-1"},
        {"amount": "lots"},
        {"amount": "1e20"},
        {"amount": "1.00001"},
        {"currency": "XYZ"},
        {"currency": "EURO"},
        {"expected_close": "next week"},
        {"title": ""},
        {"customer_id": "nope"},
        {"stage": "won"},
    ]

    for change in changes:
        body = {**DEAL, "customer_id": customer_id, **change}
        response = api.client.post("/opportunities", json=body, headers=admin(api))
        assert response.status_code == 422, (change, response.text)
    assert api.crm.recorder.max_notification_id() == head


def test_opening_an_opportunity_for_a_merged_customer_or_with_a_taken_id_is_409(
    api: Api,
) -> None:
    survivor, duplicate = customer(api), customer(api)
    api.crm.merge_customers(UUID(survivor), UUID(duplicate))
    existing = deal(api)

    merged = api.client.post(
        "/opportunities", json={**DEAL, "customer_id": duplicate}, headers=admin(api)
    )
    taken = api.client.post(
        "/opportunities",
        json={**DEAL, "customer_id": survivor, "id": existing["id"]},
        headers=admin(api),
    )

    assert (merged.status_code, taken.status_code) == (409, 409)
    assert problem_type(merged) == "customer-is-merged"
    assert problem_type(taken) == "already-exists"


# --- listing and reading -------------------------------------------------------------------------


def test_the_listing_filters_by_owner_stage_customer_and_region(api: Api) -> None:
    meis = deal(api, "mei")
    bos = deal(api, "bo", "west")
    moved = post(api, bos, "stage", {"stage": "proposal"}).json()
    wait = {"min_position": moved["position"]}
    bos_row = api.client.get(f"/opportunities/{bos['id']}", params=wait, headers=admin(api))

    assert set(listed(api, admin(api), **wait)) == {meis["id"], bos["id"]}
    assert listed(api, admin(api), owner="mei") == [meis["id"]]
    assert listed(api, admin(api), stage="proposal") == [bos["id"]]
    assert listed(api, admin(api), region="west") == [bos["id"]]
    assert listed(api, admin(api), customer_id=bos_row.json()["customer_id"]) == [bos["id"]]


def test_the_listing_pages_newest_first_with_an_opaque_cursor(api: Api) -> None:
    deals = [deal(api) for _ in range(3)]
    wait = {"min_position": deals[-1]["position"]}

    first = api.client.get("/opportunities", params={"limit": 2, **wait}, headers=admin(api))
    second = api.client.get(
        "/opportunities",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=admin(api),
    )

    seen = [row["opportunity_id"] for row in first.json()["data"] + second.json()["data"]]
    assert seen == [d["id"] for d in reversed(deals)]
    assert second.json()["next_cursor"] is None
    for params in [{"cursor": "bad"}, {"stage": "hot"}, {"customer_id": "x"}, {"limit": 0}]:
        response = api.client.get("/opportunities", params=params, headers=admin(api))
        assert response.status_code == 422, params


def test_sales_see_only_their_own_opportunities(api: Api) -> None:
    mine = deal(api, "mei")
    theirs = deal(api, "bo")
    mei = as_(api, "sales", "mei")

    assert listed(api, mei, min_position=theirs["position"]) == [mine["id"]]
    assert listed(api, mei, owner="bo") == []
    assert api.client.get(f"/opportunities/{mine['id']}", headers=mei).status_code == 200
    assert api.client.get(f"/opportunities/{theirs['id']}", headers=mei).status_code == 404


def test_a_manager_sees_only_the_opportunities_of_customers_in_their_region(api: Api) -> None:
    east = deal(api, "bo", "east")
    west = deal(api, "bo", "west")
    boss = as_(api, "manager", "boss", "east")

    assert listed(api, boss, min_position=west["position"]) == [east["id"]]
    assert api.client.get(f"/opportunities/{west['id']}", headers=boss).status_code == 404
    assert post(api, west, "stage", {"stage": "proposal"}, **boss).status_code == 404


def test_reading_opportunities_needs_a_token_a_role_that_reads_them_and_a_known_id(
    api: Api,
) -> None:
    record = deal(api)
    path = f"/opportunities/{record['id']}"

    assert api.client.get("/opportunities").status_code == 401
    assert api.client.get(path).status_code == 401
    for role in ("service", "marketing"):
        assert api.client.get("/opportunities", headers=as_(api, role)).status_code == 403
        assert api.client.get(path, headers=as_(api, role)).status_code == 403
    assert api.client.get(f"/opportunities/{uuid4()}", headers=admin(api)).status_code == 404
    assert api.client.get("/opportunities/nope", headers=admin(api)).status_code == 422
    auditor = as_(api, "auditor")
    read = api.client.get(path, params={"min_position": record["position"]}, headers=auditor)
    assert read.status_code == 200


# --- commands ----------------------------------------------------------------------------------


def test_a_deal_moves_through_the_pipeline_and_is_won(api: Api) -> None:
    record = deal(api)

    answers = [post(api, record, action, body) for action, body in commands()[:4]]

    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["version"] for a in answers] == [2, 3, 4, 5]
    assert answers[-1].headers["etag"] == '"5"'
    row = api.client.get(
        f"/opportunities/{record['id']}",
        params={"min_position": answers[-1].json()["position"]},
        headers=admin(api),
    ).json()
    assert (row["stage"], row["amount"], row["currency"]) == ("won", "2000", "CNY")
    assert row["closed_at"] is not None


def test_a_deal_is_won_only_from_proposal_or_negotiation(api: Api) -> None:
    record = deal(api)

    response = post(api, record, "win", commands()[3][1])

    assert response.status_code == 409
    assert problem_type(response) == "opportunity-not-ready-to-win"
    assert response.json()["stage"] == "qualification"


def test_a_lost_deal_refuses_changes_until_it_is_reopened_at_the_stage_it_was_lost(
    api: Api,
) -> None:
    record = deal(api)
    post(api, record, "stage", {"stage": "negotiation"})
    not_lost = post(api, record, "reopen")
    lost = post(api, record, "lose", {"reason": "price", "competitor": "Globex"})

    refused = {action: post(api, record, action, body) for action, body in commands()[:-1]}
    reopened = post(api, record, "reopen")
    row = api.client.get(
        f"/opportunities/{record['id']}",
        params={"min_position": reopened.json()["position"]},
        headers=admin(api),
    ).json()

    assert not_lost.status_code == 409
    assert problem_type(not_lost) == "opportunity-not-lost"
    assert lost.status_code == 200
    assert {action: a.status_code for action, a in refused.items()} == dict.fromkeys(refused, 409)
    assert {problem_type(a) for a in refused.values()} == {"opportunity-is-closed"}
    assert reopened.status_code == 200
    assert row["stage"] == "negotiation"


def test_a_won_deal_cannot_be_reopened(api: Api) -> None:
    record = deal(api)
    post(api, record, "stage", {"stage": "proposal"})
    post(api, record, "win", commands()[3][1])

    response = post(api, record, "reopen")

    assert response.status_code == 409
    assert problem_type(response) == "opportunity-not-lost"


def test_opportunity_commands_with_invalid_bodies_are_422_and_write_nothing(api: Api) -> None:
    record = deal(api)
    invalid: list[tuple[str, Any]] = [
        ("stage", {"stage": "won"}),
        ("stage", {}),
        ("amount", {"amount": "-5", "currency": "CNY"}),
        ("amount", {"amount": "5", "currency": "ZZZ"}),
        ("amount", {"amount": "NaN", "currency": "CNY"}),
        ("close-date", {"expected_close": "2030-02-30"}),
        ("win", {"amount": "5", "currency": "CNY"}),
        ("win", {"amount": "5", "currency": "CNY", "contract_reference": ""}),
        ("lose", {"reason": ""}),
        ("lose", {"reason": "price", "extra": 1}),
    ]

    for action, body in invalid:
        response = post(api, record, action, body)
        assert response.status_code == 422, (action, body, response.text)
    assert version(api, record) == 1


def test_every_opportunity_command_with_a_stale_if_match_is_412_and_writes_nothing(
    api: Api,
) -> None:
    record = deal(api)
    post(api, record, "stage", {"stage": "proposal"})
    head = api.crm.recorder.max_notification_id()

    statuses = {
        action: post(api, record, action, body, **{"If-Match": '"1"'}).status_code
        for action, body in commands()
    }

    assert statuses == dict.fromkeys(statuses, 412)
    assert api.crm.recorder.max_notification_id() == head
    current = post(api, record, "amount", {"amount": "7", "currency": "CNY"}, **{"If-Match": '"2"'})
    assert current.status_code == 200
    assert current.headers["etag"] == '"3"'


def test_opportunity_commands_on_an_unknown_or_invisible_deal_are_404(api: Api) -> None:
    theirs = deal(api, "bo")
    mei = as_(api, "sales", "mei")
    head = api.crm.recorder.max_notification_id()

    for action, body in commands():
        assert post(api, {"id": str(uuid4())}, action, body).status_code == 404, action
        assert post(api, theirs, action, body, **mei).status_code == 404, action
    assert api.crm.recorder.max_notification_id() == head


def test_opportunity_commands_need_a_token_and_a_role_that_writes_them(api: Api) -> None:
    record = deal(api)

    for action, body in commands():
        path = f"/opportunities/{record['id']}/{action}"
        assert api.client.post(path, json=body).status_code == 401, action
        for role in ("service", "marketing", "auditor"):
            response = api.client.post(path, json=body, headers=as_(api, role))
            assert response.status_code == 403, (action, role)
    assert version(api, record) == 1
