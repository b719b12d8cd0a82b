"""The event log as auditors, integrators and operators read it: entries, filters, read-model lag.

Positions are the application recorder's notification ids. The event store commits in position
order (it takes a table lock), so every position at or below the head read here is committed
and a reader that has passed a position never sees a new event appear before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Composed, Identifier
from pydantic_core import to_jsonable_python

from domain.shared import EVENT_TYPES, DomainEvent
from projections.catalog import READ_MODELS, ReadModelSpec
from projections.readmodel import APPLICATION_NAME, REGISTRY_TABLE

METADATA = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "correlation_id", "causation_id"}
)


@dataclass(frozen=True)
class LogEntry:
    """One committed event and its position in the log."""

    position: int
    event: DomainEvent

    def envelope(self) -> dict[str, Any]:
        """The event as integrators and auditors see it: metadata beside the payload."""
        event = self.event
        return {
            "position": self.position,
            "id": str(event.event_id),
            "type": type(event).type_name(),
            "record_id": str(event.originator_id),
            "version": event.originator_version,
            "time": to_jsonable_python(event.timestamp),  # as the JSON pages write it
            "actor": event.actor,
            "correlation_id": str(event.correlation_id),
            "causation_id": None if event.causation_id is None else str(event.causation_id),
            "payload": event.model_dump(mode="json", exclude=set(METADATA)),
        }


@dataclass(frozen=True)
class LogFilter:
    """Which events a reader wants: a type-name prefix, an actor, a time range [since, until)."""

    type_prefix: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def topics(self) -> list[str] | None:
        """The stored type names to select (None: all of them).

        A prefix is matched against the current name of each event type (e.g.
        `crm.lead.qualified.v2`), and selects every stored version of the matching types,
        since old versions are read upcast to the current one.
        """
        if not self.type_prefix:
            return None
        return sorted(
            f"{cls.TYPE}.v{version}"
            for cls in EVENT_TYPES.values()
            if cls.type_name().startswith(self.type_prefix)
            for version in range(1, cls.class_version + 1)
        )

    def admits(self, event: DomainEvent) -> bool:
        """Whether the event meets the filters the log cannot apply in SQL."""
        if self.actor is not None and event.actor != self.actor:
            return False
        if self.since is not None and event.timestamp < self.since:
            return False
        return self.until is None or event.timestamp < self.until


def head(recorder: ApplicationRecorder) -> int:
    """The position of the newest committed event (0 for an empty log)."""
    return recorder.max_notification_id() or 0


def read_log(
    recorder: ApplicationRecorder,
    mapper: Mapper[Any],
    *,
    after: int,
    stop: int,
    limit: int,
    where: LogFilter | None = None,
    batch_size: int = 500,
    scan_limit: int = 20_000,
) -> tuple[list[LogEntry], int]:
    """Up to `limit` matching events after position `after` up to `stop`, and the position
    read up to (resume after it; it equals `stop` when the range is exhausted).

    Actor and time filters are applied to decoded events, so a sparse match stops after
    `scan_limit` events with a short (possibly empty) page rather than reading the whole log.
    """
    where = where or LogFilter()
    topics = where.topics()
    if topics == []:  # a prefix no event type has: nothing to read
        return [], stop
    entries: list[LogEntry] = []
    position, scanned = after, 0
    while position < stop and len(entries) < limit and scanned < scan_limit:
        notifications = recorder.select_notifications(
            start=position,
            limit=batch_size,
            stop=stop,
            topics=topics or (),
            inclusive_of_start=False,
        )
        for notification in notifications:
            position = notification.id
            event = _decode(mapper, notification)
            if where.admits(event):
                entries.append(LogEntry(notification.id, event))
                if len(entries) == limit:
                    return entries, position
        scanned += len(notifications)
        if len(notifications) < batch_size:
            position = stop  # the rest of the range holds no event of these types
    return entries, position


def record_log(
    recorder: ApplicationRecorder, mapper: Mapper[Any], record_id: UUID
) -> list[LogEntry]:
    """Every event of one record with its log position, oldest first."""
    postgres = _postgres(recorder)
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
        "WHERE originator_id = %s ORDER BY originator_version"
    ).format(_events_table(postgres))
    with postgres.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute(statement, (record_id,))
        rows = curs.fetchall()
    return [
        LogEntry(
            row["notification_id"],
            _decode(
                mapper,
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                ),
            ),
        )
        for row in rows
    ]


# --- read-model lag ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadModelLag:
    """How far one read model trails the log: its position, the events it has still to apply,
    and the age of the oldest of them (0 when caught up)."""

    name: str
    position: int
    lag_events: int
    lag_seconds: float


def read_model_lags(
    recorder: ApplicationRecorder,
    mapper: Mapper[Any],
    specs: Sequence[ReadModelSpec] = READ_MODELS,
    *,
    log_head: int | None = None,
) -> list[ReadModelLag]:
    """The lag of every installed read model, from the readers' tracking views (SQL only)."""
    postgres = _postgres(recorder)
    log_head = head(recorder) if log_head is None else log_head
    now = datetime.now(UTC)
    lags = []
    with postgres.datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute("SELECT to_regclass(%s) AS registry", (REGISTRY_TABLE,))
        found = curs.fetchone()
        if found is None or found["registry"] is None:
            return []
        curs.execute(SQL("SELECT name FROM {}").format(Identifier(REGISTRY_TABLE)))
        installed = {row["name"] for row in curs.fetchall()}
        for spec in specs:
            if spec.name not in installed:
                continue
            curs.execute(
                SQL(
                    "SELECT max(notification_id) AS position FROM {} WHERE application_name = %s"
                ).format(spec.view.reader("tracking")),
                (APPLICATION_NAME,),
            )
            row = curs.fetchone()
            position = int(row["position"] or 0) if row else 0
            topics = list(spec.projection.topics)
            curs.execute(
                SQL(
                    "SELECT count(*) AS n, min(notification_id) AS oldest FROM {} "
                    "WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s)"
                ).format(_events_table(postgres)),
                (position, log_head, topics),
            )
            pending = curs.fetchone()
            lag_events = int(pending["n"]) if pending else 0
            lag_seconds = 0.0
            if pending and pending["oldest"] is not None:
                oldest = recorder.select_notifications(start=pending["oldest"], limit=1)
                if oldest:
                    age = now - _decode(mapper, oldest[0]).timestamp
                    lag_seconds = max(age.total_seconds(), 0.0)
            lags.append(ReadModelLag(spec.name, position, lag_events, lag_seconds))
    return lags


def _decode(mapper: Mapper[Any], notification: Notification) -> DomainEvent:
    event = mapper.to_domain_event(notification)
    if not isinstance(event, DomainEvent):
        raise TypeError(f"position {notification.id} does not hold a domain event: {event!r}")
    return event


def _postgres(recorder: ApplicationRecorder) -> PostgresApplicationRecorder:
    return cast(PostgresApplicationRecorder, recorder)


def _events_table(recorder: PostgresApplicationRecorder) -> Composed:
    return SQL("{}.{}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
