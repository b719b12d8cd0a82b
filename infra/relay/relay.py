"""The relay: tails the event log and publishes every event to JetStream exactly once, in order."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, cast

import nats
import orjson
import psycopg
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from psycopg import AsyncConnection
from psycopg.sql import SQL

from domain.application import CRM
from domain.shared import DomainEvent
from infra.relay.config import RelayConfig
from infra.relay.envelope import Message, is_published, to_message
from infra.relay.log import EventLog
from infra.relay.publisher import (
    BATCH_HAS_DUPLICATE,
    MAX_BATCH,
    JetStreamPublisher,
    PublishFailed,
)
from infra.relay.stream import ensure_stream
from infra.relay.tracking import Tracking, lock_key
from infra.relay.window import AckWindow
from infra.services.status import describe

logger = logging.getLogger(__name__)

MIN_BACKOFF = 0.25
IDLE_WAIT = 0.5  # seconds between looks at the log when no commit wakes us (and stop latency)
STANDBY_POLL = 1.0
HEARTBEAT = 1.0  # seconds between heartbeats while idle
SMALL_BATCH = 8  # fewer messages go one by one: an atomic batch costs a few fsyncs of its own
WRONG_LAST_SEQUENCE = 10071  # JSStreamWrongLastSequenceErrF

Chunk = list[tuple[int, Message | None]]  # positions read, with their message if published


class Relay:
    """Publishes the log to JetStream while it holds the relay's advisory lock.

    Order and exactly-once rest on three things: each message carries `Nats-Msg-Id` (JetStream
    drops re-publishes inside the duplicate window, or refuses an atomic batch holding one);
    each message or atomic batch expects the stream's last sequence to be what was sent before
    it (`Nats-Expected-Last-Sequence`), so a message lost in flight stops everything after it
    from being stored out of order; and the tracking position moves only over the acknowledged
    prefix. At each start the stream's last message moves the position forward if a crash came
    between publishing and tracking.

    Each chunk read from the log goes as one atomic batch (ADR 0008): with `sync_interval:
    always` JetStream fsyncs once per batch rather than once per message. After a refusal
    that says the stream already holds some of them (duplicate id, wrong last sequence), and on
    servers without atomic batches, messages go one by one, chained by
    `Nats-Expected-Last-Msg-Id`, so JetStream drops the duplicates singly, until a chunk holds none.
    """

    def __init__(
        self,
        crm: CRM,
        database_url: str,
        nats_url: str,
        config: RelayConfig | None = None,
        *,
        reconcile: bool = True,
    ) -> None:
        self.crm = crm
        self.database_url = database_url
        self.nats_url = nats_url
        self.config = config or RelayConfig()
        self.reconcile = reconcile
        self.is_leader = threading.Event()
        self.worker = f"{socket.gethostname()}:{os.getpid()}:relay"
        self.stored = 0  # messages JetStream stored as new, by this relay since it started
        self.duplicates = 0
        self.before_tracking: Callable[[int], None] | None = None  # tests inject crashes here
        self._backoff = MIN_BACKOFF
        self._beat = 0.0
        self._replay = False  # the stream may hold what comes next: publish one by one

    async def run(self, stopping: asyncio.Event) -> None:
        """Stand by, lead, publish; on a database failure let go of the lock and start over."""
        while not stopping.is_set():
            try:
                await self._lead_when_elected(stopping)
            except psycopg.Error as error:
                logger.warning("relay lost its database connection: %s", describe(error))
            await self._pause(stopping)

    async def _lead_when_elected(self, stopping: asyncio.Event) -> None:
        async with await AsyncConnection.connect(self.database_url, autocommit=True) as lead:
            while not stopping.is_set():
                cursor = await lead.execute(
                    "SELECT pg_try_advisory_lock(%s)", (lock_key(self.config.stream),)
                )
                row = await cursor.fetchone()
                if row and row[0]:
                    break
                await _wait(stopping, STANDBY_POLL)
            else:
                return
            self.is_leader.set()
            try:
                await self._lead(lead, stopping)
            finally:
                self.is_leader.clear()

    async def _lead(self, lead: AsyncConnection[Any], stopping: asyncio.Event) -> None:
        tracking = Tracking(lead, self.config.stream, self.worker)
        log = EventLog(lead, self.crm)
        await tracking.position()  # fails early, and visibly, when `crm migrate` has not run
        async with await AsyncConnection.connect(self.database_url, autocommit=True) as listener:
            await listener.execute(SQL("LISTEN {}").format(log.channel))
            while not stopping.is_set():
                try:
                    await self._session(tracking, log, listener, stopping)
                except psycopg.Error:
                    raise
                except Exception as error:  # NATS down or slow, a refused message: retry
                    logger.warning("relay publishing failed: %s", describe(error))
                    if isinstance(error, PublishFailed) and error.code in (
                        BATCH_HAS_DUPLICATE,
                        WRONG_LAST_SEQUENCE,
                    ):
                        self._replay = True
                    await tracking.record("error", f"{type(error).__name__}: {describe(error)}")
                    await self._pause(stopping)

    async def _session(
        self,
        tracking: Tracking,
        log: EventLog,
        listener: AsyncConnection[Any],
        stopping: asyncio.Event,
    ) -> None:
        """One NATS connection: publish from the tracking position until stopped or failed."""
        publisher: list[JetStreamPublisher] = []

        async def connection_lost() -> None:
            for each in publisher:
                each.fail_all("the connection to NATS was lost")

        nc = await nats.connect(
            self.nats_url,
            name="crm-relay",
            allow_reconnect=False,  # a new session re-reads the position; nothing stale is sent
            max_reconnect_attempts=1,  # nats-py retries the first connect forever unless > 0
            reconnect_time_wait=0,
            connect_timeout=2,
            disconnected_cb=connection_lost,
            closed_cb=connection_lost,
            error_cb=_quiet,
        )
        try:
            js = nc.jetstream(timeout=self.config.ack_timeout_seconds)
            atomic = bool((await ensure_stream(js, self.config)).config.allow_atomic)
            publisher.append(JetStreamPublisher(nc))
            await publisher[0].start()
            position = await tracking.position()
            if self.reconcile:
                position = await self._reconcile(js, log, tracking, position)
            window = AckWindow(position, self.config.ack_timeout_seconds)
            last_seq = await self._last_seq(js) if atomic and not self._replay else None
            pump = _Pump(window, publisher[0], self.config.max_in_flight, last_seq)
            try:
                await self._pump(pump, js, atomic, tracking, log, listener, stopping)
            finally:
                self.stored += window.stored
                self.duplicates += window.duplicates
        finally:
            await _close(nc)

    async def _pump(
        self,
        pump: _Pump,
        js: JetStreamContext,
        atomic: bool,
        tracking: Tracking,
        log: EventLog,
        listener: AsyncConnection[Any],
        stopping: asyncio.Event,
    ) -> None:
        window = pump.window
        read = saved = window.position
        while not stopping.is_set():
            head = await log.head()
            if read < head:
                rows = await log.read(read, head, self.config.batch_size)
                chunk: Chunk = []
                for position, stored in rows:
                    if not is_published(stored.topic):
                        chunk.append((position, None))
                        continue
                    event = cast(DomainEvent, self.crm.mapper.to_domain_event(stored))
                    message = to_message(event, position, self.config.subject_prefix)
                    chunk.append((position, message))
                if pump.last_seq is None:
                    duplicates = window.duplicates
                    await pump.one_by_one(chunk)
                    if atomic and window.duplicates == duplicates:
                        await window.settle()  # all acked: nothing more to skip singly
                        if window.duplicates == duplicates:
                            pump.last_seq, self._replay = await self._last_seq(js), False
                else:
                    await pump.sequenced(chunk)
                read = rows[-1][0] if len(rows) == self.config.batch_size else head
                await window.settle(keep=self.config.max_in_flight)
            if read >= head:
                await window.settle()  # caught up: wait for the last acks, then save
            if window.position != saved or time.monotonic() - self._beat >= HEARTBEAT:
                saved = await self._save(window, tracking)
                self._backoff = MIN_BACKOFF
            if read >= head:
                await _wakeup(listener)

    async def _last_seq(self, js: JetStreamContext) -> int:
        return int((await js.stream_info(self.config.stream)).state.last_seq)

    async def _save(self, window: AckWindow, tracking: Tracking) -> int:
        if self.before_tracking is not None:
            self.before_tracking(window.position)
        stored = window.take_stored()
        self.stored += stored
        await tracking.advance(window.position, stored)
        self._beat = time.monotonic()
        return window.position

    async def _reconcile(
        self, js: JetStreamContext, log: EventLog, tracking: Tracking, position: int
    ) -> int:
        """Skip what the stream already holds: its last message says how far publishing got.

        Sound because the stream never holds a message without every one before it (see the
        class docstring); the id is checked against this log so a stream shared by mistake with
        another database is not trusted.
        """
        info = await js.stream_info(self.config.stream)
        if not info.state.messages:
            return position
        try:
            last = await js.get_msg(self.config.stream, info.state.last_seq)
            envelope = orjson.loads(last.data or b"{}")
        except (NotFoundError, orjson.JSONDecodeError):
            return position
        stream_position = envelope.get("position") if isinstance(envelope, dict) else None
        if not isinstance(stream_position, int) or stream_position <= position:
            return position
        if await log.event_id_at(stream_position) != envelope.get("id"):
            logger.warning("stream %s holds events of another log", self.config.stream)
            return position
        logger.info("stream is ahead of tracking; resuming after position %d", stream_position)
        await tracking.advance(stream_position, 0)
        return stream_position

    async def _pause(self, stopping: asyncio.Event) -> None:
        await _wait(stopping, self._backoff)
        self._backoff = min(self._backoff * 2, self.config.max_backoff_seconds)


class _Pump:
    """Publishes chunks into the window, each message or batch chained to what went before."""

    def __init__(
        self,
        window: AckWindow,
        publisher: JetStreamPublisher,
        max_in_flight: int,
        last_seq: int | None,
    ) -> None:
        self.window = window
        self.publisher = publisher
        self.max_in_flight = max_in_flight
        self.last_seq = last_seq  # the stream's last sequence once all sent is stored; None: by id
        self.previous_id: str | None = None

    async def one_by_one(self, chunk: Chunk) -> None:
        """Each message expects its predecessor's id as the stream's last (the first: none)."""
        for position, message in chunk:
            if message is None:
                self.window.skip(position)
                continue
            await self.window.settle(keep=self.max_in_flight - 1)
            future = await self.publisher.publish(
                message.subject, message.payload, message.id, self.previous_id
            )
            self.window.add(position, future)
            self.previous_id = message.id

    async def sequenced(self, chunk: Chunk) -> None:
        """Atomic batches of at most MAX_BATCH messages; a few messages go one by one."""
        assert self.last_seq is not None
        published = sum(message is not None for _, message in chunk)
        for part in _parts(chunk, MAX_BATCH if published >= SMALL_BATCH else 1):
            messages = [message for _, message in part if message is not None]
            if messages:
                await self.window.settle(keep=max(0, self.max_in_flight - len(messages)))
                if len(messages) == 1 and published < SMALL_BATCH:
                    only = messages[0]
                    future = await self.publisher.publish(
                        only.subject, only.payload, only.id, expected_seq=self.last_seq
                    )
                else:
                    future = await self.publisher.publish_batch(messages, self.last_seq)
                self.last_seq += len(messages)
            for position, message in part:
                if message is None:
                    self.window.skip(position)
                else:
                    self.window.add(position, future)


def _parts(chunk: Chunk, size: int) -> list[Chunk]:
    """The chunk cut, in order, into runs of at most `size` messages (skips ride along)."""
    parts: list[Chunk] = [[]]
    count = 0
    for entry in chunk:
        if entry[1] is not None:
            if count == size:
                parts.append([])
                count = 0
            count += 1
        parts[-1].append(entry)
    return parts


async def _wakeup(listener: AsyncConnection[Any]) -> None:
    """Return on the next commit's notification, or after IDLE_WAIT."""
    async for _ in listener.notifies(timeout=IDLE_WAIT, stop_after=1):
        pass


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _close(nc: Client) -> None:
    with suppress(Exception):
        await asyncio.wait_for(nc.close(), 2.0)


async def _quiet(error: Exception) -> None:
    """Connection errors surface as failed publishes; nats-py would log each one again."""
    logger.debug("nats: %s", describe(error))
