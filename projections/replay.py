"""Building fresh versions of read models from the whole log in one pass.

Each page of the log is read once and each event decoded once, then fed to every read model being
built: in memory for those with a `BulkRebuild` (`projections.bulk`), through their handlers,
one transaction per page, for the others. Both leave the rows the live projection leaves.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from psycopg import Cursor
from psycopg.rows import DictRow

from domain.shared import DomainEvent
from projections.bulk import BulkRebuild
from projections.catchup import PASS_THROUGH, EventFailed, Progress, apply_batch
from projections.readmodel import ReadModelProjection

REBUILD_PAGE = 10_000


def replay(
    projections: Sequence[ReadModelProjection],
    recorder: ApplicationRecorder,
    mapper: Mapper[Any],
    *,
    page_size: int = REBUILD_PAGE,
    on_page: Progress | None = None,
    pages: Iterable[Page] | None = None,
) -> int:
    """Feed the log up to its head to these projections, whose views are new and empty.

    Returns the position they all end at. Positions are passed over safely as in `catch_up`.
    `pages` replaces reading the log (`log_pages`): a rebuild's second process is sent them.
    """
    for projection in projections:
        if projection.view.position() != 0:
            raise NotEmpty(projection.name)
    feeds: list[Feed] = [
        BulkFeed(p, p.bulk.for_view(p.view)) if p.bulk else HandlerFeed(p) for p in projections
    ]
    topics = topics_of(projections)
    try:
        with _no_cycle_collection():
            return _feed(
                feeds,
                log_pages(recorder, topics, page_size) if pages is None else pages,
                frozenset(topics),
                ", ".join(p.name for p in projections),
                mapper,
                on_page,
            )
    finally:
        for feed in feeds:
            feed.close()


# A page of the log: its head when read, the notifications, and the position they take one to
# (beyond the last of them when the events after it up to that position are of other topics).
Page = tuple[int, Sequence[Notification], int]


def topics_of(projections: Iterable[ReadModelProjection]) -> list[str]:
    """The topics of the events these projections handle, sorted."""
    return sorted({topic for p in projections for topic in p.topics})


def log_pages(
    recorder: ApplicationRecorder,
    topics: Sequence[str],
    page_size: int = REBUILD_PAGE,
    forward: Callable[[Page], None] | None = None,
) -> Iterator[Page]:
    """The log's events of these topics up to its head, page by page; each page is read on a
    thread while the one before is worked on, and handed to `forward` there (if given), down
    to the last read, which finds the position at the head."""

    def read(position: int) -> Page:
        head = recorder.max_notification_id() or 0
        notifications: Sequence[Notification] = []
        if position < head:
            notifications = recorder.select_notifications(
                start=position, limit=page_size, stop=head, topics=topics, inclusive_of_start=False
            )
        new_position = notifications[-1].id if len(notifications) == page_size else head
        page = (head, notifications, new_position)
        if forward is not None:
            forward(page)
        return page

    with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reader:
        position = 0
        reading = reader.submit(read, position)
        while True:
            page = reading.result()
            head, _, new_position = page
            if position >= head:
                return
            reading = reader.submit(read, new_position)
            yield page
            position = new_position


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector: a replay keeps every record's rows in memory and creates
    no garbage cycles, so each collection would only walk a heap that grows with the log
    (a fifth of the pass). Reference counting still frees everything else. Only when the
    replay runs on the main thread (`crm projections rebuild`, a rebuild's second process):
    a live process rebuilding a read model from a worker thread keeps collecting for the
    rest of its threads."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _feed(
    feeds: Sequence[Feed],
    pages: Iterable[Page],
    topics: frozenset[str],
    names: str,
    mapper: Mapper[Any],
    on_page: Progress | None,
) -> int:
    position = applied = 0
    for head, page, new_position in pages:
        notifications = [n for n in page if n.topic in topics]  # a shared page has others'
        events = [_decode(n, mapper, names) for n in notifications]
        for feed in feeds:
            feed.page(notifications, events, position, new_position, mapper)
        applied += len(notifications)
        position = new_position
        if on_page is not None:
            on_page(position, head, applied)
    for feed in feeds:
        feed.finish(position)
    return position


class Feed(Protocol):
    def page(
        self,
        notifications: Sequence[Notification],
        events: Sequence[DomainEvent],
        start: int,
        position: int,
        mapper: Mapper[Any],
    ) -> None: ...

    def finish(self, position: int) -> None: ...

    def close(self) -> None: ...


class HandlerFeed:
    """A read model without a bulk rebuild: its handlers, one transaction per page."""

    def __init__(self, projection: ReadModelProjection) -> None:
        self.projection = projection
        projection.view.create_indexes()  # its handlers' statements may need them

    def page(
        self,
        notifications: Sequence[Notification],
        events: Sequence[DomainEvent],
        start: int,
        position: int,
        mapper: Mapper[Any],
    ) -> None:
        handled = self.projection.handlers
        mine = [n for n, e in zip(notifications, events, strict=True) if type(e) in handled]
        try:
            self.projection.view.write_batch(
                self.projection,
                [e for e in events if type(e) in handled],
                position,
                start=start,
                live=False,
                positions=[n.id for n in mine],
            )
        except PASS_THROUGH:
            raise
        except Exception:  # again, event by event, to name the one that fails
            apply_batch(self.projection, mine, mapper, start, position, live=False)

    def finish(self, position: int) -> None:
        pass  # every page recorded its position

    def close(self) -> None:
        pass


class BulkFeed:
    """A read model with a bulk rebuild: rows in memory, appended rows COPYed after each page.

    The COPY of a page's appended rows runs on a thread of its own while the next page is
    applied, so the database's work overlaps ours; at most one page waits to be written.
    """

    def __init__(self, projection: ReadModelProjection, bulk: BulkRebuild) -> None:
        self.projection = projection
        self.bulk = bulk
        self.writer = ThreadPoolExecutor(1, thread_name_prefix=f"rebuild-{projection.name}")
        self.writing: Future[None] | None = None

    def page(
        self,
        notifications: Sequence[Notification],
        events: Sequence[DomainEvent],
        start: int,
        position: int,
        mapper: Mapper[Any],
    ) -> None:
        handlers, bulk = self.bulk.handlers, self.bulk
        for notification, event in zip(notifications, events, strict=True):
            handler = handlers.get(type(event))
            if handler is not None:  # `bulk.apply`, inlined: it runs for every event
                bulk.position = notification.id
                try:
                    handler(bulk, event)
                except Exception as error:
                    raise EventFailed(self.projection.name, notification, error) from error
        self._written()
        if any(stream.pending for stream in bulk.stream_of.values()):
            self.writing = self.writer.submit(self._write, bulk.take())

    def finish(self, position: int) -> None:
        self._written()
        self.projection.view.write_rows(self.bulk.finish, position, start=0)
        self.projection.view.create_indexes()  # once all rows are in (a no-op if they exist)

    def close(self) -> None:
        self.writer.shutdown(wait=True)

    def _write(self, write: Callable[[Cursor[DictRow]], None]) -> None:
        with self.projection.view.datastore.transaction(commit=True) as curs:
            write(curs)

    def _written(self) -> None:
        """Wait for the page being written (raising its error, if it failed)."""
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()


def _decode(notification: Notification, mapper: Mapper[Any], names: str) -> DomainEvent:
    try:
        event = mapper.to_domain_event(notification)
    except Exception as error:
        raise EventFailed(names, notification, error) from error
    assert isinstance(event, DomainEvent)
    return event


class NotEmpty(Exception):
    """A replay must start from an empty version of the read model."""

    def __init__(self, name: str) -> None:
        super().__init__(f"read model {name} is not at position zero; replay builds new versions")
