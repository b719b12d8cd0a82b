"""`crm stream tail`: follow the stream with an ephemeral ordered consumer and print messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import nats
import orjson
from nats.js.api import ConsumerConfig, DeliverPolicy


@dataclass(frozen=True)
class Where:
    """Where in the stream to start: a sequence, a time, or (neither) only new messages."""

    from_seq: int | None = None
    from_time: datetime | None = None

    def consumer_config(self) -> ConsumerConfig:
        if self.from_seq is not None:
            return ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.from_seq
            )
        if self.from_time is not None:
            return ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=self.from_time
            )
        return ConsumerConfig(deliver_policy=DeliverPolicy.NEW)


def describe_message(seq: int, subject: str, payload: bytes) -> str:
    """One line for a person: sequence, time, subject, record@version, actor and the data."""
    try:
        event = orjson.loads(payload)
        data = orjson.dumps(event.get("data")).decode()
        return (
            f"#{seq} {event.get('time')} {subject} {event.get('subject')}"
            f"@{event.get('aggregateversion')} by {event.get('actor')} {data}"
        )
    except (orjson.JSONDecodeError, AttributeError):
        return f"#{seq} {subject} {payload[:200]!r}"


async def tail(
    nats_url: str,
    stream: str,
    subject: str,
    where: Where,
    show: Callable[[int, str, bytes], None],
    *,
    count: int | None = None,
    idle_timeout: float | None = None,
) -> int:
    """Call `show(seq, subject, payload)` per message until `count` or `idle_timeout`; returns n."""
    nc = await nats.connect(nats_url, name="crm-stream-tail")
    shown = 0
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subject, stream=stream, ordered_consumer=True, config=where.consumer_config()
        )
        while count is None or shown < count:
            try:
                msg = await sub.next_msg(timeout=idle_timeout or 3600.0)
            except (TimeoutError, nats.errors.TimeoutError):
                if idle_timeout is not None:
                    break
                continue
            show(msg.metadata.sequence.stream, msg.subject, msg.data)
            shown += 1
        await sub.unsubscribe()
    finally:
        await nc.close()
    return shown
