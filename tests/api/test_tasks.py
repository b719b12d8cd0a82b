"""Tasks over HTTP: create, list (mine, my team's, overdue), read, reassign, complete, cancel.

One API serves the whole module (starting one per test costs seconds); each test works on
teams and users of its own, so tests do not see each other's tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from api.security import Role
from tests.api.conftest import Api

Headers = dict[str, str]


@pytest.fixture(scope="module")
def api(module_api: Api) -> Api:
    """One API for the module: each test works on data of its own."""
    return module_api


@pytest.fixture(scope="module")
def customer(api: Api) -> str:
    result = api.crm.register_customer(kind="company", name="Acme", region="east", owner="sam")
    return str(result.id)


@pytest.fixture
def team() -> str:
    """A team of this test's own."""
    return unique("team")


def unique(prefix: str = "x") -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


def head(api: Api) -> int:
    return int(api.crm.recorder.max_notification_id() or 0)


def version(api: Api, task_id: str) -> int:
    return int(api.crm.repository.get(UUID(task_id)).version)


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return str(response.json()["type"].rsplit("/", 1)[-1])


def user(api: Api, role: Role, name: str, team: str | None) -> Headers:
    return api.as_(role, name, region="east", team=team)


def due(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def body(customer: str, team: str, **fields: Any) -> dict[str, Any]:
    return {
        "title": "Call back",
        "team": team,
        "related_kind": "customer",
        "related_id": customer,
        "due_at": due(2),
        **fields,
    }


def create(
    api: Api, customer: str, team: str, headers: Headers | None = None, **fields: Any
) -> str:
    response = api.client.post(
        "/tasks", json=body(customer, team, **fields), headers=headers or api.admin
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def listed(api: Api, headers: Headers | None = None, **params: Any) -> list[str]:
    response = api.client.get(
        "/tasks", params={"min_position": head(api), **params}, headers=headers or api.admin
    )
    assert response.status_code == 200, response.text
    return [row["task_id"] for row in response.json()["data"]]


def read(api: Api, task_id: str, headers: Headers | None = None) -> Any:
    return api.client.get(
        f"/tasks/{task_id}", params={"min_position": head(api)}, headers=headers or api.admin
    )


def post(
    api: Api, task_id: str, action: str, json: Any = None, headers: Headers | None = None
) -> Any:
    return api.client.post(f"/tasks/{task_id}/{action}", json=json, headers=headers or api.admin)


# --- create ------------------------------------------------------------------------------------


def test_creating_a_task_answers_201_with_location_and_etag_and_it_can_be_read(
    api: Api, customer: str, team: str
) -> None:
    sam = user(api, "sales", "sam", team)
    response = api.client.post(
        "/tasks",
        json=body(customer, team, assignee="sam", priority="high", title="Send offer"),
        headers=sam,
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/tasks/{created['id']}"
    assert response.headers["etag"] == f'"{created["version"]}"'
    task = read(api, created["id"], sam).json()
    assert (task["title"], task["assignee"], task["team"]) == ("Send offer", "sam", team)
    assert (task["related_kind"], task["related_id"]) == ("customer", customer)
    assert (task["priority"], task["status"], task["overdue"]) == ("high", "open", False)
    assert (task["source_saga"], task["cause_id"], task["closed_at"]) == (None, None, None)


def test_creating_is_refused_without_a_token_for_auditors_and_for_another_team(
    api: Api, customer: str, team: str
) -> None:
    before = head(api)

    assert api.client.post("/tasks", json=body(customer, team)).status_code == 401
    auditor = api.as_("auditor")
    assert api.client.post("/tasks", json=body(customer, team), headers=auditor).status_code == 403
    for role in ("sales", "service", "marketing"):
        headers = user(api, role, unique(role), team)
        elsewhere = api.client.post("/tasks", json=body(customer, "other"), headers=headers)
        assert elsewhere.status_code == 403, role
    teamless = user(api, "sales", unique("solo"), None)
    assert api.client.post("/tasks", json=body(customer, team), headers=teamless).status_code == 403
    assert head(api) == before


def test_managers_and_admins_may_create_tasks_for_any_team(
    api: Api, customer: str, team: str
) -> None:
    manager = user(api, "manager", unique("mia"), "managers")

    create(api, customer, team, manager)
    create(api, customer, team, api.admin)

    assert len(listed(api, team=team)) == 2


def test_creating_refuses_bad_input_with_422_and_an_unknown_record_with_404(
    api: Api, customer: str, team: str
) -> None:
    before = head(api)
    naive = body(customer, team, due_at="2030-01-01T09:00:00")
    for bad in (
        naive,
        body(customer, team, related_kind="planet"),
        body(customer, team, priority="whenever"),
        body(customer, team, title=""),
        body(customer, team, related_id="not-a-uuid"),
        {**body(customer, team), "extra": 1},
        {"title": "No team"},
    ):
        invalid = api.client.post("/tasks", json=bad, headers=api.admin)
        assert invalid.status_code == 422, bad
        assert problem_type(invalid) == "validation-error"
    unknown = api.client.post("/tasks", json=body(str(uuid4()), team), headers=api.admin)
    assert unknown.status_code == 404
    wrong_kind = api.client.post(
        "/tasks", json=body(customer, team, related_kind="ticket"), headers=api.admin
    )
    assert wrong_kind.status_code == 404
    assert head(api) == before


# --- reading -----------------------------------------------------------------------------------


def test_users_see_tasks_assigned_to_them_or_to_their_team_and_no_others(
    api: Api, customer: str, team: str
) -> None:
    other_team = unique("team")
    mine_elsewhere = create(api, customer, other_team, assignee="ann", due_at=due(1))
    teams = create(api, customer, team, assignee="bob", due_at=due(2))
    queue = create(api, customer, team, due_at=due(3))
    hidden = create(api, customer, other_team, assignee="bob", due_at=due(4))
    ann = user(api, "sales", "ann", team)

    assert listed(api, ann, team=team) == [teams, queue]
    assert set(listed(api, ann)) >= {mine_elsewhere, teams, queue}
    assert hidden not in listed(api, ann)
    assert read(api, hidden, ann).status_code == 404
    assert read(api, mine_elsewhere, ann).status_code == 200
    manager = user(api, "manager", unique("mia"), team)
    assert read(api, hidden, manager).status_code == 404
    assert listed(api, manager, team=team) == [teams, queue]
    auditor = api.as_("auditor")
    assert listed(api, auditor, team=other_team) == [mine_elsewhere, hidden]
    assert read(api, hidden, auditor).status_code == 200


def test_mine_lists_only_the_callers_tasks_and_team_only_that_teams(
    api: Api, customer: str, team: str
) -> None:
    name = unique("sam")
    mine = create(api, customer, team, assignee=name, due_at=due(1))
    theirs = create(api, customer, team, assignee="bob", due_at=due(2))
    sam = user(api, "service", name, team)

    assert listed(api, sam, mine="true") == [mine]
    assert listed(api, sam, team=team) == [mine, theirs]
    assert listed(api, sam, team=unique("team")) == []


def test_overdue_lists_open_tasks_whose_due_time_has_passed_by_the_crms_clock(
    api: Api, customer: str, team: str
) -> None:
    late = create(api, customer, team, due_at=due(-2))
    done = create(api, customer, team, due_at=due(-1))
    post(api, done, "complete")
    upcoming = create(api, customer, team, due_at=due(1))

    assert listed(api, team=team, overdue="true") == [late]
    assert listed(api, team=team) == [late, done, upcoming]
    assert read(api, late).json()["overdue"] is True
    assert read(api, done).json()["overdue"] is False
    assert read(api, upcoming).json()["overdue"] is False


def test_tasks_filter_by_status_and_page_soonest_due_first(
    api: Api, customer: str, team: str
) -> None:
    tasks = [create(api, customer, team, due_at=due(hours)) for hours in (3, 1, 2)]
    post(api, tasks[0], "cancel", {"reason": "not needed"})
    params = {"team": team, "min_position": head(api), "limit": 2}

    first = api.client.get("/tasks", params=params, headers=api.admin).json()
    cursor = first["next_cursor"]
    second = api.client.get("/tasks", params={**params, "cursor": cursor}, headers=api.admin)

    assert [t["task_id"] for t in first["data"]] == [tasks[1], tasks[2]]
    assert [t["task_id"] for t in second.json()["data"]] == [tasks[0]]
    assert second.json()["next_cursor"] is None
    assert listed(api, team=team, status="cancelled") == [tasks[0]]
    assert listed(api, team=team, status="open") == [tasks[1], tasks[2]]


def test_queries_refuse_bad_input_unknown_ids_and_missing_tokens(api: Api, team: str) -> None:
    assert api.client.get("/tasks").status_code == 401
    assert api.client.get(f"/tasks/{uuid4()}").status_code == 401
    assert read(api, str(uuid4())).status_code == 404
    for params in ({"status": "sleeping"}, {"cursor": "nope"}, {"limit": 0}, {"team": ""}):
        bad = api.client.get("/tasks", params=params, headers=api.admin)
        assert bad.status_code == 422, params
    assert api.client.get("/tasks/not-a-uuid", headers=api.admin).status_code == 422


# --- commands on one task ----------------------------------------------------------------------


def test_reassigning_moves_the_task_to_another_assignee_and_team(
    api: Api, customer: str, team: str
) -> None:
    task = create(api, customer, team, assignee="ann")
    manager = user(api, "manager", unique("mia"), team)
    new_team = unique("team")

    to_bob = post(api, task, "reassign", {"assignee": "bob"}, user(api, "sales", "ann", None))
    moved = post(api, task, "reassign", {"assignee": None, "team": new_team}, manager)

    assert to_bob.status_code == 200, to_bob.text
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] == f'"{moved.json()["version"]}"'
    row = read(api, task).json()
    assert (row["assignee"], row["team"]) == (None, new_team)


def test_reassigning_to_another_team_is_403_unless_admin_or_manager(
    api: Api, customer: str, team: str
) -> None:
    task = create(api, customer, team, assignee="ann")
    ann = user(api, "sales", "ann", team)
    before = head(api)

    refused = post(api, task, "reassign", {"assignee": "bob", "team": "elsewhere"}, ann)

    assert refused.status_code == 403
    assert head(api) == before
    assert post(api, task, "reassign", {"assignee": "bob", "team": team}, ann).status_code == 200


def test_completing_answers_200_and_again_changes_nothing(
    api: Api, customer: str, team: str
) -> None:
    task = create(api, customer, team)
    headers = user(api, "service", unique("sue"), team)

    done = post(api, task, "complete", {"note": "called"}, headers)
    again = post(api, task, "complete", None, headers)

    assert done.status_code == 200, done.text
    assert done.json()["position"] is not None
    assert again.status_code == 200
    assert again.json()["position"] is None
    row = read(api, task).json()
    assert (row["status"], row["overdue"]) == ("completed", False)
    assert row["closed_at"] is not None


def test_a_completed_task_cannot_be_cancelled_or_reassigned_and_a_cancelled_one_not_completed(
    api: Api, customer: str, team: str
) -> None:
    done = create(api, customer, team)
    dropped = create(api, customer, team)
    post(api, done, "complete")
    post(api, dropped, "cancel", {"reason": "not needed"})
    before = head(api)

    cancel_done = post(api, done, "cancel", {"reason": "oops"})
    reassign_done = post(api, done, "reassign", {"assignee": "bob"})
    complete_dropped = post(api, dropped, "complete")

    assert (cancel_done.status_code, problem_type(cancel_done)) == (409, "task-already-completed")
    assert reassign_done.status_code == 409
    assert complete_dropped.status_code == 409
    assert problem_type(complete_dropped) == "task-already-cancelled"
    assert head(api) == before


def test_cancelling_answers_200_and_needs_a_reason(api: Api, customer: str, team: str) -> None:
    task = create(api, customer, team)

    assert post(api, task, "cancel", {}).status_code == 422
    assert post(api, task, "cancel", {"reason": ""}).status_code == 422
    cancelled = post(api, task, "cancel", {"reason": "customer declined"})

    assert cancelled.status_code == 200, cancelled.text
    assert read(api, task).json()["status"] == "cancelled"


def test_a_stale_if_match_is_412_and_writes_nothing(api: Api, customer: str, team: str) -> None:
    task = create(api, customer, team)
    post(api, task, "reassign", {"assignee": "bob"})
    before = head(api)

    stale = api.client.post(
        f"/tasks/{task}/complete", json={}, headers={**api.admin, "If-Match": '"1"'}
    )

    assert stale.status_code == 412
    assert head(api) == before
    current = version(api, task)
    fresh = api.client.post(
        f"/tasks/{task}/complete", json={}, headers={**api.admin, "If-Match": f'"{current}"'}
    )
    assert fresh.status_code == 200


def test_commands_on_tasks_the_caller_may_not_see_or_that_do_not_exist_are_404(
    api: Api, customer: str, team: str
) -> None:
    task = create(api, customer, team, assignee="bob")
    stranger = user(api, "sales", unique("sam"), unique("team"))
    before = head(api)

    for action, json in (
        ("complete", {}),
        ("cancel", {"reason": "mine now"}),
        ("reassign", {"assignee": "sam"}),
    ):
        assert post(api, task, action, json, stranger).status_code == 404, action
        assert post(api, str(uuid4()), action, json).status_code == 404, action
    assert head(api) == before


def test_commands_need_a_token_and_a_role_that_may_write_tasks(
    api: Api, customer: str, team: str
) -> None:
    task = create(api, customer, team)
    auditor = api.as_("auditor")

    for action, json in (("complete", {}), ("cancel", {"reason": "x"}), ("reassign", {})):
        assert api.client.post(f"/tasks/{task}/{action}", json=json).status_code == 401
        assert post(api, task, action, json, auditor).status_code == 403
    assert post(api, task, "reassign", {}).status_code == 422
    assert post(api, task, "complete", {"note": "x", "extra": 1}).status_code == 422


def test_a_task_about_a_record_the_caller_may_not_see_answers_404(api: Api) -> None:
    hidden = api.crm.register_customer(
        kind="company", name="Hidden Co", region="west", owner="someone-else"
    ).id
    sales = api.as_("sales", "task-seller", region="east", team="east-sales")
    body = {
        "title": "Call them",
        "team": "east-sales",
        "related_kind": "customer",
        "related_id": str(hidden),
        "due_at": "2030-01-01T09:00:00+08:00",
    }

    as_sales = api.client.post("/tasks", json=body, headers=sales)
    service = api.as_("service", "task-agent", team="east-sales")
    about_a_deal = api.client.post(
        "/tasks", json={**body, "related_kind": "opportunity"}, headers=service
    )

    assert as_sales.status_code == 404
    assert about_a_deal.status_code == 404
