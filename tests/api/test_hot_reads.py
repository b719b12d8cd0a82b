"""The hot reads (GET /customers/{id}, GET /sla/board), answered with pre-serialised JSON:
the same access rules, access log and read-your-writes as every other read."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest

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


def test_the_360_view_hides_what_the_caller_may_not_see_as_404(api: Api) -> None:
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
