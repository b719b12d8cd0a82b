"""Where the relay stands against the log: for `crm relay status` and GET /health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier

from domain.application import CRM
from infra.relay.envelope import INTERNAL_KINDS
from infra.relay.tracking import TRACKING_TABLE

HEARTBEAT_STALE_SECONDS = 10.0
# Stored topics of events that are never published (`crm.claim.claimed.v1`, ...).
INTERNAL_TOPICS = [f"crm.{kind}.%" for kind in sorted(INTERNAL_KINDS)]


@dataclass(frozen=True)
class RelayStatus:
    """The relay's tracking position, the log's head, the lag between them and the state."""

    stream: str
    position: int
    head: int
    lag_events: int
    lag_ms: float | None
    published: int
    state: str
    error: str | None
    worker: str | None

    @property
    def healthy(self) -> bool:
        return self.state in {"running", "catching up"}

    def summary(self) -> str:
        lag = f"lag {self.lag_events} events"
        if self.lag_ms is not None:
            lag += f" ({self.lag_ms / 1000:.1f} s)"
        text = f"{self.state}; position {self.position} of {self.head}, {lag}"
        return f"{text}; last error: {self.error}" if self.error else text


def relay_status(crm: CRM, stream: str = "CRM") -> RelayStatus:
    """Read the relay's row and measure its lag (works from any process)."""
    recorder: Any = crm.recorder
    datastore = recorder.datastore
    table = Identifier(datastore.schema, recorder.events_table_name)
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute("SELECT to_regclass(%s) AS found", (TRACKING_TABLE,))
        installed = (curs.fetchone() or {}).get("found") is not None
        row: dict[str, Any] | None = None
        if installed:
            curs.execute(
                SQL(
                    "SELECT *, extract(epoch FROM now() - heartbeat_at) AS heartbeat_age "
                    "FROM {} WHERE name = %s"
                ).format(Identifier(TRACKING_TABLE)),
                (stream,),
            )
            row = curs.fetchone()
        position = int(row["position"]) if row else 0
        curs.execute(SQL("SELECT coalesce(max(notification_id), 0) AS head FROM {}").format(table))
        head = int((curs.fetchone() or {"head": 0})["head"])
        pending = SQL(
            "FROM {} WHERE notification_id > %s AND notification_id <= %s "
            "AND NOT topic LIKE ANY(%s)"
        ).format(table)
        curs.execute(SQL("SELECT count(*) AS n ") + pending, (position, head, INTERNAL_TOPICS))
        lag_events = int((curs.fetchone() or {"n": 0})["n"])
        curs.execute(
            SQL("SELECT originator_id, originator_version, topic, state ")
            + pending
            + SQL(" ORDER BY notification_id LIMIT 1"),
            (position, head, INTERNAL_TOPICS),
        )
        oldest = curs.fetchone()
    return RelayStatus(
        stream=stream,
        position=position,
        head=head,
        lag_events=lag_events,
        lag_ms=None if oldest is None else _age_ms(crm, oldest),
        published=int(row["published"]) if row else 0,
        state=_state(installed, row, lag_events),
        error=row["error"] if row else None,
        worker=row["worker"] if row else None,
    )


def _age_ms(crm: CRM, stored: dict[str, Any]) -> float:
    event: Any = crm.mapper.to_domain_event(
        StoredEvent(
            stored["originator_id"],
            stored["originator_version"],
            stored["topic"],
            bytes(stored["state"]),
        )
    )
    age: float = (datetime.now(UTC) - event.timestamp).total_seconds() * 1000
    return age


def _state(installed: bool, row: dict[str, Any] | None, lag_events: int) -> str:
    if not installed:
        return "not installed"
    age = None if row is None else row["heartbeat_age"]  # by the database's clock
    if row is None or age is None or float(age) > HEARTBEAT_STALE_SECONDS:
        return "not running"
    if row["state"] == "error":
        return "retrying after error"
    return "catching up" if lag_events else "running"
