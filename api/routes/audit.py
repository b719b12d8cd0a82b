"""Audit: a record's events and past states, the global log, and the access log (read the log).

Auditors and admins only. Every read of event payloads is written to the access log; personal data
in payloads, states and the access log is masked for readers without the right to it. The routes
read the event log itself, where every committed write is visible at once, so `min_position`
is accepted for uniformity and always already met.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict

from api.access import mask_document
from api.deps import (
    MAX_POSITION,
    AccessLogDep,
    CRMDep,
    CurrentUser,
    Cursor,
    Limit,
    MinPosition,
    RecordAccess,
    allow,
)
from api.errors import QUERY_PROBLEMS
from api.security import Principal
from domain.application import CRM
from domain.customer import Customer
from domain.lead import Lead
from domain.opportunity import Opportunity
from domain.shared import Aggregate, NotFound
from domain.ticket import Ticket
from projections.event_log import LogFilter, head, read_log, record_log
from projections.pagination import decode_cursor, encode_cursor
from projections.visibility import Visibility

router = APIRouter(prefix="/audit", tags=["audit"])

Auditable = Annotated[Visibility, allow("audit", "read")]

Kind = Literal["customer", "lead", "opportunity", "ticket"]
KINDS: dict[str, type[Aggregate]] = {
    "customer": Customer,
    "lead": Lead,
    "opportunity": Opportunity,
    "ticket": Ticket,
}
NDJSON = "application/x-ndjson"
LOG_CURSOR = "audit-events"

RECORD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
EVENT_EXAMPLE: dict[str, Any] = {
    "position": 1042,
    "id": "5d1f3a52-1d0e-5c57-9a0c-3c1c2e7d9f10",
    "type": "crm.lead.qualified.v1",
    "record_id": RECORD_ID,
    "version": 3,
    "time": "2025-03-14T09:26:53.589793+00:00",
    "actor": "user:alice",
    "correlation_id": "8a9c6c1e-3f0b-4c5e-9f5e-0c6b1d2a3e4f",
    "causation_id": None,
    "payload": {},
}


class EventPublic(BaseModel):
    """One committed event: where it is in the log, whose it is, who caused it, what it says."""

    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE]})

    position: int
    id: UUID
    type: str
    record_id: UUID
    version: int
    time: datetime
    actor: str
    correlation_id: UUID
    causation_id: UUID | None
    payload: dict[str, Any]


class RecordHistoryPublic(BaseModel):
    """Every event of one record, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "lead", "id": RECORD_ID, "data": [EVENT_EXAMPLE]}]}
    )

    kind: Kind
    id: UUID
    data: list[EventPublic]


class RecordStatePublic(BaseModel):
    """A record as it was at a version or an instant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "lead",
                    "id": RECORD_ID,
                    "version": 2,
                    "as_of": "2025-03-14T09:26:53.589793+00:00",
                    "state": {"id": RECORD_ID, "version": 2, "status": "new"},
                }
            ]
        }
    )

    kind: Kind
    id: UUID
    version: int
    as_of: datetime  # the time of the event that made this version
    state: dict[str, Any]


class EventsPublic(BaseModel):
    """A page of the global log, in position order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": [EVENT_EXAMPLE], "next_cursor": None}]}
    )

    data: list[EventPublic]
    next_cursor: str | None


class AccessEntryPublic(BaseModel):
    """One read of personal data."""

    id: int
    at: datetime
    username: str
    role: str
    action: str
    record_kind: str
    record_id: UUID | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class AccessEntriesPublic(BaseModel):
    """A page of the access log, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "id": 7,
                            "at": "2025-03-14T09:26:53.589793+00:00",
                            "username": "alice",
                            "role": "sales",
                            "action": "customer.read",
                            "record_kind": "customer",
                            "record_id": RECORD_ID,
                            "ip": "10.0.0.7",
                            "user_agent": "Mozilla/5.0",
                            "details": {},
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    data: list[AccessEntryPublic]
    next_cursor: str | None


def _record_kind(visible: Visibility, kind: str, record_id: UUID) -> type[Aggregate]:
    # Record-level rules for audit reads exist only for unrestricted readers (admin, auditor):
    # a role given audit access with restrictions sees no record until such rules are written.
    if not visible.unrestricted:
        raise NotFound(kind, record_id)
    return KINDS[kind]


@router.get(
    "/{kind}/{record_id}/events", response_model=RecordHistoryPublic, responses=QUERY_PROBLEMS
)
def read_record_events(
    kind: Kind,
    record_id: UUID,
    crm: CRMDep,
    user: CurrentUser,
    visible: Auditable,
    record_access: RecordAccess,
    min_position: MinPosition = None,
) -> RecordHistoryPublic:
    """Every event of the record, with position, time, actor, correlation, causation, payload."""
    crm.check_kind(_record_kind(visible, kind, record_id), record_id)
    entries = record_log(crm.recorder, crm.mapper, record_id)
    record_access("audit.events", kind, record_id)
    return RecordHistoryPublic(
        kind=kind,
        id=record_id,
        data=[EventPublic.model_validate(mask_document(user, e.envelope())) for e in entries],
    )


@router.get("/{kind}/{record_id}/state", response_model=RecordStatePublic, responses=QUERY_PROBLEMS)
def read_record_state(
    kind: Kind,
    record_id: UUID,
    crm: CRMDep,
    user: CurrentUser,
    visible: Auditable,
    record_access: RecordAccess,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="The version to show.")
    ] = None,
    at: Annotated[
        AwareDatetime | None, Query(description="The instant to show it at (ISO 8601, with zone).")
    ] = None,
    min_position: MinPosition = None,
) -> RecordStatePublic:
    """The record as it was at `version`, or at instant `at` (neither: as it is now)."""
    if version is not None and at is not None:
        raise HTTPException(422, "Give either version or at, not both")
    cls = _record_kind(visible, kind, record_id)
    record = crm.record_as_of(cls, record_id, version=version, at=at)
    record_access("audit.state", kind, record_id, version=record.version)
    return RecordStatePublic(
        kind=kind,
        id=record_id,
        version=record.version,
        as_of=record.modified_on,
        state=mask_document(user, record.state()),
    )


@router.get(
    "/events",
    response_model=EventsPublic,
    responses={
        **QUERY_PROBLEMS,
        200: {
            "description": f"A page of events; every matching event as {NDJSON} when asked for.",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
    },
)
def read_event_log(
    request: Request,
    crm: CRMDep,
    user: CurrentUser,
    visible: Auditable,
    record_access: RecordAccess,
    from_position: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="First position.")
    ] = None,
    to_position: Annotated[
        int | None, Query(ge=1, le=MAX_POSITION, description="Last position.")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="Events at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Events before.")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="Exact actor.")] = None,
    event_type: Annotated[
        str | None,
        Query(alias="type", max_length=200, description="Type-name prefix, e.g. `crm.lead.`."),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> Response | EventsPublic:
    """The global log in position order, filtered; `Accept: application/x-ndjson` streams every
    matching event up to `to_position` (or the head) as one JSON object a line, ignoring `limit`.

    Time and actor filters are applied while reading, so a page may hold fewer than `limit`
    events (even none) and still have a `next_cursor`: follow it until it is null.
    """
    if not visible.unrestricted:
        raise HTTPException(403, "Reading the whole log needs unrestricted visibility")
    after = (from_position or 1) - 1
    if cursor is not None:
        after = max(after, decode_cursor(cursor, [int], LOG_CURSOR)[0])
    log_head = head(crm.recorder)
    stop = log_head if to_position is None else min(to_position, log_head)
    where = LogFilter(type_prefix=event_type, actor=actor, since=since, until=until)
    record_access(
        "audit.log",
        "event_log",
        None,
        after=after,
        stop=stop,
        type=event_type,
        actor=actor,
        since=since,
        until=until,
    )
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(_ndjson(crm, user, after, stop, where), media_type=NDJSON)
    entries, position = read_log(
        crm.recorder, crm.mapper, after=after, stop=stop, limit=limit, where=where
    )
    return EventsPublic(
        data=[EventPublic.model_validate(mask_document(user, e.envelope())) for e in entries],
        next_cursor=encode_cursor([position], LOG_CURSOR) if position < stop else None,
    )


def _ndjson(crm: CRM, user: Principal, after: int, stop: int, where: LogFilter) -> Iterator[bytes]:
    position = after
    while position < stop:
        entries, position = read_log(
            crm.recorder, crm.mapper, after=position, stop=stop, limit=500, where=where
        )
        for entry in entries:
            yield orjson.dumps(mask_document(user, entry.envelope())) + b"\n"


@router.get("/access", response_model=AccessEntriesPublic, responses=QUERY_PROBLEMS)
def read_access_log(
    access_log: AccessLogDep,
    user: CurrentUser,
    visible: Auditable,
    username: Annotated[str | None, Query(max_length=64)] = None,
    record_id: UUID | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Reads at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Reads before.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> AccessEntriesPublic:
    """Who read which personal data, when, from where: newest first."""
    if not visible.unrestricted:
        raise HTTPException(403, "Reading the access log needs unrestricted visibility")
    rows, next_cursor = access_log.query(
        username=username,
        record_id=record_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return AccessEntriesPublic(
        data=[AccessEntryPublic.model_validate(mask_document(user, row)) for row in rows],
        next_cursor=next_cursor,
    )
