"""Read-model queries on asyncio connections: the API's hot reads, without a thread per request.

The same views and statements as `ReadModelView.fetch` and `wait_for`, awaited instead of
blocking. A pool belongs to the event loop it was opened on, so the API opens one per loop in its
lifespan (`open_pool`); a reader without a pool connects per query (correct, just slower).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Composed
from psycopg_pool import AsyncConnectionPool

from projections.readmodel import APPLICATION_NAME, ReadModelNotCaughtUp, ReadModelView, Row

WARM_CONNECTIONS = 4  # kept open even when idle, so a burst does not wait for new ones


@dataclass(frozen=True)
class AsyncReader:
    """Runs read-model queries on `pool`, or on a connection of its own when there is none."""

    connect_kwargs: Mapping[str, Any]
    pool: AsyncConnectionPool[AsyncConnection[DictRow]] | None = field(default=None, compare=False)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[DictRow]]:
        if self.pool is not None:
            async with self.pool.connection() as conn:
                yield conn
            return
        async with await AsyncConnection.connect(
            **self.connect_kwargs, autocommit=True, row_factory=dict_row
        ) as conn:
            yield conn

    async def fetch(
        self, statement: Composed | SQL | bytes, params: Sequence[Any] = ()
    ) -> list[Row]:
        """Run a query on the readers' views and return its rows as dicts."""
        async with self.connection() as conn, conn.cursor() as curs:
            await curs.execute(statement, params)
            return list(await curs.fetchall())

    async def wait_for(
        self, view: type[ReadModelView], min_position: int | None, timeout: float = 5.0
    ) -> None:
        """Wait until the view's active version has processed `min_position` (read-your-writes)."""
        if not min_position:
            return
        deadline = time.monotonic() + timeout
        statement = SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
            view.reader("tracking")
        )
        delay = 0.005
        while True:
            rows = await self.fetch(statement, (APPLICATION_NAME,))
            if rows and rows[0]["notification_id"] >= min_position:
                return
            if time.monotonic() >= deadline:
                raise ReadModelNotCaughtUp(view.name, min_position)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    @asynccontextmanager
    async def open_pool(self, max_size: int, timeout: float = 5.0) -> AsyncIterator[AsyncReader]:
        """A reader on a pool of up to `max_size` connections of the running loop, closed after.

        The pool fills in the background: a database that is down does not stop the API starting
        (a query then fails after `timeout` seconds without a connection).
        """
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
            # Statements are prepared on first use, not the fifth: planning the 360° statement
            # costs more than running it, and a pool spreads the first uses over its connections.
            kwargs={
                **self.connect_kwargs,
                "autocommit": True,
                "row_factory": dict_row,
                "prepare_threshold": 0,
            },
            connection_class=AsyncConnection[DictRow],
            min_size=min(WARM_CONNECTIONS, max_size),
            max_size=max_size,
            open=False,
            timeout=timeout,
            name="api-reads",
        )
        await pool.open(wait=False)
        try:
            yield AsyncReader(self.connect_kwargs, pool)
        finally:
            await pool.close()
