"""Analytics and SLA reports over HTTP: funnel, stalled deals, forecast, SLA board, compliance.

Each user's figures count only what they may see: a sales user their own records, a manager
their region; amounts stay per currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from domain.shared import FixedClock
from tests.api.conftest import Api

NEXT_MONTH = date.today().replace(day=1) + timedelta(days=32)


@dataclass
class Sales:
    """Two regions' deals and leads: east (li 100 CNY, chen 50 CNY), west (wang 200 USD)."""

    east: UUID
    west: UUID
    position: int


@pytest.fixture
def sales(api: Api) -> Sales:
    crm = api.crm
    east = crm.register_customer(kind="company", name="East Co", region="east", owner="li").id
    west = crm.register_customer(kind="company", name="West Co", region="west", owner="wang").id
    for customer, owner, amount, currency in (
        (east, "li", "100", "CNY"),
        (east, "chen", "50", "CNY"),
        (west, "wang", "200", "USD"),
    ):
        crm.open_opportunity(
            customer_id=customer,
            title=f"{owner}'s deal",
            amount=amount,
            currency=currency,
            expected_close=NEXT_MONTH,
            owner=owner,
        )
    crm.capture_lead(channel="web_form", name="Ann", region="east", email="ann@east.example")
    last = crm.capture_lead(channel="ads", name="Bo", region="west", email="bo@west.example")
    assert last.position is not None
    return Sales(east, west, last.position)


def get(api: Api, path: str, headers: dict[str, str], position: int, **params: Any) -> Any:
    response = api.client.get(path, params={"min_position": position, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def this_month(api: Api) -> str:
    """The current month in the business's time zone, as the reports group by it."""
    return datetime.now(ZoneInfo(api.crm.config.calendar.time_zone)).strftime("%Y-%m")


def stages(body: dict[str, Any]) -> set[tuple[str, str, int, Decimal]]:
    return {(s["stage"], s["currency"], s["count"], Decimal(s["amount"])) for s in body["stages"]}


# --- the funnel ---------------------------------------------------------------------------------


def test_the_funnel_counts_stages_per_currency_and_conversion(api: Api, sales: Sales) -> None:
    funnel = get(api, "/analytics/funnel", api.admin, sales.position)

    assert stages(funnel) == {
        ("qualification", "CNY", 2, Decimal(150)),
        ("qualification", "USD", 1, Decimal(200)),
    }
    assert (funnel["conversion"]["leads"], funnel["conversion"]["opportunities"]) == (2, 3)
    assert funnel["conversion"]["lead_to_qualified"] == 0.0
    assert funnel["days_in_stage"] == []


def test_a_managers_funnel_excludes_other_regions(api: Api, sales: Sales) -> None:
    manager = api.as_("manager", "zhao", region="east")

    funnel = get(api, "/analytics/funnel", manager, sales.position)
    asking_for_west = get(api, "/analytics/funnel", manager, sales.position, region="west")

    assert stages(funnel) == {("qualification", "CNY", 2, Decimal(150))}
    assert (funnel["conversion"]["leads"], funnel["conversion"]["opportunities"]) == (1, 2)
    assert stages(asking_for_west) == set()
    assert asking_for_west["conversion"]["opportunities"] == 0


def test_a_sales_users_funnel_counts_only_their_own_deals(api: Api, sales: Sales) -> None:
    funnel = get(api, "/analytics/funnel", api.as_("sales", "li"), sales.position)

    assert stages(funnel) == {("qualification", "CNY", 1, Decimal(100))}
    assert funnel["conversion"]["opportunities"] == 1


def test_the_funnel_is_sliced_by_period_region_owner_and_channel(api: Api, sales: Sales) -> None:
    admin, position = api.admin, sales.position

    now = this_month(api)
    assert len(get(api, "/analytics/funnel", admin, position, period=now)["stages"]) == 2
    assert get(api, "/analytics/funnel", admin, position, period="2001-01")["stages"] == []
    assert get(api, "/analytics/funnel", admin, position, period="2001-W05")["stages"] == []
    west = get(api, "/analytics/funnel", admin, position, region="west")
    assert stages(west) == {("qualification", "USD", 1, Decimal(200))}
    chen = get(api, "/analytics/funnel", admin, position, owner="chen")
    assert stages(chen) == {("qualification", "CNY", 1, Decimal(50))}
    ads = get(api, "/analytics/funnel", admin, position, channel="ads")
    assert ads["conversion"]["leads"] == 1
    current = get(api, "/analytics/funnel", admin, position, include_current_stays=True)
    assert current["days_in_stage"][0]["stage"] == "qualification"


def test_funnel_requests_with_a_bad_period_are_422(api: Api) -> None:
    for period in ("2026-13", "2026-3", "March", "2021-W53", "2026-W54", "0000-01"):
        response = api.client.get("/analytics/funnel", params={"period": period}, headers=api.admin)
        assert response.status_code == 422, period
        assert response.headers["content-type"] == "application/problem+json"


def test_analytics_need_a_token_and_a_role_that_may_read_them(api: Api) -> None:
    service = api.as_("service")
    marketing = api.as_("marketing")
    for path in ("/analytics/funnel", "/analytics/funnel/stalled", "/analytics/forecast"):
        assert api.client.get(path).status_code == 401, path
        assert api.client.get(path, headers=service).status_code == 403, path
    assert api.client.get("/analytics/funnel", headers=marketing).status_code == 200


def test_marketing_sees_campaign_funnels_but_no_deal_level_figures(api: Api) -> None:
    marketing = api.as_("marketing")
    for path in ("/analytics/funnel/stalled", "/analytics/forecast"):
        assert api.client.get(path, headers=marketing).status_code == 403, path
        assert api.client.get(path, headers=api.as_("sales")).status_code == 200, path


def test_stalled_deals_are_those_past_their_stage_threshold_as_each_user_may_see(
    api: Api, sales: Sales
) -> None:
    assert get(api, "/analytics/funnel/stalled", api.admin, sales.position)["data"] == []
    api.crm.clock = FixedClock(api.crm.clock.now() + timedelta(days=15))

    everyone = get(api, "/analytics/funnel/stalled", api.admin, sales.position)
    east = get(api, "/analytics/funnel/stalled", api.as_("manager", region="east"), sales.position)
    li = get(api, "/analytics/funnel/stalled", api.as_("sales", "li"), sales.position)

    assert {deal["owner"] for deal in everyone["data"]} == {"li", "chen", "wang"}
    assert {deal["owner"] for deal in east["data"]} == {"li", "chen"}
    assert [deal["owner"] for deal in li["data"]] == ["li"]
    assert everyone["data"][0]["threshold_days"] == 14
    assert everyone["data"][0]["days_in_stage"] > 14


def test_stalled_deals_page_with_a_cursor(api: Api, sales: Sales) -> None:
    api.crm.clock = FixedClock(api.crm.clock.now() + timedelta(days=15))

    first = get(api, "/analytics/funnel/stalled", api.admin, sales.position, limit=2)
    rest = get(api, "/analytics/funnel/stalled", api.admin, 0, cursor=first["next_cursor"])
    garbage = api.client.get(
        "/analytics/funnel/stalled", params={"cursor": "nope"}, headers=api.admin
    )

    assert len(first["data"]) == 2 and len(rest["data"]) == 1
    assert rest["next_cursor"] is None
    assert garbage.status_code == 422


# --- the forecast -------------------------------------------------------------------------------


def test_the_forecast_sums_per_month_owner_region_and_currency(api: Api, sales: Sales) -> None:
    forecast = get(api, "/analytics/forecast", api.admin, sales.position)["data"]

    rows = {(r["owner"], r["region"], r["currency"]): r for r in forecast}
    assert set(rows) == {("chen", "east", "CNY"), ("li", "east", "CNY"), ("wang", "west", "USD")}
    li = rows["li", "east", "CNY"]
    assert li["month"] == NEXT_MONTH.replace(day=1).isoformat()
    assert (Decimal(li["open_amount"]), Decimal(li["weighted_amount"])) == (100, 10)


def test_a_forecast_counts_only_what_the_user_may_see(api: Api, sales: Sales) -> None:
    manager = api.as_("manager", region="east")

    east = get(api, "/analytics/forecast", manager, sales.position)["data"]
    li = get(api, "/analytics/forecast", api.as_("sales", "li"), sales.position)["data"]
    later = get(api, "/analytics/forecast", api.admin, sales.position, from_month="2999-01-01")

    assert {row["region"] for row in east} == {"east"}
    assert [row["owner"] for row in li] == ["li"]
    assert later["data"] == []


def test_a_forecast_with_a_malformed_month_is_422(api: Api) -> None:
    response = api.client.get(
        "/analytics/forecast", params={"from_month": "2026-02-30"}, headers=api.admin
    )

    assert response.status_code == 422
    nul = api.client.get("/analytics/forecast", params={"owner": "\x00"}, headers=api.admin)
    assert nul.status_code == 422


# --- the SLA board and compliance ---------------------------------------------------------------


@dataclass
class Desk:
    east_p1: str
    west_p3: str
    position: int


@pytest.fixture
def desk(api: Api) -> Desk:
    crm = api.crm
    east = crm.register_customer(kind="company", name="East Co", region="east", owner="li").id
    west = crm.register_customer(kind="company", name="West Co", region="west", owner="wang").id
    east_p1 = crm.open_ticket(customer_id=east, channel="phone", subject="Down", priority="P1").id
    west_p3 = crm.open_ticket(customer_id=west, channel="email", subject="Slow", priority="P3").id
    last = crm.assign_ticket(west_p3, "wang", "support-west")
    assert last.position is not None
    return Desk(str(east_p1), str(west_p3), last.position)


def board(api: Api, headers: dict[str, str], position: int, **params: Any) -> list[str]:
    return [row["ticket_id"] for row in get(api, "/sla/board", headers, position, **params)["data"]]


def test_the_sla_board_lists_open_tickets_nearest_due_first(api: Api, desk: Desk) -> None:
    page = get(api, "/sla/board", api.as_("service"), desk.position)

    assert [row["ticket_id"] for row in page["data"]] == [desk.east_p1, desk.west_p3]
    assert page["data"][0]["sla"]["state"] in ("on_track", "at_risk")
    assert page["next_cursor"] is None


def test_the_sla_board_is_filtered_and_paged(api: Api, desk: Desk) -> None:
    service, position = api.as_("service"), desk.position

    assert board(api, service, position, team="support-west") == [desk.west_p3]
    assert board(api, service, position, agent="wang", priority="P3") == [desk.west_p3]
    assert board(api, service, position, priority="P2") == []
    first = get(api, "/sla/board", service, position, limit=1)
    rest = get(api, "/sla/board", service, position, cursor=first["next_cursor"])
    assert [row["ticket_id"] for row in first["data"] + rest["data"]] == [
        desk.east_p1,
        desk.west_p3,
    ]


def test_the_sla_board_shows_the_state_at_the_crms_clock(api: Api, desk: Desk) -> None:
    api.crm.clock = FixedClock(api.crm.clock.now() + timedelta(days=30))

    breached = board(api, api.admin, desk.position, state="breached")

    assert breached == [desk.east_p1, desk.west_p3]
    assert board(api, api.admin, desk.position, state="on_track") == []


def test_a_managers_sla_board_holds_only_their_regions_tickets(api: Api, desk: Desk) -> None:
    manager = api.as_("manager", region="east")

    assert board(api, manager, desk.position) == [desk.east_p1]


def test_sla_reports_need_a_role_that_may_read_them(api: Api) -> None:
    for path in ("/sla/board", "/sla/compliance"):
        assert api.client.get(path).status_code == 401, path
        for role in ("sales", "marketing"):
            assert api.client.get(path, headers=api.as_(role)).status_code == 403, (path, role)
        assert api.client.get(path, headers=api.as_("auditor")).status_code == 200, path


def test_sla_board_requests_with_bad_filters_are_422(api: Api) -> None:
    for params in ({"state": "late"}, {"priority": "P0"}, {"limit": 501}, {"cursor": "x"}):
        response = api.client.get("/sla/board", params=params, headers=api.admin)
        assert response.status_code == 422, params


def test_sla_compliance_counts_outcomes_by_priority_as_each_user_may_see(
    api: Api, desk: Desk
) -> None:
    crm = api.crm
    for ticket in (desk.east_p1, desk.west_p3):
        crm.record_ticket_first_response(UUID(ticket))
        last = crm.resolve_ticket(UUID(ticket), "Fixed")
    assert last.position is not None
    month = this_month(api)

    everyone = get(api, "/sla/compliance", api.admin, last.position, by="priority")["data"]
    east = get(api, "/sla/compliance", api.as_("manager", region="east"), last.position)["data"]
    by_email = get(api, "/sla/compliance", api.admin, last.position, channel="email")["data"]
    in_west = get(api, "/sla/compliance", api.admin, last.position, region="west", by="team")
    long_ago = get(api, "/sla/compliance", api.admin, last.position, period="2001-01")

    assert [(row["key"], row["resolution_met"]) for row in everyone] == [("P1", 1), ("P3", 1)]
    assert everyone[0]["first_response_pct"] == 100.0
    assert [(row["key"], row["first_response_met"]) for row in east] == [(month, 1)]
    assert [row["resolution_met"] for row in by_email] == [1]
    assert [row["key"] for row in in_west["data"]] == ["support-west"]
    assert long_ago["data"] == []


def test_sla_compliance_with_bad_filters_is_422(api: Api) -> None:
    for params in ({"by": "agent"}, {"period": "2026-00"}, {"channel": "fax"}, {"team": ""}):
        response = api.client.get("/sla/compliance", params=params, headers=api.admin)
        assert response.status_code == 422, params
