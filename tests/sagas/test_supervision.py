"""A saga's state for operators: running, or stopped at the event it keeps failing on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from domain.application import CRM
from infra import cli
from infra.sagas import SagaRunner, SagaSupervisor, saga_status
from infra.settings import get_settings
from sagas.lead_routing import LeadRoutingSaga
from tests.sagas.flows import crashing


def captured(crm: CRM, name: str) -> tuple[object, int]:
    """A captured lead's id and the position of its capture."""
    result = crm.capture_lead(channel="web_form", name=name, region="east", phone="13812345678")
    assert result.position is not None
    return result.id, result.position


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_saga_failing_at_one_event_is_recorded_stopped_there_until_it_runs_again(
    crm: CRM,
    saga: LeadRoutingSaga,
    database_url: str,
    nats_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, fine = captured(crm, "Li")
    doomed, at = captured(crm, "Wu")
    [never_run] = saga_status(crm, [saga])
    assert never_run.state == "not running"

    with SagaSupervisor(crm, database_url, [crashing(saga, lambda e: e.originator_id == doomed)]):
        eventually(lambda: saga_status(crm, [saga])[0].state != "not running")
        eventually(lambda: saga_status(crm, [saga])[0].state == "stopped with error")
    [stopped] = saga_status(crm, [saga])

    assert (stopped.position, stopped.failed_position, stopped.pending) == (fine, at, 1)
    assert stopped.error is not None and "process killed" in stopped.error
    assert not stopped.healthy
    monkeypatch.setenv("CRM_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_NATS_URL", nats_url)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "console", Console(width=300))  # one line per saga
    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(cli.app, ["sagas", "status"])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    [row] = [line for line in shown.output.splitlines() if "lead_routing" in line]
    assert "stopped with error" in row and str(at) in row and "process killed" in row

    with SagaSupervisor(crm, database_url, [saga]):  # fixed and restarted
        eventually(lambda: saga_status(crm, [saga])[0].pending == 0)
        eventually(lambda: saga_status(crm, [saga])[0].state == "running")
        [running] = saga_status(crm, [saga])
    assert (running.failed_position, running.error, running.healthy) == (None, None, True)


def test_a_saga_reads_the_log_only_when_an_event_it_reacts_to_is_committed(
    crm: CRM, saga: LeadRoutingSaga, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    catch_up = SagaRunner.catch_up

    def counted(self: SagaRunner, on_event: Callable[[int], None] | None = None) -> int:
        calls.append(time.monotonic())
        return catch_up(self, on_event)

    monkeypatch.setattr(SagaRunner, "catch_up", counted)
    with SagaSupervisor(crm, database_url, [saga]):
        eventually(lambda: saga_status(crm, [saga])[0].state == "running")
        before, started = len(calls), time.monotonic()
        for n in range(30):  # commits of events the saga does not react to
            crm.register_customer(kind="person", name=f"C{n}", region="east", owner="user:a")
        time.sleep(0.3)
        seconds = time.monotonic() - started

        assert len(calls) - before <= seconds + 2  # its once-a-second look, not one per commit
        _, at = captured(crm, "Li")
        eventually(lambda: saga_status(crm, [saga])[0].position >= at)
