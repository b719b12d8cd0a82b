"""What the read-model and saga workers share: leader election by advisory lock, a feed of what
the log's commits hold, and a group of worker threads that starts and stops together."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Self, TypeVar

import psycopg
from psycopg.sql import SQL, Identifier

from domain.application import CRM

logger = logging.getLogger(__name__)

FEED_STALE_SECONDS = 3.0  # a feed that has not looked for this long cannot tell
FEED_RETRY_SECONDS = 0.5
FEED_APPLICATION_NAME = "crm-log-feed"


def lead_when_elected(
    database_url: str,
    key: int,
    stopping: threading.Event,
    is_leader: threading.Event,
    serve: Callable[[psycopg.Connection[Any]], None],
) -> None:
    """Stand by until this session holds advisory lock `key`, then `serve` while holding it.

    The lock belongs to the connection's session: if the process dies, PostgreSQL releases it
    and a standby in another process takes over within a second.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not stopping.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row and row[0]:
                break
            stopping.wait(1.0)
        else:
            return
        is_leader.set()
        try:
            serve(conn)
        finally:
            is_leader.clear()


def wake_listeners(crm: CRM) -> None:
    """NOTIFY the log's channel, so workers waiting for commits see they should stop at once."""
    channel = crm.recorder.channel_name  # type: ignore[attr-defined]
    try:
        with crm.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            curs.execute(SQL("NOTIFY {}").format(Identifier(channel)))
    except Exception:  # best effort: without it workers still stop within a second
        logger.warning("could not wake the workers", exc_info=True)


class LogFeed(threading.Thread):
    """Watches the log for a group of workers (the read models, or the sagas, of a process):
    one LISTEN and, per commit, one query for the types it wrote, where each worker would read
    the log on its own.

    A worker asks it whether an event of its types was committed after its position, and
    reads the log only then. Before the feed's first look, after it lost its connection, or
    when it has not looked for `FEED_STALE_SECONDS`, it cannot tell: it answers "maybe" once
    per wait's timeout, so workers read the log once a second until it can tell again.
    """

    def __init__(self, crm: CRM, database_url: str, stopping: threading.Event) -> None:
        super().__init__(name="log-feed", daemon=True)
        self.channel = crm.recorder.channel_name  # type: ignore[attr-defined]
        self.database_url = database_url
        self.stopping = stopping
        self.table = Identifier(crm.recorder.events_table_name)  # type: ignore[attr-defined]
        self._changed = threading.Condition()
        self._since: int | None = None  # the events after this position are known
        self._head = 0
        self._latest: dict[str, int] = {}  # each type's latest position seen
        self._looked = 0.0  # when the feed last read the head

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    self.database_url,
                    autocommit=True,
                    application_name=FEED_APPLICATION_NAME,
                    # A half-open connection must fail, not leave the feed waiting for it.
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=3,
                    options="-c statement_timeout=30s",
                ) as conn:
                    conn.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
                    while not self.stopping.is_set():
                        self._look(conn)
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            pass  # woken by a commit (or the timeout)
                        for _ in conn.notifies(timeout=0.0):
                            pass  # one look covers the commits notified meanwhile
            except Exception:
                logger.exception("the log feed lost its connection; reconnecting")
            with self._changed:
                self._since = None  # what it missed is unknown: workers read the log
                self._changed.notify_all()
            self.stopping.wait(FEED_RETRY_SECONDS)
        with self._changed:
            self._changed.notify_all()

    def _look(self, conn: psycopg.Connection[Any]) -> None:
        """Note the types committed since the last look (all positions up to the head are
        committed: the log is written in position order under its table lock)."""
        row = conn.execute(SQL("SELECT max(notification_id) FROM {}").format(self.table))
        head = (row.fetchone() or (None,))[0] or 0
        self._looked = time.monotonic()
        if self._since is None:
            with self._changed:
                self._since, self._head, self._latest = head, head, {}
                self._changed.notify_all()
            return
        if head <= self._head:
            return
        latest = conn.execute(
            SQL(
                "SELECT topic, max(notification_id) FROM {} WHERE notification_id > %s "
                "AND notification_id <= %s GROUP BY topic"
            ).format(self.table),
            (self._head, head),
        ).fetchall()
        with self._changed:
            self._latest.update(latest)
            self._head = head
            self._changed.notify_all()

    def _known(self) -> bool:
        """Whether the feed can tell: it has looked, and looked lately (a stalled feed's
        answers would still be true, but about an ever older head)."""
        return self._since is not None and time.monotonic() - self._looked < FEED_STALE_SECONDS

    def wait(self, position: int, topics: Sequence[str], timeout: float) -> tuple[bool, int]:
        """Wait until an event of `topics` after `position` is committed, at most `timeout`
        seconds. Returns whether there is one (or may be one), and the head it knows: when
        there is none, no event of `topics` lies between `position` and that head."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.stopping.is_set():
                known = self._known()
                if known and (
                    position < self._since  # type: ignore[operator]
                    or any(self._latest.get(t, 0) > position for t in topics)
                ):
                    return True, self._head
                remaining = deadline - time.monotonic()
                if remaining <= 0:  # unknown: "maybe", so the worker reads the log each time
                    return (False, self._head) if known else (True, position)
                self._changed.wait(remaining)
            return False, position


W = TypeVar("W", bound=threading.Thread)


class WorkerGroup(Generic[W]):
    """Worker threads sharing one `stopping` event; stopping wakes them and waits for them."""

    def __init__(
        self, crm: CRM, workers: Sequence[W], stopping: threading.Event, feed: LogFeed
    ) -> None:
        self.crm = crm
        self.workers = list(workers)
        self.stopping = stopping
        self.feed = feed  # the workers' one view of what is committed

    def start(self) -> None:
        self.feed.start()
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        wake_listeners(self.crm)
        for worker in self.workers:
            worker.join(timeout)
        self.feed.join(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
