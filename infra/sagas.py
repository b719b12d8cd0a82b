"""Runs the sagas exactly once: each reaction's events and the saga's position in one transaction.

A saga reads the CRM's log after its tracked position, decides through its policy, and its new
events go into the CRM's own events table together with its row in `crm_saga_tracking`, in one
transaction (the library's `PostgresProcessRecorder`, pointed at the CRM's tables). A crash before
the commit leaves neither; a second instance that processed the same event fails on the tracking
row and rolls back. One worker per saga leads (advisory lock), the others stand by.
See docs/adr/0011-sagas-exactly-once.md.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, Tracking
from eventsourcing.postgres import (
    PostgresDatastore,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from psycopg.sql import SQL, Identifier
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.application import CRM
from domain.shared import DomainEvent, FixedClock, command_context
from infra.projections import wake_listeners
from sagas.base import Saga
from sagas.deal_won_onboarding import DealWonOnboardingSaga, OnboardingRules
from sagas.key_account_alert import KeyAccountAlertSaga, KeyAccountRules
from sagas.lead_conversion import ConversionRules, LeadConversionSaga
from sagas.lead_routing import LeadRoutingSaga
from sagas.routing import RoutingRules

logger = logging.getLogger(__name__)

TRACKING_TABLE = "crm_saga_tracking"
MIN_BACKOFF = 0.5


class SagaSettings(BaseSettings):
    """Configuration of the sagas, each a JSON env var: `CRM_LEAD_ROUTING` (routing rules),
    `CRM_LEAD_CONVERSION` (auto-converting channels), `CRM_DEAL_WON_ONBOARDING` (onboarding
    team, tier thresholds per currency), `CRM_KEY_ACCOUNT_ALERT` (sales team, CSAT threshold)."""

    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    lead_routing: RoutingRules = RoutingRules()
    lead_conversion: ConversionRules = ConversionRules()
    deal_won_onboarding: OnboardingRules = OnboardingRules()
    key_account_alert: KeyAccountRules = KeyAccountRules()


def build_sagas(crm: CRM, settings: SagaSettings | None = None) -> list[Saga]:
    """Every saga, configured from settings and the application's calendar."""
    settings = settings or SagaSettings()
    calendar, policy = crm.config.calendar, crm.config.sla_policy
    return [
        LeadRoutingSaga(settings.lead_routing, calendar),
        LeadConversionSaga(settings.lead_conversion, crm.config.phone_region),
        DealWonOnboardingSaga(settings.deal_won_onboarding, policy, calendar),
        KeyAccountAlertSaga(settings.key_account_alert, calendar),
    ]


def create_saga_schema(datastore: PostgresDatastore) -> None:
    """Create the sagas' tracking table (`crm migrate`; workers never create tables)."""
    PostgresTrackingRecorder(datastore, tracking_table_name=TRACKING_TABLE).create_table()


class SagaRecorder(PostgresProcessRecorder):
    """The CRM's events table plus the sagas' tracking table: events and position in one commit.

    It saves with the library's transaction (tracking row, table lock, NOTIFY, insert), not the
    CRM's one-statement function, so the tracking row joins the same transaction; readers keep
    their guarantee because the table lock is taken all the same.
    """


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
        self.topics = topics(saga.reacts_to)
        self.recorder = SagaRecorder(
            crm.recorder.datastore,  # type: ignore[attr-defined]
            events_table_name=crm.recorder.events_table_name,  # type: ignore[attr-defined]
            tracking_table_name=TRACKING_TABLE,
        )

    def position(self) -> int:
        """The position of the last event this saga has handled (0: none)."""
        return self.recorder.max_tracking_id(self.saga.name) or 0

    def catch_up(self) -> int:
        """Handle every event after the saga's position; returns how many were handled."""
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
        new_events = [event for aggregate in changed for event in aggregate.collect_events()]
        self.recorder.insert_events(
            [self.crm.mapper.to_stored_event(event) for event in new_events],
            tracking=Tracking(self.saga.name, notification.id),
        )


def lock_key(name: str) -> int:
    """The advisory-lock key that elects one active instance of a saga."""
    digest = hashlib.blake2b(f"crm.saga.{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SagaWorker(threading.Thread):
    """Runs one saga while it holds that saga's advisory lock; otherwise stands by."""

    def __init__(
        self,
        runner: SagaRunner,
        database_url: str,
        stopping: threading.Event,
        *,
        max_failures: int = 3,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(name=f"saga-{runner.saga.name}", daemon=True)
        self.runner = runner
        self.database_url = database_url
        self.stopping = stopping
        self.max_failures = max_failures
        self.max_backoff = max_backoff
        self.is_leader = threading.Event()
        self.backoff = MIN_BACKOFF
        self.state = "standby"
        self.error: str | None = None

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
                    return
                logger.warning("%s; retrying", error)
            except Exception as error:  # e.g. the database went away: back off, try again
                logger.exception("saga %s failed; restarting", self.runner.saga.name)
                self.state, self.error = "error", f"{type(error).__name__}: {error}"
            self.stopping.wait(self.backoff)
            self.backoff = min(self.backoff * 2, self.max_backoff)

    def _lead_when_elected(self) -> None:
        """Stand by until this worker holds the saga's session advisory lock, then serve.

        If the process dies, PostgreSQL ends the session, frees the lock and a standby takes over.
        """
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            key = lock_key(self.runner.saga.name)
            while not self.stopping.is_set():
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if row and row[0]:
                    break
                self.stopping.wait(1.0)
            else:
                return
            self.is_leader.set()
            try:
                self._serve(conn)
            finally:
                self.is_leader.clear()

    def _serve(self, leadership: psycopg.Connection[Any]) -> None:
        channel = self.runner.crm.recorder.channel_name  # type: ignore[attr-defined]
        with psycopg.connect(self.database_url, autocommit=True) as listener:
            listener.execute(SQL("LISTEN {}").format(Identifier(channel)))
            while not self.stopping.is_set():
                leadership.execute("SELECT 1")  # the lock lives as long as this session
                self.runner.catch_up()
                self.state, self.error, self.backoff = "running", None, MIN_BACKOFF
                for _ in listener.notifies(timeout=1.0, stop_after=1):
                    pass  # woken by a commit (or the timeout): look again


class SagaSupervisor:
    """Starts a worker per saga; each waits as standby while another process runs that saga."""

    def __init__(self, crm: CRM, database_url: str, sagas: Sequence[Saga] | None = None) -> None:
        self.crm = crm
        self.stopping = threading.Event()
        self.workers = [
            SagaWorker(SagaRunner(saga, crm), database_url, self.stopping)
            for saga in (build_sagas(crm) if sagas is None else sagas)
        ]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        wake_listeners(self.crm)
        for worker in self.workers:
            worker.join(timeout)

    def __enter__(self) -> SagaSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class SagaStatus:
    """Where one saga stands against the log."""

    name: str
    position: int
    head: int
    pending: int


def saga_status(crm: CRM, sagas: Sequence[Saga] | None = None) -> list[SagaStatus]:
    """Per saga: its position, the log's head and how many of its events wait."""
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
        statuses.append(SagaStatus(saga.name, position, head, int(row["n"]) if row else 0))
    return statuses
