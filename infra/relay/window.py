"""Messages in flight, in log order: the position moves only over the acknowledged prefix."""

from __future__ import annotations

import asyncio
from collections import deque

from infra.relay.publisher import PubAck, PublishFailed


class AckWindow:
    """Tracks publishes by position; `position` is the end of the contiguous acknowledged run."""

    def __init__(self, position: int, ack_timeout: float) -> None:
        self.position = position
        self.ack_timeout = ack_timeout
        self.in_flight = 0
        self.stored = 0  # acknowledged as new since the last `take_stored`
        self.duplicates = 0  # acknowledged as already stored (re-publishes inside the window)
        self._entries: deque[tuple[int, asyncio.Future[PubAck] | None]] = deque()

    def skip(self, position: int) -> None:
        """An event that is not published: passed over once everything before it is acked."""
        self._entries.append((position, None))

    def add(self, position: int, future: asyncio.Future[PubAck]) -> None:
        self._entries.append((position, future))
        self.in_flight += 1

    async def settle(self, *, keep: int = 0) -> None:
        """Advance over what is acknowledged; wait until at most `keep` remain in flight.

        Raises PublishFailed when a message is refused or not acknowledged in time; the
        position then stays before it, so it is published again.
        """
        self._advance()
        while self.in_flight > keep:
            _, future = self._entries[0]
            assert future is not None  # _advance stops only at a pending publish
            try:
                await asyncio.wait_for(asyncio.shield(future), self.ack_timeout)
            except TimeoutError:
                raise PublishFailed(f"no acknowledgement in {self.ack_timeout:g}s") from None
            except PublishFailed:
                pass  # raised again, in order, by _advance
            self._advance()

    def take_stored(self) -> int:
        stored, self.stored = self.stored, 0
        return stored

    def _advance(self) -> None:
        entries = self._entries
        while entries and (entries[0][1] is None or entries[0][1].done()):
            position, future = entries[0]
            if future is not None:
                ack = future.result()  # raises if refused: the position stays before it
                self.in_flight -= 1
                if ack.duplicate:
                    self.duplicates += 1
                else:
                    self.stored += 1
            entries.popleft()
            self.position = position
