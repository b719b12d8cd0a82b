"""Embedded PostgreSQL and NATS, health checks and ManagedServices, against real servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import psycopg
import pytest
from nats.js.api import PubAck

from infra.services import (
    EmbeddedNats,
    EmbeddedPostgres,
    ManagedServices,
    check_nats,
    check_postgres,
)
from infra.services.processes import free_port, process_alive, wait_for_exit
from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def postgres_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("embedded") / "pg"
    yield data_dir
    EmbeddedPostgres(data_dir).stop()


@pytest.fixture
def postgres(postgres_dir: Path) -> EmbeddedPostgres:
    """The module's embedded PostgreSQL, running: reused, or restarted after a test stopped it."""
    server = EmbeddedPostgres(postgres_dir, fsync=False)
    server.start()
    return server


@pytest.fixture(scope="module")
def nats_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    store_dir = tmp_path_factory.mktemp("embedded") / "nats"
    yield store_dir
    EmbeddedNats(store_dir).stop()


@pytest.fixture
def nats_server(nats_dir: Path) -> EmbeddedNats:
    """The module's embedded NATS, running: reused, or restarted after a test stopped it."""
    server = EmbeddedNats(nats_dir)
    server.start()
    return server


def query(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement).fetchall()


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def publish_to_new_stream(url: str, stream: str) -> PubAck:
    async def publish() -> PubAck:
        client = await nats.connect(url)
        try:
            jetstream = client.jetstream()
            await jetstream.add_stream(name=stream, subjects=[f"{stream}.>"])
            return await jetstream.publish(f"{stream}.created", b"{}")
        finally:
            await client.close()

    return asyncio.run(publish())


# Embedded PostgreSQL


@pytest.mark.postgres
def test_embedded_postgres_answers_select_1(postgres: EmbeddedPostgres) -> None:
    url = postgres.start()

    assert url.startswith("postgresql://postgres@127.0.0.1:")
    assert query(url, "SELECT 1") == [(1,)]


@pytest.mark.postgres
def test_embedded_postgres_is_configured_for_tests_and_dev(postgres: EmbeddedPostgres) -> None:
    url = postgres.start()

    assert int(str(query(url, "SHOW max_connections")[0][0])) >= 200
    assert query(url, "SHOW listen_addresses") == [("127.0.0.1",)]
    assert query(url, "SHOW fsync") == [("off",)]
    assert postgres.log_file.parent == postgres.data_dir
    assert "database system is ready" in postgres.log_file.read_text()


@pytest.mark.postgres
def test_embedded_postgres_keeps_fsync_on_unless_told_otherwise(postgres: EmbeddedPostgres) -> None:
    postgres.stop()
    durable = EmbeddedPostgres(postgres.data_dir)
    try:
        assert query(durable.start(), "SHOW fsync") == [("on",)]  # benchmarks need honest figures
    finally:
        durable.stop()


@pytest.mark.postgres
def test_starting_again_on_the_same_data_dir_reuses_the_running_server(
    postgres: EmbeddedPostgres,
) -> None:
    url, pid = postgres.start(), postgres.status().pid
    again = EmbeddedPostgres(postgres.data_dir)

    assert again.start() == url
    assert again.launched is False
    assert again.status().pid == pid


@pytest.mark.postgres
def test_a_stopped_postgres_reports_not_running_and_stopping_again_is_harmless(
    postgres: EmbeddedPostgres,
) -> None:
    url = postgres.start()

    postgres.stop()
    postgres.stop()

    status = postgres.status()
    assert status.running is False
    assert status.pid is None
    assert check_postgres(url, timeout=1).running is False


@pytest.mark.postgres
def test_data_survives_a_restart_on_the_same_port(postgres: EmbeddedPostgres) -> None:
    url = postgres.start()
    execute(url, "CREATE TABLE IF NOT EXISTS kept (id int)")

    postgres.stop()
    restarted = EmbeddedPostgres(postgres.data_dir, fsync=False)

    assert restarted.start() == postgres.start()
    assert restarted.launched is True
    assert query(url, "SELECT to_regclass('kept') IS NOT NULL") == [(True,)]


@pytest.mark.postgres
def test_ensure_database_creates_it_once_and_returns_its_url(postgres: EmbeddedPostgres) -> None:
    first = postgres.ensure_database("twice")
    second = postgres.ensure_database("twice")

    assert first == second
    assert first.endswith("/twice")
    assert query(first, "SELECT current_database()") == [("twice",)]


# Embedded NATS


@pytest.mark.nats
def test_embedded_nats_acknowledges_a_message_published_to_a_stream(
    nats_server: EmbeddedNats,
) -> None:
    ack = publish_to_new_stream(nats_server.start(), "ORDERS")

    assert ack.stream == "ORDERS"
    assert ack.seq == 1


@pytest.mark.nats
def test_starting_again_on_the_same_store_reuses_the_running_nats_server(
    nats_server: EmbeddedNats,
) -> None:
    url, pid = nats_server.start(), nats_server.status().pid
    again = EmbeddedNats(nats_server.store_dir)

    assert again.start() == url
    assert again.launched is False
    assert again.status().pid == pid


@pytest.mark.nats
def test_a_stopped_nats_server_reports_not_running_and_stopping_again_is_harmless(
    nats_server: EmbeddedNats,
) -> None:
    url, pid = nats_server.start(), nats_server.status().pid
    assert pid is not None

    nats_server.stop()
    nats_server.stop()

    assert nats_server.status().running is False
    assert not process_alive(pid)
    assert check_nats(url, timeout=1).running is False


@pytest.mark.nats
def test_a_crashed_nats_server_is_started_afresh_on_the_same_port(
    nats_server: EmbeddedNats,
) -> None:
    url, pid = nats_server.start(), nats_server.status().pid
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    assert wait_for_exit(pid, timeout=5)

    assert nats_server.start() == url
    assert nats_server.launched is True
    assert check_nats(url).running is True


@pytest.mark.nats
def test_embedded_nats_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    store_dir = tmp_path / "detached"
    starter = (
        "from pathlib import Path; from infra.services import EmbeddedNats; "
        f"print(EmbeddedNats(Path({str(store_dir)!r})).start())"
    )
    server = EmbeddedNats(store_dir)
    try:
        done = subprocess.run(
            [sys.executable, "-c", starter], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        url = done.stdout.strip()

        assert check_nats(url).running is True
        assert server.start() == url
        assert server.launched is False
    finally:
        server.stop()
    assert server.status().running is False


# Health checks


@pytest.mark.postgres
@pytest.mark.nats
def test_health_checks_report_running_servers_as_ok(
    postgres: EmbeddedPostgres, nats_server: EmbeddedNats
) -> None:
    postgres_status = check_postgres(postgres.start())
    nats_status = check_nats(nats_server.start())

    assert postgres_status.running is True
    assert postgres_status.detail.startswith("PostgreSQL ")
    assert nats_status.running is True
    assert "JetStream" in nats_status.detail


def test_health_checks_report_a_dead_url_without_raising() -> None:
    port = free_port()  # nobody listens there

    postgres_status = check_postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", 1)
    nats_status = check_nats(f"nats://127.0.0.1:{port}", 1)

    assert postgres_status.running is False
    assert "refused" in postgres_status.detail
    assert nats_status.running is False
    assert nats_status.detail


def test_health_checks_hide_passwords() -> None:
    port = free_port()

    status = check_postgres(f"postgresql://crm:s3cret@127.0.0.1:{port}/crm", 1)

    assert status.url == f"postgresql://crm:***@127.0.0.1:{port}/crm"
    assert "s3cret" not in str(status)


# ManagedServices


@pytest.mark.nats
def test_managed_services_start_only_what_has_no_url(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    external = postgres.start()
    services = ManagedServices(tmp_path, database_url=external)

    urls = services.start()
    try:
        assert urls.database_url == external
        assert services.started == {"nats"}
        assert not (tmp_path / "pg").exists()
        assert check_nats(urls.nats_url).running is True
    finally:
        services.stop_started()

    assert services.nats.status().running is False
    assert check_postgres(external).running is True


def test_managed_services_start_nothing_when_both_urls_are_given(tmp_path: Path) -> None:
    services = ManagedServices(tmp_path, database_url="postgresql://db/crm", nats_url="nats://mq")

    with services as urls:
        assert urls.database_url == "postgresql://db/crm"
        assert urls.nats_url == "nats://mq"
        assert services.started == frozenset()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.nats
def test_managed_services_leave_running_the_servers_they_only_reused(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    external = postgres.start()
    first = ManagedServices(tmp_path, database_url=external)
    second = ManagedServices(tmp_path, database_url=external)
    try:
        url = first.start().nats_url

        assert second.start().nats_url == url
        assert second.started == frozenset()
        second.stop_started()
        assert check_nats(url).running is True
    finally:
        first.stop_started()
    assert check_nats(url, timeout=1).running is False


@pytest.mark.nats
def test_stopping_the_embedded_services_stops_them_whoever_started_them(
    tmp_path: Path, postgres: EmbeddedPostgres
) -> None:
    starter = ManagedServices(tmp_path, database_url=postgres.start())
    url = starter.start().nats_url

    ManagedServices(tmp_path).stop_embedded()

    assert check_nats(url, timeout=1).running is False


@pytest.mark.postgres
def test_managed_services_give_the_app_its_own_database_on_embedded_postgres(
    postgres: EmbeddedPostgres, nats_server: EmbeddedNats
) -> None:
    postgres.stop()  # the module's cluster sits at <base>/pg, as ManagedServices expects: no initdb
    services = ManagedServices(postgres.data_dir.parent, nats_url=nats_server.start(), fsync=False)

    with services as urls:
        assert urls.database_url.endswith("/crm")
        assert query(urls.database_url, "SELECT current_database()") == [("crm",)]
        assert services.started == {"postgres"}
        assert [status.running for status in services.status()] == [True, True]
    assert postgres.status().running is False


# Fixtures from tests/conftest.py


def test_each_test_gets_an_empty_database_of_its_own(
    database_url: str, postgres_server_url: str, request: pytest.FixtureRequest
) -> None:
    tables = query(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")

    assert tables == []
    assert database_url.rsplit("/", 1)[1].startswith("crm_test_")
    assert database_url != postgres_server_url
    assert request.node.get_closest_marker("postgres") is not None


@pytest.mark.parametrize("attempt", [1, 2])
def test_tests_never_see_each_others_tables(database_url: str, attempt: int) -> None:
    execute(database_url, "CREATE TABLE only_mine (id int)")  # fails if a database were shared


def test_the_nats_fixture_gives_a_jetstream_server(
    nats_url: str, request: pytest.FixtureRequest
) -> None:
    assert check_nats(nats_url).running is True
    assert request.node.get_closest_marker("nats") is not None


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_a_missing_service_fails_the_test_in_ci(ci: str) -> None:
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL"):
        service_unavailable("no PostgreSQL", {"CI": ci})


@pytest.mark.parametrize("env", [{}, {"CI": "false"}, {"CI": "0"}, {"CI": ""}])
def test_a_missing_service_skips_the_test_outside_ci(env: dict[str, str]) -> None:
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL"):
        service_unavailable("no PostgreSQL", env)
