"""Idempotency-Key: a repeated POST replays the first answer and writes nothing."""

from __future__ import annotations

from uuid import uuid4

import orjson
import psycopg

from tests.api.conftest import Api

CUSTOMER = {"kind": "company", "name": "Acme", "region": "east", "email": "buy@acme.example"}


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid4())}


def test_a_repeat_with_the_same_key_replays_the_first_response_and_writes_nothing(
    api: Api,
) -> None:
    headers = {**api.admin, **key()}
    first = api.client.post("/customers", json=CUSTOMER, headers=headers)
    head = api.crm.recorder.max_notification_id()

    repeat = api.client.post("/customers", json=CUSTOMER, headers=headers)

    assert first.status_code == repeat.status_code == 201
    assert repeat.json() == first.json()
    assert repeat.headers["etag"] == first.headers["etag"]
    assert repeat.headers["location"] == first.headers["location"]
    assert repeat.headers["idempotent-replayed"] == "true"
    assert api.crm.recorder.max_notification_id() == head


def test_without_a_key_a_repeat_is_a_new_command(api: Api) -> None:
    first = api.client.post("/customers", json=CUSTOMER, headers=api.admin)
    repeat = api.client.post("/customers", json=CUSTOMER, headers=api.admin)

    assert first.status_code == 201
    assert repeat.status_code == 409  # the email is registered already
    assert repeat.json()["type"].endswith("/customer-email-already-registered")


def test_a_refused_command_is_replayed_as_refused(api: Api) -> None:
    api.client.post("/customers", json=CUSTOMER, headers=api.admin)
    headers = {**api.admin, **key()}

    first = api.client.post("/customers", json=CUSTOMER, headers=headers)
    repeat = api.client.post("/customers", json=CUSTOMER, headers=headers)

    assert first.status_code == repeat.status_code == 409
    assert repeat.json() == first.json()


def test_the_same_key_with_another_body_is_rejected(api: Api) -> None:
    headers = {**api.admin, **key()}
    api.client.post("/customers", json=CUSTOMER, headers=headers)
    head = api.crm.recorder.max_notification_id()

    other = api.client.post("/customers", json={**CUSTOMER, "name": "Other"}, headers=headers)

    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert api.crm.recorder.max_notification_id() == head


def test_keys_are_scoped_to_the_user(api: Api) -> None:
    shared = key()
    first = api.client.post(
        "/customers", json=CUSTOMER, headers={**api.as_("admin", "ann", region=None), **shared}
    )
    second = api.client.post(
        "/customers",
        json={**CUSTOMER, "email": "other@acme.example"},
        headers={**api.as_("admin", "bob", region=None), **shared},
    )

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_an_unauthenticated_attempt_does_not_use_up_the_key(api: Api) -> None:
    shared = key()
    anonymous = api.client.post("/customers", json=CUSTOMER, headers=shared)
    real = api.client.post("/customers", json=CUSTOMER, headers={**api.admin, **shared})

    assert anonymous.status_code == 401
    assert real.status_code == 201


def test_a_forbidden_attempt_does_not_use_up_the_key(api: Api) -> None:
    shared = key()
    forbidden = api.client.post(
        "/customers", json=CUSTOMER, headers={**api.as_("auditor"), **shared}
    )
    allowed_after = api.client.post(
        "/customers",
        json=CUSTOMER,
        headers={**api.as_("auditor"), **shared},
    )

    assert forbidden.status_code == allowed_after.status_code == 403
    assert "idempotent-replayed" not in allowed_after.headers


def test_an_overlong_key_is_422(api: Api) -> None:
    response = api.client.post(
        "/customers", json=CUSTOMER, headers={**api.admin, "Idempotency-Key": "k" * 256}
    )

    assert response.status_code == 422
    assert response.json()["type"].endswith("/invalid-idempotency-key")


def test_a_key_still_in_flight_answers_409(api: Api) -> None:
    store = api.services.idempotency
    user_key = str(uuid4())
    # Another request holds the key: reserved with this request's exact fingerprint.
    from hashlib import sha256

    body = orjson.dumps(CUSTOMER)
    fingerprint = sha256(b"\n".join([b"POST", b"/customers", b"", body])).hexdigest()
    assert store.reserve("admin", user_key, fingerprint).state == "new"

    response = api.client.post(
        "/customers",
        content=body,
        headers={**api.admin, "Idempotency-Key": user_key, "Content-Type": "application/json"},
    )

    assert response.status_code == 409
    assert response.json()["type"].endswith("/idempotency-key-in-use")


def test_expired_keys_are_forgotten(api: Api) -> None:
    headers = {**api.admin, **key()}
    first = api.client.post("/customers", json=CUSTOMER, headers=headers)
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute("UPDATE crm_idempotency SET created_at = now() - interval '25 hours'")

    again = api.client.post("/customers", json=CUSTOMER, headers=headers)

    assert first.status_code == 201
    assert again.status_code == 409  # executed anew: the email is taken now
    assert "idempotent-replayed" not in again.headers


def test_a_nul_character_anywhere_in_a_request_is_422_and_writes_nothing(api: Api) -> None:
    head = api.crm.recorder.max_notification_id()

    in_body = api.client.post(
        "/customers", json={**CUSTOMER, "name": "Ac\u0000me"}, headers=api.admin
    )
    in_query = api.client.get("/customers", params={"q": "a\x00"}, headers=api.admin)

    assert in_body.status_code == in_query.status_code == 422
    assert in_body.headers["content-type"] == "application/problem+json"
    assert api.crm.recorder.max_notification_id() == head


def test_a_second_authorization_header_does_not_dodge_the_key(api: Api) -> None:
    shared = key()
    headers = [
        ("Authorization", api.admin["Authorization"]),
        ("Authorization", "Bearer junk"),
        ("Idempotency-Key", shared["Idempotency-Key"]),
        ("Content-Type", "application/json"),
    ]
    body = orjson.dumps(CUSTOMER)
    first = api.client.post("/customers", content=body, headers=headers)
    head = api.crm.recorder.max_notification_id()
    repeat = api.client.post("/customers", content=body, headers=headers)

    assert first.status_code == repeat.status_code == 201
    assert repeat.headers.get("idempotent-replayed") == "true"
    assert api.crm.recorder.max_notification_id() == head


def test_expired_keys_of_every_user_are_purged_by_the_next_reservation(api: Api) -> None:
    store = api.services.idempotency
    store.reserve("ann", "old-key", "f")
    with psycopg.connect(api.database_url, autocommit=True) as conn:
        conn.execute("UPDATE crm_idempotency SET created_at = now() - interval '25 hours'")

    store.reserve("bob", "new-key", "f")

    with psycopg.connect(api.database_url) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM crm_idempotency")]
    assert keys == ["new-key"]
