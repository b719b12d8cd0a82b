"""Annotated dependencies the routes ask for; the composition root fills `app.state.services`.

Dependencies that neither block nor wait are `async`, so FastAPI runs them on the event loop
instead of handing each one to the threadpool (a thread hop per dependency per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import Depends, Header, HTTPException, Query, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from api.access import Action, Resource, permits, visibility
from api.ports import AccessEntry, AccessLog
from api.security import InvalidToken, Principal
from api.services import ApiServices, Health, HealthCheck, ReadModels
from domain.application import CRM
from projections.visibility import Visibility

__all__ = ["Health", "HealthCheck"]

# Log positions are PostgreSQL bigints.
MAX_POSITION = 2**63 - 1

oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def services_of(request: Request) -> ApiServices:
    """What the composition root handed the app (for dependencies on the hot path, which
    read it straight from the request: each nested dependency costs FastAPI work per request)."""
    services: ApiServices = request.app.state.services
    return services


async def get_services(request: Request) -> ApiServices:
    return services_of(request)


Services = Annotated[ApiServices, Depends(get_services)]


async def get_crm(request: Request) -> CRM:
    return services_of(request).crm


async def get_read_models(request: Request) -> ReadModels:
    return services_of(request).read_models


async def get_health_checks(request: Request) -> Mapping[str, HealthCheck]:
    return services_of(request).health_checks


async def get_access_log(request: Request) -> AccessLog:
    return services_of(request).access_log


CRMDep = Annotated[CRM, Depends(get_crm)]
ReadModelsDep = Annotated[ReadModels, Depends(get_read_models)]
HealthChecks = Annotated[Mapping[str, HealthCheck], Depends(get_health_checks)]
AccessLogDep = Annotated[AccessLog, Depends(get_access_log)]


async def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    """The caller, from the bearer token; 401 without a valid one."""
    unauthorized = HTTPException(
        401, "Missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
    )
    if token is None:
        raise unauthorized
    try:
        return services_of(request).tokens.read(token)
    except InvalidToken:
        raise unauthorized from None


CurrentUser = Annotated[Principal, Depends(get_current_user)]


class Allow:
    """Route guard: the caller's role may perform `action` on `resource` (else 403).

    Resolves to the caller's `Visibility` over that resource, which the route must apply to
    every record it reads or changes. The matrix test finds these guards on every route.
    """

    def __init__(self, resource: Resource, action: Action) -> None:
        self.resource = resource
        self.action = action

    async def __call__(self, user: CurrentUser) -> Visibility:
        if not permits(user, self.resource, self.action):
            raise HTTPException(403, f"A {user.role} may not {self.action} {self.resource}")
        return visibility(user, self.resource)


def allow(resource: Resource, action: Action) -> Any:
    """`Depends` on the guard for (resource, action)."""
    return Depends(Allow(resource, action))


@dataclass(frozen=True)
class Reading:
    """What a read of personal data needs: who reads, which records they may see, and the
    recorder that writes the read to the access log."""

    user: Principal
    visible: Visibility
    record_access: AccessRecorder


class AllowReading(Allow):
    """`Allow(resource, "read")` that also hands over the caller and their access recorder.

    One dependency where a route would otherwise ask for three (`CurrentUser`, the guard and
    `RecordAccess`): each costs FastAPI work on every request of the hottest reads.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource, "read")

    async def __call__(self, request: Request, user: CurrentUser) -> Reading:  # type: ignore[override]
        visible = await super().__call__(user)
        return Reading(user, visible, access_recorder(request, user))


def allow_reading(resource: Resource) -> Any:
    """`Depends` on the read guard for `resource` that also yields a `Reading`."""
    return Depends(AllowReading(resource))


class Public:
    """Marks a route that needs no login (health, login, metrics), for the matrix test."""

    async def __call__(self) -> None:
        return None


PUBLIC: Any = Depends(Public())


class SignedIn:
    """Marks a route any signed-in user may call, whatever their role (e.g. /auth/me)."""

    async def __call__(self, user: CurrentUser) -> Principal:
        return user


SIGNED_IN: Any = Depends(SignedIn())


async def get_min_position(
    request: Request,
    min_position: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_POSITION,
            description="Wait until the read model has processed this log position.",
        ),
    ] = None,
    x_min_position: Annotated[int | None, Header(ge=0, le=MAX_POSITION)] = None,
) -> int | None:
    """Read-your-writes: the position of a write the client made (query wins over header).

    A position beyond the log's head was never handed out by a command: 422 at once rather
    than a wait that cannot end well. Only then is the log asked (in a thread): a request
    without a position never leaves the event loop for it.
    """
    position = min_position if min_position is not None else x_min_position
    if position:
        recorder = services_of(request).crm.recorder
        head = await run_in_threadpool(recorder.max_notification_id) or 0
        if position > head:
            raise HTTPException(
                422, f"min_position {position} is beyond the end of the log ({head})"
            )
    return position


MinPosition = Annotated[int | None, Depends(get_min_position)]


async def get_expected_version(
    if_match: Annotated[
        str | None,
        Header(description='The record version the command is based on: `"<version>"`.'),
    ] = None,
) -> int | None:
    """`If-Match: "3"` -> 3 (weak `W/"3"` accepted, `*` means any version)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit() and len(tag) <= 19):
        raise HTTPException(422, 'If-Match must be an entity tag holding a version, such as "3"')
    return int(tag)


ExpectedVersion = Annotated[int | None, Depends(get_expected_version)]


async def get_correlation_id(
    x_correlation_id: Annotated[UUID | None, Header()] = None,
) -> UUID:
    """The caller's correlation id (X-Correlation-ID), or a new one per request."""
    return x_correlation_id or uuid4()


CorrelationId = Annotated[UUID, Depends(get_correlation_id)]

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[
    str | None, Query(description="Opaque cursor from the previous page's `next_cursor`.")
]


@dataclass
class AccessRecorder:
    """Writes reads of personal data to the access log, with who, role, IP and user agent."""

    log: AccessLog
    user: Principal
    ip: str | None
    user_agent: str | None

    def __call__(
        self, action: str, record_kind: str, record_id: UUID | None, **details: Any
    ) -> None:
        self.log.record(
            AccessEntry(
                username=self.user.username,
                role=self.user.role,
                action=action,
                record_kind=record_kind,
                record_id=record_id,
                at=datetime.now(UTC),
                ip=self.ip,
                user_agent=self.user_agent,
                details=details,
            )
        )


def access_recorder(request: Request, user: Principal) -> AccessRecorder:
    """The access recorder of `user`'s reads in this request (its client's IP and agent)."""
    ip = request.client.host if request.client else None
    log = services_of(request).access_log
    return AccessRecorder(log, user, ip, request.headers.get("user-agent"))


async def get_access_recorder(request: Request, user: CurrentUser) -> AccessRecorder:
    return access_recorder(request, user)


RecordAccess = Annotated[AccessRecorder, Depends(get_access_recorder)]
