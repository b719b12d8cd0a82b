"""Feeding a read model from the log: page through new events, apply them in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Mapper,
    Notification,
    OperationalError,
)

from domain.shared import DomainEvent
from projections.readmodel import (
    ReadModelMoved,
    ReadModelProjection,
    ReadModelView,
    SchemaOutdated,
)

# Failures of the database or the network, not of an event: retried, never blamed on one.
TRANSIENT: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
# Not an event's fault either: the read model moved on, or needs a rebuild for a new schema.
PASS_THROUGH: tuple[type[Exception], ...] = (ReadModelMoved, SchemaOutdated, *TRANSIENT)

Progress = Callable[[int, int, int], None]  # (position, head, events applied so far)


def catch_up(
    projection: ReadModelProjection,
    recorder: ApplicationRecorder,
    mapper: Mapper[Any],
    *,
    batch_size: int = 1000,
    live: bool = True,
    on_batch: Progress | None = None,
    position: int | None = None,
) -> int:
    """Apply every event after the view's position up to the log's head; returns the position.

    Positions are safe to pass over: the event store commits in position order (table lock),
    so every event at or below the head read here is committed. Events of types the projection
    does not handle are filtered out by the query, and the position still advances past them:
    a stretch of the log with none of its events is recorded without waiting for the disk
    (`ReadModelView.advance`). A caller that keeps the returned position may pass it back as
    `position` to spare reading it; every write still checks it against the tracking row.
    """
    view: ReadModelView = projection.view
    if position is None:
        position = view.position()
    applied = 0
    while True:
        head = recorder.max_notification_id() or 0
        if position >= head:
            return position
        notifications = recorder.select_notifications(
            start=position,
            limit=batch_size,
            stop=head,
            topics=projection.topics,
            inclusive_of_start=False,
        )
        more = len(notifications) == batch_size
        new_position = notifications[-1].id if more else head
        if notifications:
            apply_batch(projection, notifications, mapper, position, new_position, live=live)
        else:
            view.advance(new_position, start=position, live=live)
        applied += len(notifications)
        position = new_position
        if on_batch is not None:
            on_batch(position, head, applied)
        if not more:
            return position  # at the head read above; later commits are the caller's next call


def apply_batch(
    projection: ReadModelProjection,
    notifications: Sequence[Notification],
    mapper: Mapper[Any],
    start: int,
    position: int,
    *,
    live: bool,
) -> None:
    """One transaction for the batch; if it fails, find and name the event that fails.

    Database outages are not the events' fault: they propagate as they are, so the runner
    retries without counting them against any event.
    """
    view = projection.view
    try:
        events = [mapper.to_domain_event(n) for n in notifications]
        positions = [n.id for n in notifications]
        view.write_batch(projection, events, position, start=start, live=live, positions=positions)
    except PASS_THROUGH:
        raise
    except Exception:
        at = start
        for notification in notifications:  # one by one, so the culprit is named
            event = _decode(notification, mapper, projection)
            try:
                view.write_batch(
                    projection,
                    [event],
                    notification.id,
                    start=at,
                    live=live,
                    positions=[notification.id],
                )
            except PASS_THROUGH:
                raise
            except Exception as error:
                raise EventFailed(projection.name, notification, error) from error
            at = notification.id
        if position > at:
            view.write_batch(projection, [], position, start=at, live=live)


def _decode(
    notification: Notification, mapper: Mapper[Any], projection: ReadModelProjection
) -> DomainEvent:
    try:
        event = mapper.to_domain_event(notification)
    except Exception as error:
        raise EventFailed(projection.name, notification, error) from error
    assert isinstance(event, DomainEvent)
    return event


class EventFailed(Exception):
    """One event cannot be applied to a read model; the events before it have been."""

    def __init__(self, read_model: str, notification: Notification, error: BaseException) -> None:
        super().__init__(
            f"{read_model}: event {notification.topic} of {notification.originator_id}"
            f"@{notification.originator_version} at position {notification.id} failed: "
            f"{type(error).__name__}: {error}"
        )
        self.read_model = read_model
        self.position = notification.id

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in a rebuild's second process, it crosses back pickled, without the event.
        return (_event_failed, (str(self), self.read_model, self.position))


def _event_failed(message: str, read_model: str, position: int) -> EventFailed:
    failed = EventFailed.__new__(EventFailed)
    Exception.__init__(failed, message)
    failed.read_model, failed.position = read_model, position
    return failed
