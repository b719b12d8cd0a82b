"""The `crm` command against real services (given by URL, as in production)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from infra.bootstrap import build_crm
from infra.cli import app
from infra.settings import Settings, get_settings
from projections.catalog import READ_MODELS

runner = CliRunner()


@pytest.fixture
def env(database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CRM_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_NATS_URL", nats_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_migrate_creates_the_tables_and_can_run_again(env: None) -> None:
    first = runner.invoke(app, ["migrate"])
    again = runner.invoke(app, ["migrate"])

    assert first.exit_code == 0, first.output
    assert "crm_events" in first.output and "crm_snapshots" in first.output
    assert again.exit_code == 0, again.output


def test_services_status_reports_both_services_up(env: None) -> None:
    result = runner.invoke(app, ["services", "status"])

    assert result.exit_code == 0, result.output
    assert "postgres" in result.output and "nats" in result.output
    assert "down" not in result.output


def test_services_status_fails_when_a_service_is_down(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_NATS_URL", "nats://127.0.0.1:1")
    get_settings.cache_clear()

    result = runner.invoke(app, ["services", "status"])

    assert result.exit_code == 1
    assert "down" in result.output


def test_history_prints_a_records_events_as_json_lines(env: None, database_url: str) -> None:
    runner.invoke(app, ["migrate"])
    crm = build_crm(Settings(), database_url)
    customer = crm.register_customer(kind="person", name="Li Lei", region="east", owner="u:1").id
    crm.tag_customer(customer, "vip")
    crm.close()

    result = runner.invoke(app, ["history", str(customer)])

    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.output.splitlines()]
    assert [line["type"] for line in lines] == [
        "crm.customer.registered.v1",
        "crm.customer.tagged.v1",
    ]
    assert lines[0]["name"] == "Li Lei"


def test_projections_status_lists_every_read_model(env: None) -> None:
    runner.invoke(app, ["migrate"])

    result = runner.invoke(app, ["projections", "status"])

    assert result.exit_code == 0, result.output
    for spec in READ_MODELS:
        assert spec.name in result.output


def test_projections_rebuild_switches_to_a_new_version(env: None, database_url: str) -> None:
    runner.invoke(app, ["migrate"])
    crm = build_crm(Settings(), database_url)
    crm.capture_lead(channel="ads", name="Li", region="east", phone="13812345678")
    crm.close()

    result = runner.invoke(app, ["projections", "rebuild", "--all"])

    assert result.exit_code == 0, result.output
    assert "now serving version 2" in result.output


def test_projections_rebuild_refuses_an_unknown_read_model(env: None) -> None:
    result = runner.invoke(app, ["projections", "rebuild", "no_such_model"])

    assert result.exit_code == 2
    assert "no read model" in result.output


def test_api_with_two_workers_serves_logins_and_commands_from_both(
    migrated_database_url: str, nats_url: str, tmp_path: Path
) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from infra.users import UserStore

    crm = build_crm(Settings(), migrated_database_url)
    UserStore(crm.recorder.datastore).create("boss", "s3cret-pass", "admin")  # type: ignore[attr-defined]
    crm.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "CRM_DATABASE_URL": migrated_database_url,
        "CRM_NATS_URL": nats_url,
        "CRM_DATA_DIR": str(tmp_path),
        "CRM_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "api", "--port", str(port), "--workers", "2"], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/health", timeout=1.0)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the workers never answered"
                assert server.poll() is None, "crm api --workers 2 exited"
                time.sleep(0.2)
        with httpx.Client(base_url=base) as client:  # new connections land on either worker
            answers = []
            for n in range(8):
                token = httpx.post(
                    base + "/auth/token", data={"username": "boss", "password": "s3cret-pass"}
                ).json()["access_token"]
                answers.append(
                    httpx.post(
                        base + "/customers",
                        json={"kind": "company", "name": f"Acme {n}", "region": "east"},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )
            assert [a.status_code for a in answers] == [201] * 8
            assert len({a.json()["position"] for a in answers}) == 8
            assert client.get("/health").status_code in (200, 503)
        workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(workers) >= 2  # uvicorn's worker processes
    finally:
        server.terminate()
        server.wait(timeout=30)
