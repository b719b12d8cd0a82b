"""Building fresh versions of read models from the whole log in one pass.

Each page of the log is read once and each event decoded once, then fed to every read model being
built: in memory for those with a `BulkRebuild` (`projections.bulk`), through their handlers,
one transaction per page, for the others. Both leave the rows the live projection leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
) -> int:
    """Feed the log up to its head to these projections, whose views are new and empty.

    Returns the position they all end at. Positions are passed over safely as in `catch_up`.
    """
    for projection in projections:
        if projection.view.position() != 0:
            raise NotEmpty(projection.name)
    feeds: list[Feed] = [
        BulkFeed(p, p.bulk.for_view(p.view)) if p.bulk else HandlerFeed(p) for p in projections
    ]
    topics = sorted({topic for p in projections for topic in p.topics})
    try:
        return _feed(
            feeds,
            topics,
            ", ".join(p.name for p in projections),
            recorder,
            mapper,
            page_size,
            on_page,
        )
    finally:
        for feed in feeds:
            feed.close()


def _feed(
    feeds: Sequence[Feed],
    topics: Sequence[str],
    names: str,
    recorder: ApplicationRecorder,
    mapper: Mapper[Any],
    page_size: int,
    on_page: Progress | None,
) -> int:
    position = applied = 0
    while True:
        head = recorder.max_notification_id() or 0
        if position >= head:
            break
        notifications = recorder.select_notifications(
            start=position, limit=page_size, stop=head, topics=topics, inclusive_of_start=False
        )
        new_position = notifications[-1].id if len(notifications) == page_size else head
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
            if type(event) in handlers:
                try:
                    bulk.apply(event, notification.id)
                except Exception as error:
                    raise EventFailed(self.projection.name, notification, error) from error
        self._written()
        if any(stream.pending for stream in bulk.stream_of.values()):
            self.writing = self.writer.submit(self._write, bulk.take())

    def finish(self, position: int) -> None:
        self._written()
        self.projection.view.write_rows(self.bulk.finish, position, start=0)

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
