"""GET /events/stream: committed events as Server-Sent Events, resumable by position."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from tests.api.conftest import Api


def messages(text: str) -> list[dict[str, Any]]:
    """The stream's event messages (comments and the reconnect hint left out)."""
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = orjson.loads(fields["data"])
            found.append(fields)
    return found


def register_three(api: Api) -> None:
    for n in range(3):
        api.crm.register_customer(
            kind="company", name=f"Acme {n}", region="east", owner="ann", email=f"b{n}@a.example"
        )


def stream(api: Api, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return api.client.get(
        "/events/stream",
        params={"idle_timeout": 0.5, **params},
        headers={**api.as_("auditor"), **(headers or {})},
    )


def test_events_arrive_in_position_order_from_the_given_position(api: Api) -> None:
    register_three(api)
    head = api.crm.recorder.max_notification_id()
    assert head is not None

    response = stream(api, **{"from": 2})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("retry: ")
    received = messages(response.text)
    assert [int(m["id"]) for m in received] == list(range(2, head + 1))
    for message in received:
        assert message["event"] == message["data"]["type"]
        assert message["data"]["position"] == int(message["id"])
        assert {"record_id", "version", "time", "actor", "correlation_id", "payload"} <= set(
            message["data"]
        )


def test_the_type_filter_keeps_only_events_whose_type_starts_with_it(api: Api) -> None:
    register_three(api)

    received = messages(stream(api, type="crm.customer.registered", **{"from": 0}).text)

    assert len(received) == 3
    assert {m["event"] for m in received} == {"crm.customer.registered.v1"}
    assert [m["data"]["payload"]["name"] for m in received] == ["Acme 0", "Acme 1", "Acme 2"]


def test_last_event_id_resumes_after_that_position_and_wins_over_from(api: Api) -> None:
    register_three(api)
    everything = messages(stream(api, **{"from": 0}).text)
    resume_at = int(everything[2]["id"])

    resumed = messages(stream(api, {"Last-Event-ID": str(resume_at)}, **{"from": 0}).text)

    assert resumed == everything[3:]


def test_max_events_closes_the_stream_after_that_many(api: Api) -> None:
    register_three(api)

    received = messages(stream(api, max_events=2, idle_timeout=30, **{"from": 0}).text)

    assert len(received) == 2


def test_without_a_position_the_stream_carries_events_committed_after_it_opened(
    api: Api,
) -> None:
    register_three(api)
    head = api.crm.recorder.max_notification_id() or 0
    api.as_("auditor")  # logged in beforehand, so the stream opens at once

    def later() -> None:
        threading.Event().wait(1.0)
        api.crm.register_customer(kind="person", name="Late", region="east", owner="ann")

    writer = threading.Thread(target=later)
    writer.start()
    response = stream(api, type="crm.customer.", max_events=1, idle_timeout=10)
    writer.join()

    (message,) = messages(response.text)
    assert int(message["id"]) > head
    assert message["data"]["payload"]["name"] == "Late"


def test_an_idle_stream_closes_after_the_idle_timeout(api: Api) -> None:
    response = stream(api, idle_timeout=0.2)

    assert response.status_code == 200
    assert messages(response.text) == []


def test_only_roles_with_the_events_permission_may_stream(api: Api) -> None:
    quick = {"max_events": 0}

    assert api.client.get("/events/stream", params=quick).status_code == 401
    for role in ("manager", "sales", "marketing", "service"):
        response = api.client.get("/events/stream", params=quick, headers=api.as_(role))
        assert response.status_code == 403, role
    assert api.client.get("/events/stream", params=quick, headers=api.admin).status_code == 200


def test_a_malformed_position_or_bound_is_422(api: Api) -> None:
    for headers, params in (
        ({"Last-Event-ID": "abc"}, {}),
        ({}, {"from": -1}),
        ({}, {"max_events": -1}),
        ({}, {"idle_timeout": 4000}),
    ):
        response = stream(api, headers, **params)
        assert response.status_code == 422, (headers, params)
        assert response.headers["content-type"] == "application/problem+json"


def test_opening_a_stream_is_written_to_the_access_log(api: Api) -> None:
    stream(api, max_events=0)

    entries = api.client.get("/audit/access", headers=api.admin).json()["data"]

    assert any(e["action"] == "events.stream" and e["username"] == "auditor" for e in entries)


def test_streams_beyond_the_cap_are_refused_with_503_and_slots_come_back(api: Api) -> None:
    from api.routes import events

    taken = 0
    while events.OPEN_STREAMS.acquire(blocking=False):  # fill every slot
        taken += 1
    try:
        refused = api.client.get(
            "/events/stream", params={"max_events": 0, "idle_timeout": 0}, headers=api.admin
        )
    finally:
        for _ in range(taken):
            events.OPEN_STREAMS.release()
    served = api.client.get(
        "/events/stream", params={"max_events": 0, "idle_timeout": 0}, headers=api.admin
    )

    assert taken == events.MAX_OPEN_STREAMS
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert served.status_code == 200
    assert events.OPEN_STREAMS.acquire(blocking=False)  # the served stream gave its slot back
    events.OPEN_STREAMS.release()
