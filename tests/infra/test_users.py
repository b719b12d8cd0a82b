"""Users in PostgreSQL: argon2 hashes, roles, the demo admin, and `crm users`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from infra.bootstrap import build_crm
from infra.cli import app
from infra.persistence import migrate
from infra.settings import Settings, get_settings
from infra.users import UserExists, UserStore, ensure_demo_admin

runner = CliRunner()


@pytest.fixture
def store(database_url: str) -> Iterator[UserStore]:
    settings = Settings()
    migrate(settings, database_url)
    crm = build_crm(settings, database_url)
    yield UserStore(crm.recorder.datastore)  # type: ignore[attr-defined]
    crm.close()


def test_a_created_user_logs_in_with_their_password_only(store: UserStore) -> None:
    store.create("mei", "s3cret-pass", "sales", region="east", team="north")

    user = store.authenticate("mei", "s3cret-pass")

    assert user is not None
    assert (user.username, user.role, user.region, user.team) == ("mei", "sales", "east", "north")
    assert store.authenticate("mei", "wrong-pass") is None
    assert store.authenticate("nobody", "s3cret-pass") is None


def test_passwords_are_stored_as_argon2_hashes(store: UserStore, database_url: str) -> None:
    store.create("mei", "s3cret-pass", "sales", region="east")

    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM crm_users").fetchone()

    assert stored is not None
    assert stored[0].startswith("$argon2id$")
    assert "s3cret-pass" not in stored[0]


def test_a_second_user_of_the_same_name_is_refused_unless_replacing(store: UserStore) -> None:
    store.create("mei", "s3cret-pass", "sales", region="east")

    with pytest.raises(UserExists):
        store.create("mei", "other-pass", "admin")
    store.create("mei", "other-pass", "marketing", replace=True)

    user = store.authenticate("mei", "other-pass")
    assert user is not None and user.role == "marketing"


@pytest.mark.parametrize(
    ("role", "region", "password", "message"),
    [
        ("wizard", None, "long-enough", "unknown role"),
        ("manager", None, "long-enough", "needs a region"),
        ("sales", "east", "short", "at least 8"),
    ],
)
def test_invalid_users_are_refused(
    store: UserStore, role: str, region: str | None, password: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.create("x", password, role, region=region)  # type: ignore[arg-type]


def test_a_deactivated_user_cannot_log_in(store: UserStore) -> None:
    store.create("mei", "s3cret-pass", "sales", region="east")

    assert store.deactivate("mei") is True
    assert store.authenticate("mei", "s3cret-pass") is None
    assert store.deactivate("nobody") is False


def test_the_demo_admin_password_is_generated_once_and_kept(
    store: UserStore, tmp_path: Path
) -> None:
    first = ensure_demo_admin(store, tmp_path, "admin", None)
    again = ensure_demo_admin(store, tmp_path, "admin", None)

    assert first == again
    user = store.authenticate("admin", first)
    assert user is not None and user.role == "admin"


def test_a_configured_demo_admin_password_wins(store: UserStore, tmp_path: Path) -> None:
    password = ensure_demo_admin(store, tmp_path, "boss", "configured-pass")

    assert password == "configured-pass"
    assert store.authenticate("boss", "configured-pass") is not None


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CRM_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_NATS_URL", "nats://127.0.0.1:1")
    get_settings.cache_clear()
    migrate(Settings(), database_url)
    yield
    get_settings.cache_clear()


def test_crm_users_create_then_list_shows_the_user(env: None) -> None:
    created = runner.invoke(
        app,
        ["users", "create", "--username", "wang", "--role", "manager", "--region", "south"],
        env={"CRM_NEW_USER_PASSWORD": "manager-pass"},
    )
    listed = runner.invoke(app, ["users", "list"])

    assert created.exit_code == 0, created.output
    assert "wang" in listed.output and "manager" in listed.output and "south" in listed.output


def test_crm_users_create_prompts_for_the_password(env: None, database_url: str) -> None:
    result = runner.invoke(
        app,
        ["users", "create", "--username", "li", "--role", "service", "--team", "t1"],
        input="typed-pass-1\ntyped-pass-1\n",
    )

    assert result.exit_code == 0, result.output
    crm = build_crm(Settings(), database_url)
    try:
        user = UserStore(crm.recorder.datastore).authenticate("li", "typed-pass-1")  # type: ignore[attr-defined]
    finally:
        crm.close()
    assert user is not None and user.team == "t1"


def test_crm_users_create_refuses_an_unknown_role_and_a_duplicate(env: None) -> None:
    env_vars = {"CRM_NEW_USER_PASSWORD": "manager-pass"}
    bad_role = runner.invoke(
        app, ["users", "create", "--username", "x", "--role", "king"], env=env_vars
    )
    runner.invoke(app, ["users", "create", "--username", "y", "--role", "sales"], env=env_vars)
    duplicate = runner.invoke(
        app, ["users", "create", "--username", "y", "--role", "sales"], env=env_vars
    )
    deactivated = runner.invoke(app, ["users", "deactivate", "y"])

    assert bad_role.exit_code != 0 and "unknown role" in bad_role.output
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output
    assert deactivated.exit_code == 0
