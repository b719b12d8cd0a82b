"""The hot reads (GET /customers/{id}, GET /sla/board) awaited on the event loop's own pool:
they answer exactly what the threaded queries read, with the same access rules."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient

from api.access import redact_customer
from api.main import create_api
from api.routes.sla import board_entry
from api.routes.tickets import ticket_public
from api.schemas.customers import Customer360Public
from api.security import Principal, Role
from projections.async_reads import AsyncReader
from projections.customer_360 import Customer360View
from projections.readmodel import ReadModelNotCaughtUp
from projections.sla_board import SlaBoardView, SlaState
from tests.api.conftest import Api


@pytest.fixture(scope="module")
def api(module_api: Api) -> Api:
    return module_api


def head(api: Api) -> int:
    return int(api.crm.recorder.max_notification_id() or 0)


def customer_with_everything(api: Api, owner: str = "admin") -> UUID:
    crm = api.crm
    customer_id = crm.register_customer(
        kind="company",
        name=f"Hot {uuid4().hex[:6]}",
        region="east",
        owner=owner,
        email=f"{uuid4().hex[:8]}@hot.example",
        phone=f"+86 138 {uuid4().int % 10**8:08d}",
    ).id
    crm.add_customer_contact(customer_id, name="Zhang Min", email=f"{uuid4().hex[:8]}@hot.example")
    crm.tag_customer(customer_id, "vip")
    crm.record_customer_consent(customer_id, "email", granted=True, legal_basis="consent")
    crm.open_opportunity(
        customer_id=customer_id,
        title="500 units",
        amount="1000",
        currency="CNY",
        expected_close=date.today() + timedelta(days=30),
        owner=owner,
    )
    return customer_id


@pytest.mark.parametrize("role", ["admin", "marketing", "service", "auditor"])
def test_the_awaited_360_view_is_what_the_threaded_query_reads(api: Api, role: Role) -> None:
    customer_id = customer_with_everything(api)
    headers = api.as_(role, f"hot-{role}")
    user = Principal(f"hot-{role}", role, "east")

    response = api.client.get(
        f"/customers/{customer_id}", params={"min_position": head(api)}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document = api.services.read_models.customers.customer(customer_id)
    assert document is not None and document["tags"] == ["vip"]
    expected = Customer360Public.model_validate(redact_customer(user, document))
    assert response.json() == jsonable_encoder(expected)


def test_the_360_view_is_read_on_the_pool_the_lifespan_opened(api: Api) -> None:
    customer_id = customer_with_everything(api)
    reader: AsyncReader = api.client.app_state["reader"]
    assert reader.pool is not None
    before = reader.pool.get_stats()["requests_num"]

    response = api.client.get(
        f"/customers/{customer_id}", params={"min_position": head(api)}, headers=api.admin
    )

    assert response.status_code == 200
    assert reader.pool.get_stats()["requests_num"] > before


def test_without_a_lifespan_the_hot_reads_connect_per_request(api: Api) -> None:
    customer_id = customer_with_everything(api)
    position = {"min_position": head(api)}
    pooled = api.client.get(f"/customers/{customer_id}", params=position, headers=api.admin)

    bare = TestClient(create_api(api.services))  # no `with`: no lifespan, no pool
    response = bare.get(f"/customers/{customer_id}", params=position, headers=api.admin)
    board = bare.get("/sla/board", params=position, headers=api.admin)

    assert response.status_code == 200, response.text
    assert response.json() == pooled.json()
    assert board.status_code == 200, board.text


def test_the_awaited_360_view_hides_what_the_caller_may_not_see_as_404(api: Api) -> None:
    others = customer_with_everything(api, owner="ann")
    sam = api.as_("sales", "sam", region="east")
    ann = api.as_("sales", "ann", region="east")
    west_manager = api.as_("manager", "wes", region="west")
    position = {"min_position": head(api)}

    hidden = api.client.get(f"/customers/{others}", params=position, headers=sam)
    unknown = api.client.get(f"/customers/{uuid4()}", params=position, headers=sam)

    assert hidden.status_code == unknown.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["title"] == unknown.json()["title"]
    assert api.client.get(f"/customers/{others}", params=position, headers=ann).status_code == 200
    assert (
        api.client.get(f"/customers/{others}", params=position, headers=west_manager).status_code
        == 404
    )


def test_only_reads_that_answer_are_written_to_the_access_log(api: Api) -> None:
    customer_id = customer_with_everything(api, owner="ann")
    position = {"min_position": head(api)}
    for name in ("ann", "sam"):  # sam may not see ann's customer
        api.client.get(
            f"/customers/{customer_id}",
            params=position,
            headers={**api.as_("sales", name, region="east"), "User-Agent": "hot-test"},
        )

    entries, _ = api.services.access_log.query(record_id=customer_id)

    assert [(e["username"], e["action"], e["user_agent"]) for e in entries] == [
        ("ann", "customer.read", "hot-test")
    ]


def test_a_write_given_as_x_min_position_is_read_back_at_once(api: Api) -> None:
    customer_id = customer_with_everything(api)
    tagged = api.client.post(
        f"/customers/{customer_id}/tags", json={"tag": "fresh"}, headers=api.admin
    )
    position = tagged.json()["position"]

    response = api.client.get(
        f"/customers/{customer_id}", headers={**api.admin, "X-Min-Position": str(position)}
    )

    assert response.status_code == 200
    assert "fresh" in response.json()["tags"]


def test_a_min_position_beyond_the_log_is_refused_at_once(api: Api) -> None:
    beyond = str(head(api) + 1000)
    for path in (f"/customers/{uuid4()}", "/sla/board"):
        response = api.client.get(path, headers={**api.admin, "X-Min-Position": beyond})

        assert response.status_code == 422, path
        assert response.headers["content-type"] == "application/problem+json"


def test_the_awaited_wait_gives_up_when_the_read_model_is_behind(api: Api) -> None:
    reader = api.services.async_reader
    position = api.services.read_models.customers.position()

    async def wait(target: int) -> None:
        await reader.wait_for(Customer360View, target, timeout=0.05)

    asyncio.run(wait(position))  # caught up: returns at once
    with pytest.raises(ReadModelNotCaughtUp):
        asyncio.run(wait(position + 1_000_000))


def test_the_awaited_board_is_what_the_threaded_board_reads(api: Api) -> None:
    crm = api.crm
    customer_id = crm.register_customer(
        kind="company", name="Board Co", region="east", owner="admin"
    ).id
    for priority in ("P1", "P2", "P3", "P4", "P2"):
        crm.open_ticket(customer_id=customer_id, channel="email", subject="x", priority=priority)
    position = head(api)
    view = api.services.read_models.sla
    view.wait_for(position)
    config = crm.config
    reader = api.services.async_reader
    queries: list[dict[str, Any]] = [
        {"limit": 2},
        {"limit": 3, "priority": "P2"},
        {"limit": 2, "state": SlaState.BREACHED},
        {"limit": 100, "state": SlaState.ON_TRACK},
    ]
    pages: list[list[Any]] = []
    for days in (0, 30):  # all on track, then all breached
        now = crm.clock.now() + timedelta(days=days)
        for query in queries:
            threaded, threaded_cursor = view.board_page(
                now, config.calendar, config.sla_policy, **query
            )
            awaited, awaited_cursor = asyncio.run(
                SlaBoardView.read_board_page(
                    reader, now, config.calendar, config.sla_policy, **query
                )
            )
            assert awaited == threaded, query
            assert awaited_cursor == threaded_cursor, query
            assert [board_entry(row) for row in awaited] == [
                ticket_public(row, now, config) for row in threaded
            ]
            pages.append([row["state"] for row in threaded])
            if threaded_cursor is not None:
                more, _ = view.board_page(
                    now, config.calendar, config.sla_policy, cursor=threaded_cursor, **query
                )
                more_awaited, _ = asyncio.run(
                    SlaBoardView.read_board_page(
                        reader,
                        now,
                        config.calendar,
                        config.sla_policy,
                        cursor=awaited_cursor,
                        **query,
                    )
                )
                assert more_awaited == more, query
    assert SlaState.ON_TRACK in pages[3] and SlaState.BREACHED in pages[6]
    assert len(pages[0]) == 2 and not pages[2] and not pages[7]
