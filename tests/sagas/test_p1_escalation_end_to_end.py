"""The issue's "done when" for SLA escalation, end to end: a P1 ticket opened over HTTP, the sagas
and read models running in their supervisors, the clock passing the due time, and the breach and
escalation visible in the ticket, the customer's timeline and the audit trail."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.main import create_api
from api.security import Principal
from domain.application import CRM
from domain.shared import FixedClock
from infra.bootstrap import api_services
from infra.projections import ProjectionSupervisor
from infra.sagas import SagaSupervisor, saga_status
from infra.settings import Settings
from tests.sagas.flows import customer

SLA_SAGA = "saga:sla_escalation"


def kind(row: dict[str, Any]) -> str:
    """An event's stable type name without its version (`crm.ticket.opened`)."""
    return str(row["type"]).rsplit(".v", 1)[0]


def eventually(read: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not check(value := read()):
        assert time.monotonic() < deadline, value
        time.sleep(0.05)
    return value


def test_letting_a_p1_tickets_due_time_pass_escalates_it_visibly_in_360_and_audit(
    crm: CRM, clock: FixedClock, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(token_secret=secrets.token_urlsafe(32), data_dir=tmp_path)
    services = api_services(settings, crm)
    token = services.tokens.issue(Principal("mei", "admin")).token
    headers = {"Authorization": f"Bearer {token}"}
    acme = customer(crm, owner="alice")
    try:
        with (
            ProjectionSupervisor(crm, database_url),
            SagaSupervisor(crm, database_url),
            TestClient(create_api(services)) as client,
        ):
            opened = client.post(
                "/tickets",
                json={
                    "customer_id": str(acme),
                    "channel": "phone",
                    "subject": "Down",
                    "priority": "P1",
                },
                headers=headers,
            )
            assert opened.status_code == 201, opened.text
            ticket = opened.json()["id"]
            eventually(
                lambda: saga_status(crm), lambda sagas: all(s.pending == 0 for s in sagas)
            )  # the SLA saga has planned the ticket's timers

            clock.advance(hours=1, minutes=1)  # 10:01 Shanghai: the first response is late

            state = eventually(
                lambda: client.get(f"/tickets/{ticket}", headers=headers).json(),
                lambda body: body.get("escalation_level") == 1,
            )
            timeline = eventually(
                lambda: client.get(f"/customers/{acme}/timeline", headers=headers).json()["data"],
                lambda rows: any(kind(r) == "crm.ticket.escalated" for r in rows),
            )
            audit = client.get(f"/audit/ticket/{ticket}/events", headers=headers).json()["data"]
    finally:
        services.access_log.close()

    assert state["sla"]["state"] == "breached"
    by_saga = {kind(r) for r in timeline if r["actor"] == SLA_SAGA}
    assert by_saga >= {"crm.ticket.sla_breached", "crm.ticket.escalated"}
    cause = audit[0]
    assert (kind(cause), cause["actor"]) == ("crm.ticket.opened", "user:mei")
    effects = [e for e in audit if e["actor"] == SLA_SAGA]
    assert [kind(e) for e in effects] == [
        "crm.ticket.sla_at_risk",
        "crm.ticket.sla_breached",
        "crm.ticket.escalated",
    ]
    assert {e["causation_id"] for e in effects} == {cause["id"]}
