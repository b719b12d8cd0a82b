"""Runs the relay's asyncio loop in a thread of its own, beside the API and the projections."""

from __future__ import annotations

import asyncio
import logging
import threading

from infra.relay.relay import Relay

logger = logging.getLogger(__name__)


class RelayRunner:
    """Starts and stops a `Relay` in a daemon thread; the API's event loop is never touched."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.crashed: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="event-relay", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop finished on its own (a crash) in the meantime
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # kept for whoever supervises us; the thread just ends
            self.crashed = error
            logger.error("event relay stopped: %r", error)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        await self.relay.run(self._stopping)

    def __enter__(self) -> RelayRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
