"""What the read-model and saga workers share: leader election by advisory lock, and a group of
worker threads that starts and stops together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, Self, TypeVar

import psycopg
from psycopg.sql import SQL, Identifier

from domain.application import CRM

logger = logging.getLogger(__name__)


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


W = TypeVar("W", bound=threading.Thread)


class WorkerGroup(Generic[W]):
    """Worker threads sharing one `stopping` event; stopping wakes them and waits for them."""

    def __init__(self, crm: CRM, workers: Sequence[W], stopping: threading.Event) -> None:
        self.crm = crm
        self.workers = list(workers)
        self.stopping = stopping

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        wake_listeners(self.crm)
        for worker in self.workers:
            worker.join(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
