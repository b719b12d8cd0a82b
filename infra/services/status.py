"""What a service looks like from the outside, and how its failures are reported."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class ServiceStatus:
    """One service as seen by a health check: does it answer, where, what it said, which process."""

    name: str
    running: bool
    url: str | None
    detail: str
    pid: int | None = None


def redact_url(url: str) -> str:
    """`url` with its password masked, fit for logs and `crm services status`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def describe(error: BaseException) -> str:
    """The first line of an error's message, or its type when it has none (timeouts)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class ServiceError(RuntimeError):
    """An embedded server could not be started or stopped."""
