"""Runs the read models: one leader per read model across processes, restarts, status, rebuild."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from eventsourcing.persistence import Mapper, Notification
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from domain.application import CRM
from domain.shared import DomainEvent
from infra.workers import LogFeed, WorkerGroup, lead_when_elected
from projections.catalog import READ_MODELS, ReadModelSpec
from projections.catchup import EventFailed, Progress, catch_up
from projections.readmodel import (
    REGISTRY_TABLE,
    ReadModelMoved,
    ReadModelProjection,
    SchemaOutdated,
    create_registry,
    install,
)
from projections.replay import log_pages, replay, topics_of
from projections.second_process import SecondProcess

logger = logging.getLogger(__name__)

HEARTBEAT_STALE_SECONDS = 10.0
MIN_BACKOFF = 0.5
# How often a worker records positions past events that are not its read model's.
IDLE_ADVANCE_SECONDS = 1.0


def lock_key(name: str) -> int:
    """The advisory-lock key that elects one leader for a read model."""
    digest = hashlib.blake2b(f"crm.read_model.{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SharedDecoding:
    """Decodes each log event once for all the read models of a process.

    The workers read the same new events at about the same time; decoding (and opening the
    personal fields) is most of a worker's CPU per event, so the latest events decoded are
    kept, by position, for the others. Events are immutable, so sharing them is safe.
    """

    def __init__(self, mapper: Mapper[Any], keep: int = 20_000) -> None:
        self.mapper = mapper
        self.keep = keep
        self._events: dict[int, Any] = {}
        self._lock = threading.Lock()

    def to_domain_event(self, notification: Notification) -> Any:
        event = self._events.get(notification.id)
        if event is None:
            event = self.mapper.to_domain_event(notification)
            with self._lock:
                if isinstance(event, DomainEvent) and event.erased_subjects():
                    self._events.clear()  # no personal value decoded earlier outlives this
                elif len(self._events) >= self.keep:  # the oldest half goes
                    for position in sorted(self._events)[: self.keep // 2]:
                        del self._events[position]
                self._events[notification.id] = event
        return event


class ProjectionWorker(threading.Thread):
    """Keeps one read model up to date while it holds that read model's advisory lock."""

    def __init__(
        self,
        spec: ReadModelSpec,
        crm: CRM,
        database_url: str,
        stopping: threading.Event,
        feed: LogFeed,
        *,
        batch_size: int = 500,
        max_failures: int = 3,
        max_backoff: float = 30.0,
        decoding: SharedDecoding | None = None,
    ) -> None:
        super().__init__(name=f"projection-{spec.name}", daemon=True)
        self.feed = feed
        self.mapper = cast(Mapper[Any], decoding or crm.mapper)
        self.spec = spec
        self.crm = crm
        self.database_url = database_url
        self.stopping = stopping
        self.batch_size = batch_size
        self.max_failures = max_failures
        self.max_backoff = max_backoff
        self.datastore = crm.recorder.datastore  # type: ignore[attr-defined]
        self.is_leader = threading.Event()
        self.backoff = MIN_BACKOFF
        self._last_beat = 0.0
        self._recorded: str | None = None  # the state last written to the registry
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def run(self) -> None:
        failures, failed_at = 0, None
        while not self.stopping.is_set():
            try:
                self._lead_when_elected()
                return
            except ReadModelMoved:
                self.stopping.wait(0.05)
                continue  # a rebuild switched versions, or another writer moved: reload
            except SchemaOutdated as error:  # new code, old tables: rebuild beside, then switch
                logger.warning("%s; rebuilding it now", error)
                self._record("rebuilding", str(error))
                try:
                    rebuild(self.crm, self.spec)
                    continue
                except RebuildInProgress:
                    pass  # another process rebuilds it: wait for the switch
            except EventFailed as error:
                failures = failures + 1 if error.position == failed_at else 1
                failed_at = error.position
                if failures >= self.max_failures:
                    logger.error("read model stopped: %s", error)
                    self._record("stopped", str(error))
                    return
                self._record("error", str(error))
            except Exception as error:  # any other failure: log, back off, try again
                logger.exception("read model %s failed; restarting", self.spec.name)
                self._record("error", f"{type(error).__name__}: {error}")
            self.stopping.wait(self.backoff)
            self.backoff = min(self.backoff * 2, self.max_backoff)

    def _lead_when_elected(self) -> None:
        """Stand by until this worker leads its read model, then serve it."""
        lead_when_elected(
            self.database_url, lock_key(self.spec.name), self.stopping, self.is_leader, self._serve
        )

    def _serve(self, leadership: psycopg.Connection[Any]) -> None:
        projection = self.spec.projection(view=install(self.spec.view, self.datastore))
        position = self._catch_up(projection, None)
        checked = advanced = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() - checked >= 1.0:
                # The lock lives as long as this session; and a worker with nothing to write
                # must still notice a rebuild's switch (or a new schema) to move with it.
                with leadership.cursor(row_factory=dict_row) as curs:
                    projection.view.check_active(curs)
                checked = time.monotonic()
            self._beat(0, 0, 0)  # not a commit per wake-up: once a second at most
            self.backoff = MIN_BACKOFF
            relevant, head = self.feed.wait(position, projection.topics, timeout=1.0)
            if relevant:
                position = self._catch_up(projection, position)
            elif head > position and time.monotonic() - advanced >= IDLE_ADVANCE_SECONDS:
                # Only other read models' events since: recorded now and then, not per commit
                # (waits for a position look past them: `ReadModelView.wait_for`).
                projection.view.advance(head, start=position)
                position, advanced = head, time.monotonic()

    def _catch_up(self, projection: ReadModelProjection, position: int | None) -> int:
        return catch_up(
            projection,
            self.crm.recorder,
            self.mapper,
            batch_size=self.batch_size,
            on_batch=self._beat,
            position=position,
        )

    def _beat(self, position: int, head: int, applied: int) -> None:
        """Say "running" at once after any other state, then at most once a second."""
        if self._recorded != "running" or time.monotonic() - self._last_beat >= 1.0:
            self._record("running", None)

    def _record(self, state: str, error: str | None) -> None:
        self._last_beat = time.monotonic()
        self._recorded = state
        try:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(
                    SQL(
                        "UPDATE {} SET state = %s, error = %s, worker = %s, heartbeat_at = now() "
                        "WHERE name = %s"
                    ).format(Identifier(REGISTRY_TABLE)),
                    (state, error, self.worker_id, self.spec.name),
                )
        except Exception:  # status is best effort; the worker's own loop reports real failures
            logger.exception("could not record the state of read model %s", self.spec.name)


class ProjectionSupervisor(WorkerGroup[ProjectionWorker]):
    """Starts a worker per read model; each waits as standby while another process leads."""

    def __init__(
        self, crm: CRM, database_url: str, specs: Sequence[ReadModelSpec] = READ_MODELS
    ) -> None:
        stopping = threading.Event()
        decoding = SharedDecoding(crm.mapper)
        feed = LogFeed(crm, database_url, stopping)
        workers = [
            ProjectionWorker(s, crm, database_url, stopping, feed, decoding=decoding) for s in specs
        ]
        super().__init__(crm, workers, stopping, feed)


@dataclass(frozen=True)
class ProjectionStatus:
    """Where one read model stands against the log."""

    name: str
    version: int | None
    position: int
    head: int
    lag_events: int
    lag_ms: float | None
    state: str
    error: str | None


def projection_status(
    crm: CRM, specs: Sequence[ReadModelSpec] = READ_MODELS
) -> list[ProjectionStatus]:
    """Position, head, lag and state of every read model."""
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    head = crm.recorder.max_notification_id() or 0
    now = datetime.now(UTC)
    statuses = []
    for spec in specs:
        registry = _registry_row(datastore, spec.name)
        version = None if registry is None else int(registry["active_version"])
        view = spec.view(datastore, version or 1)
        projection = spec.projection(view=view)
        position = view.position() if version is not None else 0
        pending = crm.recorder.select_notifications(
            start=position, limit=1, stop=head, topics=projection.topics, inclusive_of_start=False
        )
        lag_ms = None
        if pending:
            oldest = crm.mapper.to_domain_event(pending[0])
            lag_ms = (now - oldest.timestamp).total_seconds() * 1000  # type: ignore[attr-defined]
        lag_events = _count_pending(crm, projection.topics, position, head)
        statuses.append(
            ProjectionStatus(
                name=spec.name,
                version=version,
                position=position,
                head=head,
                lag_events=lag_events,
                lag_ms=lag_ms,
                state=_state(registry, lag_events),
                error=None if registry is None else registry["error"],
            )
        )
    return statuses


def _registry_row(datastore: Any, name: str) -> dict[str, Any] | None:
    """The read model's registry row; None if it (or the registry, before migrate) is missing."""
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute("SELECT to_regclass(%s) AS registry", (REGISTRY_TABLE,))
        found = curs.fetchone()
        if found is None or found["registry"] is None:
            return None
        curs.execute(
            SQL(
                "SELECT *, extract(epoch FROM now() - heartbeat_at) AS heartbeat_age "
                "FROM {} WHERE name = %s"
            ).format(Identifier(REGISTRY_TABLE)),
            (name,),
        )
        row: dict[str, Any] | None = curs.fetchone()
        return row


def _count_pending(crm: CRM, topics: Sequence[str], position: int, head: int) -> int:
    table = crm.recorder.events_table_name  # type: ignore[attr-defined]
    with crm.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            SQL(
                "SELECT count(*) AS n FROM {} WHERE notification_id > %s "
                "AND notification_id <= %s AND topic = ANY(%s)"
            ).format(Identifier(table)),
            (position, head, list(topics)),
        ).fetchone()
    return int(row["n"]) if row else 0


def _state(registry: dict[str, Any] | None, lag_events: int) -> str:
    if registry is None:
        return "not installed"
    if registry["state"] == "stopped":
        return "stopped with error"
    age = registry["heartbeat_age"]  # measured by the database's clock, like the heartbeat
    if age is None or float(age) > HEARTBEAT_STALE_SECONDS:
        return "not running"
    if registry["state"] == "error":
        return "restarting after error"
    return "catching up" if lag_events else "running"


def rebuild(crm: CRM, spec: ReadModelSpec, on_batch: Progress | None = None) -> int:
    """Build a new version from position zero beside the serving one, then switch readers to it.

    The old version serves queries until the switch, which is one transaction; a crash before it
    leaves the old version serving (the half-built version is dropped by the next rebuild).
    Returns the new version.
    """
    return rebuild_many(crm, [spec], on_batch)[spec.name]


def rebuild_many(
    crm: CRM, specs: Sequence[ReadModelSpec], on_batch: Progress | None = None
) -> dict[str, int]:
    """Rebuild these read models in one pass over the log (see `rebuild`), then switch each.

    Every event is read and decoded once for all of them. The switches come one after another
    at the end, each atomic on its own. Returns each read model's new version.
    """
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    create_registry(datastore)
    with datastore.get_connection() as lock:  # held for the whole rebuild: one at a time
        locked: list[int] = []
        try:
            for spec in specs:
                key = lock_key(f"rebuild:{spec.name}")
                row = lock.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,)).fetchone()
                if not row or not row["locked"]:
                    raise RebuildInProgress(spec.name)
                locked.append(key)
            return _rebuild(crm, specs, datastore, on_batch)
        finally:
            for key in locked:
                lock.execute("SELECT pg_advisory_unlock(%s)", (key,))


class RebuildInProgress(Exception):
    """Another process is rebuilding this read model right now."""

    def __init__(self, name: str) -> None:
        super().__init__(f"read model {name} is being rebuilt by another process")


def _rebuild(
    crm: CRM, specs: Sequence[ReadModelSpec], datastore: Any, on_batch: Progress | None
) -> dict[str, int]:
    serving: dict[str, int] = {}
    projections = []
    for spec in specs:
        current = install(spec.view, datastore).version
        registry = _registry_row(datastore, spec.name)
        leftover = None if registry is None else registry["building_version"]
        if leftover is not None and leftover != current:
            spec.view(datastore, leftover).drop()
        new_version = max(current, leftover or 0) + 1
        _set_building(datastore, spec.name, new_version)
        view = spec.view(datastore, new_version)
        view.drop()
        view.create_table(indexes=False)  # replay creates them once rows are in
        serving[spec.name] = current
        projections.append(spec.projection(view=view))
    _replay(crm, specs, projections, on_batch)
    for spec, projection in zip(specs, projections, strict=True):
        projection.view.analyze()
        projection.view.activate()  # waits for a live batch in flight; live workers then move
        _set_building(datastore, spec.name, None)
        spec.view(datastore, serving[spec.name]).drop()
    return {spec.name: p.view.version for spec, p in zip(specs, projections, strict=True)}


# Customer 360°'s timeline costs about what all the other read models cost together.
HEAVIEST = "customer_360"


def _replay(
    crm: CRM,
    specs: Sequence[ReadModelSpec],
    projections: list[ReadModelProjection],
    on_batch: Progress | None,
) -> None:
    """Replay the log into these new versions: the heaviest read model in this process and the
    others in a second one, which is sent the pages this one reads and decodes its events on
    its own (the pass is CPU-bound in Python: one core per process); all here when there is a
    single core or read model."""
    mine = [p for s, p in zip(specs, projections, strict=True) if s.name == HEAVIEST]
    theirs = [p for s, p in zip(specs, projections, strict=True) if s.name != HEAVIEST]
    catalogued = {spec.name: spec for spec in READ_MODELS}
    if (
        not mine
        or not theirs
        or len(os.sched_getaffinity(0)) < 2  # the CPUs this process may use
        or any(catalogued.get(s.name) != s for s in specs)  # the second process looks them up
    ):
        replay(projections, crm.recorder, crm.mapper, on_page=on_batch)
        return
    views = [(p.name, p.view.version) for p in theirs]
    with SecondProcess(type(crm), dict(crm.env), views, topics_of(theirs)) as second:
        pages = log_pages(crm.recorder, topics_of(projections), forward=second.send)
        replay(mine, crm.recorder, crm.mapper, on_page=on_batch, pages=pages)
        second.result()


def _set_building(datastore: Any, name: str, building: int | None) -> None:
    with datastore.transaction(commit=True) as curs:
        curs.execute(
            SQL("UPDATE {} SET building_version = %s WHERE name = %s").format(
                Identifier(REGISTRY_TABLE)
            ),
            (building, name),
        )
