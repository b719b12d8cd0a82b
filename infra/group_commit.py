"""Group commit: saves that arrive while one is being written are written together next.

Leader/follower, no background thread. A save that finds nothing in flight is written at once
by its own thread (so a lone command waits for nobody). Saves that arrive meanwhile queue up;
when the write in flight returns, the oldest waiting thread is woken to lead, and it writes
every save queued by then (up to the limits) in one transaction. Each save gets back its own
result or its own error: `write` decides that per save (docs/adr/0014-group-commit.md).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")  # what is saved
R = TypeVar("R")  # what a save returns

QUEUED, LEADING, DONE = "queued", "leading", "done"


@dataclass(eq=False)
class Pending(Generic[T, R]):
    """One caller's save on its way: its item, then its result or its error."""

    item: T
    size: int
    result: R | None = None
    error: BaseException | None = None
    settled: bool = False
    state: str = QUEUED
    wake: threading.Event = field(default_factory=threading.Event)

    def succeed(self, result: R) -> None:
        self.result, self.settled = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.settled = error, True


class GroupCommit(Generic[T, R]):
    """Gathers concurrent saves into batches written by `write`.

    `write(batch)` must give every pending save of the batch a result or an error (it may
    raise only for a fault of the whole batch, which then fails every save in it).
    """

    def __init__(
        self,
        write: Callable[[Sequence[Pending[T, R]]], None],
        *,
        max_saves: int = 128,
        max_size: int = 5_000,
    ) -> None:
        self._write = write
        self.max_saves = max_saves
        self.max_size = max_size
        self._mutex = threading.Lock()
        self._queue: deque[Pending[T, R]] = deque()
        self._busy = False
        self.batches = 0  # written so far (for tests and figures)
        self.saves = 0

    def save(self, item: T, size: int) -> R:
        """Write `item` (`size` counts towards the batch limit) with whatever else is waiting."""
        pending: Pending[T, R] = Pending(item, size)
        with self._mutex:
            self._queue.append(pending)
            lead = not self._busy
            self._busy = True
        if not lead:
            try:
                pending.wake.wait()
            except BaseException:  # interrupted while queued: never leave the queue stuck
                self._withdraw(pending)
                raise
        if pending.state != DONE:  # nothing in flight, or woken to lead the next batch
            self._lead(pending)
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _withdraw(self, pending: Pending[T, R]) -> None:
        """Its caller stopped waiting: take the save out of the queue, passing on the lead if
        it had just been handed to it (a save already in a batch is written all the same)."""
        with self._mutex:
            if pending not in self._queue:
                return
            self._queue.remove(pending)
            if pending.state == LEADING:
                self._hand_over()

    def _hand_over(self) -> None:
        """Wake the oldest waiting save to lead the next batch, or go idle (mutex held)."""
        if self._queue:
            successor = self._queue[0]
            successor.state = LEADING
            successor.wake.set()
        else:
            self._busy = False

    def _lead(self, own: Pending[T, R]) -> None:
        batch: list[Pending[T, R]] = []
        try:
            batch = self._take()
            self._write(batch)
        except BaseException as error:  # a fault of the whole batch: every save fails with it
            for pending in batch:
                if not pending.settled:
                    pending.fail(
                        error
                        if pending is own or isinstance(error, Exception)
                        else RuntimeError(f"the thread writing this save stopped: {error!r}")
                    )
            if own not in batch:
                own.fail(error)
        else:
            for pending in batch:
                if not pending.settled:
                    pending.fail(RuntimeError("the batch write gave this save no result"))
        finally:
            with self._mutex:
                self.batches += 1
                self.saves += len(batch)
                self._hand_over()
            for pending in batch:
                pending.state = DONE
                pending.wake.set()

    def _take(self) -> list[Pending[T, R]]:
        """The oldest queued saves within the limits (at least one, however large)."""
        with self._mutex:
            batch = [self._queue.popleft()]
            size = batch[0].size
            while (
                self._queue
                and len(batch) < self.max_saves
                and size + self._queue[0].size <= self.max_size
            ):
                size += self._queue[0].size
                batch.append(self._queue.popleft())
        return batch
