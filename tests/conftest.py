"""Session fixtures for real PostgreSQL and NATS: external via env, else embedded, once per run."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from infra.services import (
    EmbeddedNats,
    EmbeddedPostgres,
    check_nats,
    check_postgres,
    create_database,
    drop_database,
    with_database,
)

# One master key for the whole run, so databases cloned from the migrated template (whose
# key check it recorded) open with it; tests of a wrong key pass their own.
TEST_MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LW9mLXRoZS1jcm0tc3VpdGU="
os.environ.setdefault("CRM_MASTER_KEY", TEST_MASTER_KEY)

CI_TRUE_VALUES = {"true", "1", "yes"}
# A test gets the marker when it uses the fixture, directly or through another fixture.
MARKER_FOR_FIXTURE = {"postgres_server_url": "postgres", "nats_url": "nats"}


def running_in_ci(env: Mapping[str, str]) -> bool:
    """Whether `env` says we run in CI (CI=true, 1 or yes)."""
    return env.get("CI", "").strip().lower() in CI_TRUE_VALUES


def service_unavailable(reason: str, env: Mapping[str, str] | None = None) -> NoReturn:
    """Fail in CI, where a missing service means a broken build; skip on a developer's machine."""
    if running_in_ci(os.environ if env is None else env):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)  # before `-m` selection reads the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in MARKER_FOR_FIXTURE:
                item.add_marker(MARKER_FOR_FIXTURE[fixture])


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: CRM_TEST_DATABASE_URL, else an embedded one for this session."""
    external = os.environ.get("CRM_TEST_DATABASE_URL")
    if external:
        status = check_postgres(external)
        if not status.running:
            service_unavailable(f"CRM_TEST_DATABASE_URL does not answer: {status.detail}")
        yield external
        return
    # Tests throw their data away, so they skip the fsync that only crash safety needs.
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data", fsync=False)
    try:
        url = server.start()
    except Exception as error:
        with suppress(Exception):  # whatever half-started must not outlive the session
            server.stop()
        service_unavailable(f"embedded PostgreSQL did not start: {error}")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dropper() -> Iterator[ThreadPoolExecutor]:
    """Drops test databases in the background (a drop waits for a checkpoint); joined at exit."""
    with ThreadPoolExecutor(2, thread_name_prefix="drop-db") as pool:
        yield pool


@pytest.fixture
def database_url(postgres_server_url: str, dropper: ThreadPoolExecutor) -> Iterator[str]:
    """A brand-new empty database for this test alone, dropped afterwards."""
    name = f"crm_test_{secrets.token_hex(6)}"
    url = create_database(postgres_server_url, name)
    try:
        yield url
    finally:
        dropper.submit(drop_database, postgres_server_url, name)


@pytest.fixture(scope="session")
def migrated_template(postgres_server_url: str) -> Iterator[str]:
    """A database holding the migrated schema, to copy for tests that need one."""
    from infra.persistence import migrate
    from infra.settings import Settings

    name = f"crm_template_{secrets.token_hex(6)}"
    migrate(Settings(customer_snapshot_interval=0), create_database(postgres_server_url, name))
    try:
        yield name
    finally:
        drop_database(postgres_server_url, name)


def copy_of(server_url: str, template: str) -> tuple[str, str]:
    """A new database copied from `template` (fast: a file copy); its URL and name."""
    name = f"crm_test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return with_database(server_url, name), name


@pytest.fixture
def migrated_database_url(
    postgres_server_url: str, migrated_template: str, dropper: ThreadPoolExecutor
) -> Iterator[str]:
    """A new database with the schema already migrated (a copy of the template), dropped after."""
    url, name = copy_of(postgres_server_url, migrated_template)
    try:
        yield url
    finally:
        dropper.submit(drop_database, postgres_server_url, name)


@pytest.fixture(scope="module")
def module_database_url(
    postgres_server_url: str, migrated_template: str, dropper: ThreadPoolExecutor
) -> Iterator[str]:
    """Like `migrated_database_url`, shared by the tests of one module."""
    url, name = copy_of(postgres_server_url, migrated_template)
    try:
        yield url
    finally:
        dropper.submit(drop_database, postgres_server_url, name)


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream NATS server: CRM_TEST_NATS_URL, else an embedded one for this session."""
    external = os.environ.get("CRM_TEST_NATS_URL")
    if external:
        status = check_nats(external)
        if not status.running:
            service_unavailable(f"CRM_TEST_NATS_URL does not answer: {status.detail}")
        yield external
        return
    server = EmbeddedNats(tmp_path_factory.mktemp("nats") / "store")
    try:
        url = server.start()
    except Exception as error:
        with suppress(Exception):  # whatever half-started must not outlive the session
            server.stop()
        service_unavailable(f"embedded nats-server did not start: {error}")
    try:
        yield url
    finally:
        server.stop()
