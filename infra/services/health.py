"""Health checks that answer with a ServiceStatus and never raise."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import nats
import psycopg
from nats.errors import NoServersError

from infra.services.status import ServiceStatus, describe, redact_url

T = TypeVar("T")


def check_postgres(url: str, timeout: float = 2.0) -> ServiceStatus:
    """Connect to PostgreSQL at `url` and ask for its version."""
    shown = redact_url(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=_whole_seconds(timeout)) as conn:
            row = conn.execute("SELECT version()").fetchone()
    except Exception as error:  # a health check reports every failure instead of raising it
        return ServiceStatus("postgres", running=False, url=shown, detail=describe(error))
    version = str(row[0]) if row else "unknown version"
    return ServiceStatus("postgres", running=True, url=shown, detail=version)


def check_nats(url: str, timeout: float = 2.0) -> ServiceStatus:
    """Connect to NATS at `url` and ask JetStream for the account's info."""
    shown = redact_url(url)
    try:
        detail = _run(asyncio.wait_for(_jetstream_summary(url, timeout), timeout))
    except TimeoutError:
        return ServiceStatus("nats", running=False, url=shown, detail=f"no answer in {timeout:g}s")
    except Exception as error:  # a health check reports every failure instead of raising it
        return ServiceStatus("nats", running=False, url=shown, detail=describe(error))
    return ServiceStatus("nats", running=True, url=shown, detail=detail)


async def _jetstream_summary(url: str, timeout: float) -> str:
    seen: list[Exception] = []

    async def remember(error: Exception) -> None:
        """Keep the cause for the status; nats-py would otherwise log it."""
        seen.append(error)

    try:
        client = await nats.connect(
            url,
            connect_timeout=_whole_seconds(timeout),
            # nats-py retries forever unless attempts are > 0; one quick retry, then give up.
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            allow_reconnect=False,
            error_cb=remember,
        )
    except NoServersError as error:
        raise (seen[-1] if seen else error) from None
    try:
        account = await client.jetstream(timeout=timeout).account_info()
        version = client.connected_server_version
        return (
            f"nats-server {version.major}.{version.minor}.{version.patch}, "
            f"JetStream with {account.streams} streams"
        )
    finally:
        await client.close()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    # Callers are sync, but some of them (an async route) already run an event loop in this thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _whole_seconds(timeout: float) -> int:
    return max(1, math.ceil(timeout))
