"""What the API needs from infrastructure, as protocols; infra/ provides the implementations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from api.security import Principal


class UserDirectory(Protocol):
    """The CRM's users and their argon2-hashed passwords."""

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user, when the password is theirs and the account is active; else None."""
        ...


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for replay under an idempotency key."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reservation:
    """The outcome of claiming an idempotency key."""

    state: str  # "new": go ahead; "done": replay `response`; "busy": in flight; "mismatch"
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    """Remembers the first response to each (user, key) for a retention period (24 h)."""

    def reserve(self, username: str, key: str, fingerprint: str) -> Reservation: ...

    def complete(self, username: str, key: str, response: StoredResponse) -> None: ...

    def release(self, username: str, key: str) -> None: ...


@dataclass(frozen=True)
class AccessEntry:
    """One read of personal data: who, in which role, which record, when, from where."""

    username: str
    role: str
    action: str  # e.g. "customer.read", "customer.timeline", "audit.events"
    record_kind: str
    record_id: UUID | None
    at: datetime
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] = field(default_factory=dict)


class AccessLog(Protocol):
    """Append-only log of reads of personal data, queryable by auditors."""

    def record(self, entry: AccessEntry) -> None: ...

    def close(self) -> None:
        """Make sure every recorded entry is stored."""
        ...

    def scrub(self, values: Sequence[str]) -> int:
        """Redact logged search terms that name an erased person (see docs/privacy.md)."""
        ...

    def query(
        self,
        *,
        username: str | None = None,
        record_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[Sequence[dict[str, Any]], str | None]: ...
