"""The event stream: committed events as Server-Sent Events, for integrators without NATS.

Each message is `id: <position>`, `event: <type>`, `data: <the event's JSON envelope>`. A client
resumes with `Last-Event-ID` (EventSource sends it when it reconnects). The stream polls the log,
backing off while idle; it closes after `idle_timeout` seconds without a matching event (clients
reconnect and resume), after `max_events`, or when the client goes away. Personal data in payloads
is masked for readers without the right to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event

from api.access import mask_document
from api.deps import MAX_POSITION, CRMDep, CurrentUser, RecordAccess, allow
from api.errors import problems
from api.security import Principal
from domain.application import CRM
from projections.event_log import LogFilter, head, read_log
from projections.visibility import Visibility

router = APIRouter(prefix="/events", tags=["events"])


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` from an iterator of encoded messages (FastAPI's own
    `EventStreamResponse` is for generator endpoints, which cannot answer 4xx once started)."""

    media_type = "text/event-stream"


Streamable = Annotated[Visibility, allow("events", "read")]

PAGE = 200
MIN_POLL, MAX_POLL = 0.05, 1.0  # seconds between looks at the log's head, while idle
HEARTBEAT = 5.0  # seconds: an idle stream sends a comment, so a gone client is noticed
RECONNECT_MS = 1000

EXAMPLE = (
    "retry: 1000\n\n"
    "event: crm.lead.qualified.v1\n"
    'data: {"position":1042,"type":"crm.lead.qualified.v1","record_id":"0f8f...","version":3,'
    '"time":"2025-03-14T09:26:53+00:00","actor":"user:alice","payload":{}}\n'
    "id: 1042\n\n"
)


@router.get(
    "/stream",
    response_class=EventStreamResponse,
    response_model=None,
    responses={
        **problems(401, 403, 422, 503),
        200: {
            "description": "Server-Sent Events, one per committed event, in position order.",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": EXAMPLE}},
        },
    },
)
def stream_events(
    crm: CRMDep,
    user: CurrentUser,
    visible: Streamable,
    record_access: RecordAccess,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID", ge=0, le=MAX_POSITION, description="Resume after this position."
        ),
    ] = None,
    from_position: Annotated[
        int | None,
        Query(
            alias="from",
            ge=0,
            le=MAX_POSITION,
            description="Start at this position (default: new events).",
        ),
    ] = None,
    event_type: Annotated[
        str | None,
        Query(alias="type", max_length=200, description="Type-name prefix, e.g. `crm.ticket.`."),
    ] = None,
    max_events: Annotated[
        int | None, Query(ge=0, le=100_000, description="Close after this many events.")
    ] = None,
    idle_timeout: Annotated[
        float, Query(ge=0, le=3600, description="Close after this many seconds without events.")
    ] = 30.0,
) -> EventStreamResponse:
    """Committed events from `Last-Event-ID` (exclusive) or `?from=` (inclusive), else from now."""
    if not visible.unrestricted:
        raise HTTPException(403, "The event stream needs unrestricted visibility")
    if last_event_id is not None:
        after = last_event_id
    elif from_position is not None:
        after = max(from_position - 1, 0)
    else:
        after = head(crm.recorder)
    # Each open stream holds a threadpool worker while it waits: cap them, so streams can
    # never starve the other routes of threads.
    if not OPEN_STREAMS.acquire(blocking=False):
        raise HTTPException(
            503, "Too many open event streams; retry later", headers={"Retry-After": "5"}
        )
    try:
        record_access("events.stream", "event_log", None, after=after, type=event_type)
    except BaseException:
        OPEN_STREAMS.release()
        raise
    where = LogFilter(type_prefix=event_type)
    return EventStreamResponse(
        _counted(_follow(crm, user, after, where, max_events, idle_timeout)),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


MAX_OPEN_STREAMS = 16  # of the threadpool's 40 workers
OPEN_STREAMS = threading.BoundedSemaphore(MAX_OPEN_STREAMS)


def _counted(stream: Iterator[bytes]) -> Iterator[bytes]:
    """`stream`, giving its slot back when it ends or the client goes away."""
    try:
        yield from stream
    finally:
        OPEN_STREAMS.release()


def _follow(
    crm: CRM,
    user: Principal,
    after: int,
    where: LogFilter,
    max_events: int | None,
    idle_timeout: float,
) -> Iterator[bytes]:
    # A sync generator: Starlette runs each step in the threadpool, off the event loop.
    yield format_sse_event(retry=RECONNECT_MS)
    sent = 0
    idle_since = last_beat = time.monotonic()
    delay = MIN_POLL
    while max_events is None or sent < max_events:
        log_head = head(crm.recorder)
        if log_head > after:
            wanted = PAGE if max_events is None else min(PAGE, max_events - sent)
            entries, after = read_log(
                crm.recorder, crm.mapper, after=after, stop=log_head, limit=wanted, where=where
            )
            for entry in entries:
                envelope = mask_document(user, entry.envelope())
                yield format_sse_event(
                    id=str(entry.position),
                    event=envelope["type"],
                    data_str=orjson.dumps(envelope).decode(),
                )
            sent += len(entries)
            if entries:
                idle_since = last_beat = time.monotonic()
                delay = MIN_POLL
            if entries or after < log_head:
                continue  # there may be more to read right away
        idle = time.monotonic() - idle_since
        if idle >= idle_timeout:
            return
        if time.monotonic() - last_beat >= HEARTBEAT:
            last_beat = time.monotonic()
            yield format_sse_event(comment="keep-alive")
        time.sleep(min(delay, idle_timeout - idle))
        delay = min(delay * 2, MAX_POLL)
