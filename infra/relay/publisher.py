"""Pipelined JetStream publishing: single messages or atomic batches, each ack a future."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from infra.relay.envelope import Message

MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQUENCE = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"
NO_RESPONDERS = "503"
MAX_BATCH = 1000  # nats-server's default limit of messages per atomic batch
BATCH_HAS_DUPLICATE = 10201  # JSAtomicPublishContainsDuplicateMessageErr: a message is stored


@dataclass(frozen=True)
class PubAck:
    """JetStream stored the message (or had it already: `duplicate`) at `seq`."""

    seq: int
    duplicate: bool


class PublishFailed(Exception):
    """JetStream refused a message, or the connection went before it answered."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code  # JetStream's err_code, when it refused


class JetStreamPublisher:
    """Publishes with a reply inbox of its own and resolves one future per message.

    nats-py's `publish_async` cannot report a refusal: the error is raised inside its reply
    callback and the future never completes. Refusals matter here (a broken chain of expected
    ids means a message was lost in flight), so acknowledgements are parsed here instead.
    """

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future[PubAck]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def publish(
        self,
        subject: str,
        payload: bytes,
        msg_id: str,
        expected_last: str | None = None,
        *,
        expected_seq: int | None = None,
    ) -> asyncio.Future[PubAck]:
        """Send one message; the future resolves when JetStream acknowledges it.

        `expected_last` (a message id) or `expected_seq` (a stream sequence) is what the
        stream's last message must be for JetStream to store this one.
        """
        headers = {MSG_ID: msg_id}
        if expected_last is not None:
            headers[EXPECTED_LAST_MSG_ID] = expected_last
        if expected_seq is not None:
            headers[EXPECTED_LAST_SEQUENCE] = str(expected_seq)
        reply, future = self._expect_reply()
        await self.nc.publish(subject, payload, reply=reply, headers=headers)
        return future

    async def publish_batch(
        self, messages: Sequence[Message], expected_seq: int
    ) -> asyncio.Future[PubAck]:
        """Send an atomic batch, stored whole or not at all; one future for its commit.

        JetStream stores the batch only if the stream's last sequence is `expected_seq` and no
        message's id is already stored (then it refuses with BATCH_HAS_DUPLICATE instead of
        dropping that message); with `sync_interval: always` it fsyncs once per batch.
        """
        assert 0 < len(messages) <= MAX_BATCH
        batch_id = uuid.uuid4().hex  # a fresh id per attempt: a lost attempt is never resumed
        *staged, commit = messages
        for number, message in enumerate(messages, 1):
            headers = {MSG_ID: message.id, BATCH_ID: batch_id, BATCH_SEQUENCE: str(number)}
            if number == 1:
                headers[EXPECTED_LAST_SEQUENCE] = str(expected_seq)
            if number <= len(staged):
                await self.nc.publish(message.subject, message.payload, headers=headers)
        headers[BATCH_COMMIT] = "1"
        reply, future = self._expect_reply()
        await self.nc.publish(commit.subject, commit.payload, reply=reply, headers=headers)
        return future

    def _expect_reply(self) -> tuple[str, asyncio.Future[PubAck]]:
        token = str(next(self._tokens))
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        return f"{self._prefix}.{token}", future

    def fail_all(self, reason: str) -> None:
        """Fail every outstanding future (the connection is gone: no answer will come)."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(PublishFailed(reason))

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject.rsplit(".", 1)[-1], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            future.set_exception(PublishFailed(f"no stream captures {msg.subject!r}"))
            return
        try:
            answer = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            future.set_exception(PublishFailed(f"unreadable acknowledgement {msg.data!r}"))
            return
        if "error" in answer:
            error = answer["error"]
            reason, code = str(error.get("description")), error.get("err_code")
            future.set_exception(PublishFailed(reason, code))
        else:
            future.set_result(PubAck(int(answer["seq"]), bool(answer.get("duplicate"))))
