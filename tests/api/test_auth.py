"""Login, bearer tokens, and the 401/403 answers of the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from api.security import Principal, TokenService
from tests.api.conftest import PASSWORD, Api

CUSTOMER = {"kind": "company", "name": "Acme", "region": "east"}


def test_logging_in_returns_a_bearer_token_that_identifies_the_user(api: Api) -> None:
    api.services.users.create("mei", PASSWORD, "sales", region="east", team="t1")  # type: ignore[attr-defined]

    login = api.client.post("/auth/token", data={"username": "mei", "password": PASSWORD})
    token = login.json()["access_token"]
    me = api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert login.status_code == 200
    assert login.json()["token_type"] == "bearer" and login.json()["expires_in"] > 0
    assert me.json() == {"username": "mei", "role": "sales", "region": "east", "team": "t1"}


def test_a_wrong_password_is_401_problem_json(api: Api) -> None:
    api.services.users.create("mei", PASSWORD, "sales", region="east")  # type: ignore[attr-defined]

    response = api.client.post("/auth/token", data={"username": "mei", "password": "nope"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_login_without_a_password_is_422(api: Api) -> None:
    response = api.client.post("/auth/token", data={"username": "mei"})

    assert response.status_code == 422
    assert response.json()["errors"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-jwt", "Basic bWVpOnB3", "Bearer "],
)
def test_requests_without_a_valid_token_are_401(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = api.client.get("/auth/me", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_an_expired_token_is_401(api: Api) -> None:
    tokens: TokenService = api.services.tokens
    expired = tokens.issue(
        Principal("admin", "admin"), now=datetime.now(UTC) - timedelta(days=2)
    ).token

    response = api.client.get("/auth/me", headers={"Authorization": f"Bearer {expired}"})

    assert response.status_code == 401


def test_a_token_signed_with_another_secret_is_401(api: Api) -> None:
    forged = jwt.encode(
        {"sub": "admin", "role": "admin", "exp": datetime.now(UTC) + timedelta(hours=1)},
        "x" * 40,
        algorithm="HS256",
    )

    response = api.client.get("/auth/me", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


def test_a_role_that_may_not_write_gets_403_and_nothing_is_written(api: Api) -> None:
    head = api.crm.recorder.max_notification_id()

    response = api.client.post("/customers", json=CUSTOMER, headers=api.as_("auditor"))

    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden")
    assert api.crm.recorder.max_notification_id() == head


def test_a_short_token_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenService("short")


def test_a_username_no_user_can_have_is_refused_like_a_wrong_password(api: Api) -> None:
    response = api.client.post("/auth/token", data={"username": "a\x00b", "password": "x"})
    overlong = api.client.post("/auth/token", data={"username": "a" * 65, "password": "x"})

    assert response.status_code in (401, 422)
    assert overlong.status_code == 401


def test_an_if_match_that_is_no_version_is_422(api: Api) -> None:
    created = api.client.post("/customers", json=CUSTOMER, headers=api.admin).json()
    for tag in ('"' + "9" * 5000 + '"', '"²"', '"abc"'):
        response = api.client.post(
            f"/customers/{created['id']}/tags",
            json={"tag": "vip"},
            headers={**api.admin, "If-Match": tag.encode()},  # type: ignore[dict-item]
        )
        assert response.status_code == 422, tag


def test_a_manager_without_a_region_sees_nothing(api: Api) -> None:
    api.client.post("/customers", json=CUSTOMER, headers=api.admin)

    response = api.client.get("/customers", headers=api.as_("manager", region=None))

    assert response.status_code == 200
    assert response.json()["data"] == []
