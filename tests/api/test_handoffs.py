"""Handoff times over HTTP: p50/p90 per kind, team and month, as each role may see them.

One API serves the whole module (starting one per test costs seconds); each test works with
owners and regions of its own, so tests do not see each other's handoffs.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.api.conftest import Api

URL = "/analytics/handoffs"


@pytest.fixture(scope="module")
def api(module_api: Api) -> Api:
    """One API for the module: each test works on data of its own."""
    return module_api


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def assigned_lead(api: Api, owner: str, region: str = "east") -> int:
    """Capture a lead and assign it to `owner`; the position of the assignment."""
    lead = api.crm.capture_lead(channel="web_form", name="Li", region=region, phone="13812345678")
    position = api.crm.assign_lead(lead.id, owner).position
    assert position is not None
    return position


def handoffs(api: Api, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = api.client.get(URL, params=params, headers=headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_handoff_times_are_reported_per_kind_team_and_month(api: Api) -> None:
    owner = unique("user:alice")
    assigned_lead(api, owner)
    position = assigned_lead(api, owner)

    rows = handoffs(api, api.admin, team=owner, min_position=position)

    assert [(r["kind"], r["count"], r["completed"], r["open"]) for r in rows] == [
        ("assignment_to_first_activity", 2, 0, 2),
        ("capture_to_assignment", 2, 2, 0),
    ]
    capture = rows[1]
    assert capture["team"] == owner
    assert capture["p50_seconds"] is not None and capture["p50_seconds"] >= 0
    assert capture["p90_seconds"] >= capture["p50_seconds"]
    assert rows[0]["p50_seconds"] is None
    month = capture["month"]
    assert handoffs(api, api.admin, team=owner, month=month, kind="capture_to_assignment") == [
        capture
    ]
    assert handoffs(api, api.admin, team=owner, month="1999-01") == []


def test_handoffs_need_a_token_and_a_role_that_may_read_analytics(api: Api) -> None:
    assert api.client.get(URL).status_code == 401
    assert api.client.get(URL, headers=api.as_("service")).status_code == 403
    for role in ("admin", "auditor", "marketing", "manager", "sales"):
        assert api.client.get(URL, headers=api.as_(role)).status_code == 200, role


@pytest.mark.parametrize(
    "params",
    [
        {"month": "2026-13"},
        {"month": "2026-3"},
        {"month": "March"},
        {"kind": "breakfast_to_lunch"},
        {"team": ""},
        {"team": "x" * 101},
        {"min_position": "soon"},
    ],
)
def test_handoff_requests_with_bad_filters_are_422(api: Api, params: dict[str, str]) -> None:
    response = api.client.get(URL, params=params, headers=api.admin)

    assert response.status_code == 422, params
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_sales_user_sees_only_their_own_handoffs(api: Api) -> None:
    mine, theirs = unique("user:mine"), unique("user:theirs")
    assigned_lead(api, mine)
    position = assigned_lead(api, theirs)

    seen = handoffs(api, api.as_("sales", mine), min_position=position)

    assert {r["team"] for r in seen} == {mine}
    assert handoffs(api, api.as_("sales", mine), team=theirs) == []


def test_a_manager_sees_only_their_regions_handoffs_and_others_see_all(api: Api) -> None:
    here, there = unique("north"), unique("south")
    local, remote = unique("user:local"), unique("user:remote")
    assigned_lead(api, local, region=here)
    position = assigned_lead(api, remote, region=there)

    managed = handoffs(api, api.as_("manager", region=here), min_position=position)

    assert {r["team"] for r in managed} == {local}
    for role in ("admin", "auditor", "marketing"):
        teams = {r["team"] for r in handoffs(api, api.as_(role), min_position=position)}
        assert {local, remote} <= teams, role
