"""Runs the sagas exactly once: each reaction's events and the saga's position in one transaction.

A saga reads the CRM's log after its tracked position, decides through its policy, and its new
events go into the CRM's own events table together with its row in `crm_saga_tracking`, in one
transaction (the library's `PostgresProcessRecorder`, pointed at the CRM's tables). A crash before
the commit leaves neither; a second instance that processed the same event fails on the tracking
row and rolls back. One worker per saga leads (advisory lock), the others stand by.
Durable timers are rows in `crm_saga_timers`, planned in the reaction's transaction and fired
(once, row locked) in a transaction that also saves the firing's events. Each saga's state
(running, restarting after an error, stopped at a failing event) is a row in `crm_sagas`, with a
heartbeat, for `crm sagas status` and GET /health.
See docs/adr/0011-sagas-exactly-once.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent, Tracking
from eventsourcing.postgres import (
    PostgresDatastore,
    PostgresTrackingRecorder,
)
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.application import CRM
from domain.shared import DomainEvent, FixedClock, command_context
from infra.recorder import KeyedProcessRecorder
from infra.workers import LogFeed, WorkerGroup, lead_when_elected
from sagas.base import Saga, Timer, TimerPlan
from sagas.deal_won_onboarding import DealWonOnboardingSaga, OnboardingRules
from sagas.key_account_alert import KeyAccountAlertSaga, KeyAccountRules
from sagas.lead_conversion import ConversionRules, LeadConversionSaga
from sagas.lead_routing import LeadRoutingSaga
from sagas.routing import RoutingRules
from sagas.sla_escalation import SlaEscalationRules, SlaEscalationSaga

logger = logging.getLogger(__name__)

TRACKING_TABLE = "crm_saga_tracking"
TIMERS_TABLE = "crm_saga_timers"
REGISTRY_TABLE = "crm_sagas"
MIN_BACKOFF = 0.5
HEARTBEAT_STALE_SECONDS = 10.0


class SagaSettings(BaseSettings):
    """Configuration of the sagas, each a JSON env var: `CRM_LEAD_ROUTING` (routing rules),
    `CRM_LEAD_CONVERSION` (auto-converting channels), `CRM_DEAL_WON_ONBOARDING` (onboarding
    team, tier thresholds per currency), `CRM_KEY_ACCOUNT_ALERT` (sales team, CSAT threshold),
    `CRM_SLA_ESCALATION` (service team, team leads per team, sales team)."""

    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    lead_routing: RoutingRules = RoutingRules()
    lead_conversion: ConversionRules = ConversionRules()
    deal_won_onboarding: OnboardingRules = OnboardingRules()
    key_account_alert: KeyAccountRules = KeyAccountRules()
    sla_escalation: SlaEscalationRules = SlaEscalationRules()


def build_sagas(crm: CRM, settings: SagaSettings | None = None) -> list[Saga]:
    """Every saga, configured from settings and the application's calendar."""
    settings = settings or SagaSettings()
    calendar, policy = crm.config.calendar, crm.config.sla_policy
    return [
        LeadRoutingSaga(settings.lead_routing, calendar),
        LeadConversionSaga(settings.lead_conversion, crm.config.phone_region),
        DealWonOnboardingSaga(settings.deal_won_onboarding, policy, calendar),
        KeyAccountAlertSaga(settings.key_account_alert, calendar),
        SlaEscalationSaga(settings.sla_escalation, calendar),
    ]


TIMERS_DDL = (
    """CREATE TABLE IF NOT EXISTS {timers} (
        timer_id uuid PRIMARY KEY,
        saga text NOT NULL,
        subject_id uuid NOT NULL,
        kind text NOT NULL,
        fire_at timestamptz NOT NULL,
        deadline timestamptz NOT NULL,
        cause_id uuid NOT NULL,
        correlation_id uuid NOT NULL,
        fired_at timestamptz,
        cancelled_at timestamptz)""",
    """CREATE INDEX IF NOT EXISTS {pending} ON {timers} (saga, fire_at)
        WHERE fired_at IS NULL AND cancelled_at IS NULL""",
    "CREATE INDEX IF NOT EXISTS {subjects} ON {timers} (saga, subject_id)",
    # One row per saga, written by its leading worker: `failed_position` is the event it fails on.
    """CREATE TABLE IF NOT EXISTS {registry} (
        name text PRIMARY KEY,
        state text NOT NULL,
        failed_position bigint,
        error text,
        worker text,
        heartbeat_at timestamptz)""",
)


def create_saga_schema(datastore: PostgresDatastore) -> None:
    """Create the sagas' tracking, timers and registry tables (`crm migrate`; workers never
    create tables)."""
    PostgresTrackingRecorder(datastore, tracking_table_name=TRACKING_TABLE).create_table()
    names = {
        "timers": Identifier(TIMERS_TABLE),
        "pending": Identifier(f"{TIMERS_TABLE}_pending"),
        "subjects": Identifier(f"{TIMERS_TABLE}_subjects"),
        "registry": Identifier(REGISTRY_TABLE),
    }
    with datastore.transaction(commit=True) as curs:
        for statement in TIMERS_DDL:
            curs.execute(SQL(statement).format(**names))


CANCEL_OTHER_TIMERS = SQL(
    "UPDATE {} SET cancelled_at = %(at)s WHERE saga = %(saga)s AND subject_id = %(subject)s "
    "AND fired_at IS NULL AND cancelled_at IS NULL AND NOT (timer_id = ANY(%(keep)s))"
).format(Identifier(TIMERS_TABLE))
# A planned timer that already fired stays fired; one cancelled earlier is pending again.
SCHEDULE_TIMER = SQL(
    "INSERT INTO {0} (timer_id, saga, subject_id, kind, fire_at, deadline, cause_id, "
    "correlation_id) VALUES (%(timer_id)s, %(saga)s, %(subject_id)s, %(kind)s, %(fire_at)s, "
    "%(deadline)s, %(cause_id)s, %(correlation_id)s) ON CONFLICT (timer_id) DO UPDATE SET "
    "cancelled_at = NULL WHERE {0}.fired_at IS NULL"
).format(Identifier(TIMERS_TABLE))
LOCK_DUE_TIMER = SQL(
    "SELECT * FROM {} WHERE saga = %(saga)s AND fire_at <= %(now)s AND fired_at IS NULL "
    "AND cancelled_at IS NULL AND NOT (timer_id = ANY(%(skip)s)) "
    "ORDER BY fire_at, timer_id LIMIT 1 FOR UPDATE SKIP LOCKED"
).format(Identifier(TIMERS_TABLE))
MARK_FIRED = SQL("UPDATE {} SET fired_at = %(at)s WHERE timer_id = %(timer_id)s").format(
    Identifier(TIMERS_TABLE)
)
# A timer whose firing changed nothing (its deadline moved, say, before the saga saw the move) is
# set aside as cancelled, not fired: a later plan for the same deadline re-arms it.
MARK_OBSOLETE = SQL("UPDATE {} SET cancelled_at = %(at)s WHERE timer_id = %(timer_id)s").format(
    Identifier(TIMERS_TABLE)
)
NEXT_FIRE_AT = SQL(
    "SELECT min(fire_at) AS at FROM {} WHERE saga = %s AND fired_at IS NULL "
    "AND cancelled_at IS NULL"
).format(Identifier(TIMERS_TABLE))


class SagaRecorder(KeyedProcessRecorder):
    """The CRM's events table plus the sagas' tracking table: events and position in one commit.

    It saves with the library's transaction (tracking row, table lock, NOTIFY, insert), not the
    CRM's one-statement function, so the tracking row joins the same transaction; readers keep
    their guarantee because the table lock is taken all the same. Timer plans (`timer_plans`,
    `saga`, `at` keyword arguments) are written in that transaction too.
    """

    def _insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        plans: Sequence[TimerPlan] = kwargs.get("timer_plans", ())
        for plan in plans:
            keep = [timer.timer_id for timer in plan.timers]
            curs.execute(
                CANCEL_OTHER_TIMERS,
                {
                    "at": kwargs["at"],
                    "saga": kwargs["saga"],
                    "subject": plan.subject_id,
                    "keep": keep,
                },
            )
            for timer in plan.timers:
                curs.execute(SCHEDULE_TIMER, {"saga": kwargs["saga"], **timer_row(timer)})

    def fire_one(
        self,
        saga: str,
        at: datetime,
        skip: Sequence[UUID],
        decide: Callable[[Timer], Sequence[StoredEvent]],
    ) -> Timer | None:
        """Lock the earliest due timer of `saga` (skipping locked ones), save the events
        `decide(timer)` returns and mark it fired, all in one transaction; None when none is due."""
        with self.datastore.get_connection() as conn, conn.transaction():
            row = conn.execute(
                LOCK_DUE_TIMER, {"saga": saga, "now": at, "skip": list(skip)}
            ).fetchone()
            if row is None:
                return None
            fields = {field: row[field] for field in Timer.__dataclass_fields__}
            for instant in ("fire_at", "deadline"):  # in UTC, whatever the session's time zone
                fields[instant] = fields[instant].astimezone(UTC)
            timer = Timer(**fields)
            if self.keys is not None:
                self.keys.discard_pending()  # nothing left over from a decision that failed
            try:
                stored_events = decide(timer)
                with conn.cursor() as curs:
                    if stored_events:
                        self._insert_stored_events(curs, stored_events)
                    marking = MARK_FIRED if stored_events else MARK_OBSOLETE
                    curs.execute(marking, {"at": at, "timer_id": timer.timer_id})
            except Exception as error:  # e.g. a race on the ticket: rolled back, tried again later
                raise TimerFailed(timer.timer_id, error) from error
            return timer

    def next_fire_at(self, saga: str) -> datetime | None:
        """When the saga's earliest pending timer is due (None: no timer pending)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(NEXT_FIRE_AT, (saga,)).fetchone()
        return row["at"] if row else None


class TimerFailed(Exception):
    """Firing a timer failed; its transaction was rolled back and it stays pending."""


def timer_row(timer: Timer) -> dict[str, Any]:
    return {field: getattr(timer, field) for field in Timer.__dataclass_fields__}


def topics(event_types: Sequence[type[DomainEvent]]) -> list[str]:
    """Every stored type name (all versions) of these events."""
    return sorted(f"{t.TYPE}.v{v}" for t in event_types for v in range(1, t.class_version + 1))


class SagaPositionMoved(Exception):
    """Another instance of the saga recorded this event first; ours was rolled back."""


class SagaEventFailed(Exception):
    """The saga could not handle the event at `position`."""

    def __init__(self, saga: str, position: int, error: BaseException) -> None:
        super().__init__(f"saga {saga} failed at position {position}: {error!r}")
        self.position = position


class SagaRunner:
    """Feeds one saga the CRM's events after its tracked position, one transaction per event."""

    def __init__(self, saga: Saga, crm: CRM, *, batch_size: int = 100, retries: int = 3) -> None:
        self.saga = saga
        self.crm = crm
        self.batch_size = batch_size
        self.retries = retries
        self.failed_timers = 0  # timers whose firing failed in the last fire_due_timers()
        self.topics = topics(saga.reacts_to)
        self.recorder = SagaRecorder(
            crm.recorder.datastore,  # type: ignore[attr-defined]
            events_table_name=crm.recorder.events_table_name,  # type: ignore[attr-defined]
            tracking_table_name=TRACKING_TABLE,
        )
        self.recorder.keys = getattr(crm.recorder, "keys", None)  # seals the reactions' data

    def position(self) -> int:
        """The position of the last event this saga has handled (0: none)."""
        return self.recorder.max_tracking_id(self.saga.name) or 0

    def catch_up(self, on_event: Callable[[int], None] | None = None) -> int:
        """Handle every event after the saga's position; returns how many were handled.
        `on_event(position)` is called after each (the worker's heartbeat on a long backlog)."""
        handled = 0
        while True:
            batch = self.crm.recorder.select_notifications(
                start=self.position(),
                limit=self.batch_size,
                topics=self.topics,
                inclusive_of_start=False,
            )
            if not batch:
                return handled
            for notification in batch:
                self.handle(notification)
                handled += 1
                if on_event is not None:
                    on_event(notification.id)

    def handle(self, notification: Notification) -> None:
        """React to one event and save the reaction with the position, or fail having saved none.

        A save that loses a race with another command on one of the records is decided again
        on the records' new state; one that finds the position taken raises SagaPositionMoved.
        """
        for attempt in range(self.retries + 1):
            try:
                self._react_and_save(notification)
                return
            except IntegrityError as error:
                if self.position() >= notification.id:
                    raise SagaPositionMoved(self.saga.name) from error
                if attempt == self.retries:
                    raise SagaEventFailed(self.saga.name, notification.id, error) from error
            except Exception as error:
                raise SagaEventFailed(self.saga.name, notification.id, error) from error

    def _react_and_save(self, notification: Notification) -> None:
        cause = self.crm.mapper.to_domain_event(notification)
        if not isinstance(cause, DomainEvent):
            raise TypeError(f"not a CRM event: {notification.topic}")
        with command_context(
            actor=self.saga.actor,
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            clock=FixedClock(self.crm.clock.now()),  # one instant for the whole reaction
        ):
            changed = self.saga.react(cause, self.crm.commands)
            plans = self.saga.plan_timers(cause, self.crm.commands)
        new_events = [event for aggregate in changed for event in aggregate.collect_events()]
        if self.recorder.keys is not None:  # a save starts: nothing left from a failed one
            self.recorder.keys.discard_pending()
        self.recorder.insert_events(
            [self.crm.mapper.to_stored_event(event) for event in new_events],
            tracking=Tracking(self.saga.name, notification.id),
            timer_plans=plans,
            saga=self.saga.name,
            at=self.crm.clock.now(),
        )

    def fire_due_timers(self) -> int:
        """Fire every timer of this saga due by the CRM's clock, each once; returns how many
        fired. A timer whose firing fails stays pending (logged) and is tried on the next call."""
        fired, failed = 0, list[UUID]()
        while True:
            at = self.crm.clock.now()
            try:
                timer = self.recorder.fire_one(self.saga.name, at, failed, self._fire)
            except TimerFailed as error:
                logger.warning("saga %s timer %s failed: %r", self.saga.name, *error.args)
                failed.append(error.args[0])
                continue
            if timer is None:
                self.failed_timers = len(failed)
                return fired
            fired += 1

    def _fire(self, timer: Timer) -> list[StoredEvent]:
        with command_context(
            actor=self.saga.actor,
            correlation_id=timer.correlation_id,
            causation_id=timer.cause_id,
            clock=FixedClock(self.crm.clock.now()),
        ):
            changed = self.saga.fire(timer, self.crm.commands)
        new_events = [event for aggregate in changed for event in aggregate.collect_events()]
        return [self.crm.mapper.to_stored_event(event) for event in new_events]

    def seconds_to_next_timer(self, longest: float) -> float:
        """How long the worker may sleep before a timer is due (at most `longest`)."""
        at = self.recorder.next_fire_at(self.saga.name)
        if at is None:
            return longest
        return min(longest, max(0.0, (at - self.crm.clock.now()).total_seconds()))


def lock_key(name: str) -> int:
    """The advisory-lock key that elects one active instance of a saga."""
    digest = hashlib.blake2b(f"crm.saga.{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SagaWorker(threading.Thread):
    """Runs one saga while it holds that saga's advisory lock; otherwise stands by. While it
    leads, it records the saga's state in `crm_sagas` (with a heartbeat at most once a second)."""

    def __init__(
        self,
        runner: SagaRunner,
        database_url: str,
        stopping: threading.Event,
        feed: LogFeed,
        *,
        max_failures: int = 3,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(name=f"saga-{runner.saga.name}", daemon=True)
        self.runner = runner
        self.feed = feed
        self.database_url = database_url
        self.stopping = stopping
        self.max_failures = max_failures
        self.max_backoff = max_backoff
        self.is_leader = threading.Event()
        self.backoff = MIN_BACKOFF
        self.timer_backoff = 0.0
        self.state = "standby"
        self.error: str | None = None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._last_beat = 0.0

    def run(self) -> None:
        failures, failed_at = 0, None
        while not self.stopping.is_set():
            try:
                self._lead_when_elected()
                return
            except SagaPositionMoved:
                continue  # another instance got there first: read the position again
            except SagaEventFailed as error:
                failures = failures + 1 if error.position == failed_at else 1
                failed_at = error.position
                self.state, self.error = "error", str(error)
                if failures >= self.max_failures:
                    logger.error("saga stopped: %s", error)
                    self.state = "stopped"
                    self._record("stopped", str(error), error.position)
                    return
                logger.warning("%s; retrying", error)
                self._record("error", str(error), error.position)
            except Exception as error:  # e.g. the database went away: back off, try again
                logger.exception("saga %s failed; restarting", self.runner.saga.name)
                self.state, self.error = "error", f"{type(error).__name__}: {error}"
                self._record("error", self.error, None)
            self.stopping.wait(self.backoff)
            self.backoff = min(self.backoff * 2, self.max_backoff)

    def _lead_when_elected(self) -> None:
        """Stand by until this worker runs its saga, then serve it."""
        lead_when_elected(
            self.database_url,
            lock_key(self.runner.saga.name),
            self.stopping,
            self.is_leader,
            self._serve,
        )

    def _serve(self, leadership: psycopg.Connection[Any]) -> None:
        checked = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - checked >= 1.0:
                leadership.execute("SELECT 1")  # the lock lives as long as this session
                checked = time.monotonic()
            # Every event of its types up to `seen` is handled once the catch-up (which reads
            # until none is left) returns.
            seen = self.runner.crm.recorder.max_notification_id() or 0
            self.runner.catch_up(on_event=self._beat)
            wait = 1.0
            if self.runner.saga.has_timers:  # woken by the earliest timer at the latest
                self.runner.fire_due_timers()
                wait = self.runner.seconds_to_next_timer(longest=wait)
                if self.runner.failed_timers:  # a timer that keeps failing: back off
                    self.timer_backoff = min(
                        max(self.timer_backoff * 2, MIN_BACKOFF), self.max_backoff
                    )
                    wait = max(wait, self.timer_backoff)
                else:
                    self.timer_backoff = 0.0
            if self.state != "running":
                self._record("running", None, None)
            self.state, self.error, self.backoff = "running", None, MIN_BACKOFF
            self._beat()
            # Woken by a commit of an event it reacts to (or the timeout); commits of other
            # types cost it nothing (the feed, ADR 0015).
            self.feed.wait(seen, self.runner.topics, timeout=wait)

    def _beat(self, position: int | None = None) -> None:
        """The heartbeat of a running saga (at most once a second)."""
        if time.monotonic() - self._last_beat >= 1.0:
            self._record("running", None, None)

    def _record(self, state: str, error: str | None, failed_position: int | None) -> None:
        self._last_beat = time.monotonic()
        datastore = self.runner.crm.recorder.datastore  # type: ignore[attr-defined]
        try:
            with datastore.transaction(commit=True) as curs:
                curs.execute(
                    RECORD_STATE,
                    (self.runner.saga.name, state, failed_position, error, self.worker_id),
                )
        except Exception:  # status is best effort; the worker's own loop reports real failures
            logger.exception("could not record the state of saga %s", self.runner.saga.name)


RECORD_STATE = SQL(
    "INSERT INTO {} AS s (name, state, failed_position, error, worker, heartbeat_at) "
    "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET state = "
    "EXCLUDED.state, failed_position = EXCLUDED.failed_position, error = EXCLUDED.error, "
    "worker = EXCLUDED.worker, heartbeat_at = EXCLUDED.heartbeat_at"
).format(Identifier(REGISTRY_TABLE))


class SagaSupervisor(WorkerGroup[SagaWorker]):
    """Starts a worker per saga; each waits as standby while another process runs that saga."""

    def __init__(self, crm: CRM, database_url: str, sagas: Sequence[Saga] | None = None) -> None:
        stopping = threading.Event()
        feed = LogFeed(crm, database_url, stopping)
        workers = [
            SagaWorker(SagaRunner(saga, crm), database_url, stopping, feed)
            for saga in (build_sagas(crm) if sagas is None else sagas)
        ]
        super().__init__(crm, workers, stopping, feed)


@dataclass(frozen=True)
class SagaStatus:
    """Where one saga stands against the log, and whether a worker runs it."""

    name: str
    position: int
    head: int
    pending: int
    state: str = "not running"
    failed_position: int | None = None  # the event a stopped or retrying saga fails on
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "catching up")


def saga_status(crm: CRM, sagas: Sequence[Saga] | None = None) -> list[SagaStatus]:
    """Per saga: its position, the log's head, how many of its events wait, and its state."""
    head = crm.recorder.max_notification_id() or 0
    table = crm.recorder.events_table_name  # type: ignore[attr-defined]
    statuses = []
    for saga in build_sagas(crm) if sagas is None else sagas:
        runner = SagaRunner(saga, crm)
        position = runner.position()
        with crm.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                SQL(
                    "SELECT count(*) AS n FROM {} WHERE notification_id > %s "
                    "AND notification_id <= %s AND topic = ANY(%s)"
                ).format(Identifier(table)),
                (position, head, runner.topics),
            ).fetchone()
            registry = conn.execute(
                SQL(
                    "SELECT *, extract(epoch FROM now() - heartbeat_at) AS heartbeat_age "
                    "FROM {} WHERE name = %s"
                ).format(Identifier(REGISTRY_TABLE)),
                (saga.name,),
            ).fetchone()
        pending = int(row["n"]) if row else 0
        statuses.append(
            SagaStatus(
                saga.name,
                position,
                head,
                pending,
                state=_state(registry, pending),
                failed_position=registry["failed_position"] if registry else None,
                error=registry["error"] if registry else None,
            )
        )
    return statuses


def _state(registry: DictRow | None, pending: int) -> str:
    if registry is None:
        return "not running"  # no worker has ever led this saga
    if registry["state"] == "stopped":
        return "stopped with error"  # until a worker leads it again: a restart retries
    age = registry["heartbeat_age"]  # measured by the database's clock, like the heartbeat
    if age is None or float(age) > HEARTBEAT_STALE_SECONDS:
        return "not running"
    if registry["state"] == "error":
        return "restarting after error"
    return "catching up" if pending else "running"
