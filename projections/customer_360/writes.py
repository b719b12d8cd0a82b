"""The row writes Customer360Projection's handlers share: changed rows, tags, contacts, timeline."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from domain.customer import Contact
from domain.shared import DomainEvent
from projections.customer_360.summaries import summarise
from projections.event_ids import event_id_of, event_id_text
from projections.readmodel import ReadModelView

CHILD_KEYS = {"opportunities": "opportunity_id", "tickets": "ticket_id"}
METADATA = set(DomainEvent.model_fields)  # timeline columns of their own, not payload


def change_customer(
    view: ReadModelView, curs: Cursor[DictRow], event: DomainEvent, position: int, **columns: Any
) -> None:
    """Change the customer's row (always its `updated_at`) and put the event on its timeline."""
    columns["updated_at"] = event.timestamp
    update(view, curs, "customers", "customer_id", event, columns)
    record(view, curs, event, position, event.originator_id)


def change_child(
    view: ReadModelView,
    curs: Cursor[DictRow],
    event: DomainEvent,
    position: int,
    table: str,
    **columns: Any,
) -> None:
    """Change an opportunity's or ticket's row; its customer's timeline gets the event."""
    key = CHILD_KEYS[table]
    if columns:
        update(view, curs, table, key, event, columns)
    # The customer is looked up inside the INSERT: no result to wait for in the pipeline.
    insert_event(
        view,
        curs,
        "timeline",
        event,
        position,
        aggregate_type=aggregate_type(type(event)),
        customer_of=(table, key),
    )


def update(
    view: ReadModelView,
    curs: Cursor[DictRow],
    table: str,
    key: str,
    event: DomainEvent,
    columns: dict[str, Any],
) -> None:
    """Set `columns` on the event's row of `table`."""
    statement = SQL("UPDATE {} SET {} WHERE {} = %s").format(
        view.table(table),
        SQL(", ").join(SQL("{} = %s").format(Identifier(column)) for column in columns),
        Identifier(key),
    )
    curs.execute(statement, [*columns.values(), event.originator_id])


def add_tags(
    view: ReadModelView, curs: Cursor[DictRow], customer_id: UUID, tags: Iterable[str]
) -> None:
    """Give the customer these tags (those it has already stay as they are)."""
    for tag in tags:
        curs.execute(
            SQL("INSERT INTO {} (customer_id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
                view.table("tags")
            ),
            (customer_id, tag),
        )


def add_contacts(
    view: ReadModelView, curs: Cursor[DictRow], customer_id: UUID, contacts: Iterable[Contact]
) -> None:
    """Add these contacts to the customer, or update them where it has them already."""
    for contact in contacts:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, contact_id, name, title, email, phone) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (customer_id, contact_id) "
                "DO UPDATE SET name = EXCLUDED.name, title = EXCLUDED.title, "
                "email = EXCLUDED.email, phone = EXCLUDED.phone"
            ).format(view.table("contacts")),
            (
                customer_id,
                contact.contact_id,
                contact.name,
                contact.title,
                contact.email,
                contact.phone,
            ),
        )


def record(
    view: ReadModelView,
    curs: Cursor[DictRow],
    event: DomainEvent,
    position: int,
    customer_id: UUID,
) -> None:
    """Put the event on the customer's timeline."""
    insert_event(
        view,
        curs,
        "timeline",
        event,
        position,
        customer_id=customer_id,
        aggregate_type=aggregate_type(type(event)),
    )


def insert_event(
    view: ReadModelView,
    curs: Cursor[DictRow],
    table: str,
    event: DomainEvent,
    position: int,
    customer_of: tuple[str, str] | None = None,
    **extra: Any,
) -> None:
    """Store the event as a row of `table`: the timeline, or the staging table of leads' events.

    `customer_of` (table, key column) takes the customer id from the event's row there; no
    row there, no timeline entry.
    """
    values = {**event_row(event, position), **extra}
    target = view.physical(table)
    if customer_of is None:
        curs.execute(_insert_statement(target, tuple(values), None), list(values.values()))
        return
    source, key = customer_of
    curs.execute(
        _insert_statement(target, tuple(values), (view.physical(source), key)),
        [*values.values(), event.originator_id],
    )


def event_row(event: DomainEvent, position: int, *, for_copy: bool = False) -> dict[str, Any]:
    """The columns of an event's timeline (or staging) row; the same live and in rebuilds.

    `for_copy` gives the event id, the time and the payload as text, which a COPY writes as it
    is (a `UUID`, a `datetime` and a `Jsonb` each take an adapter call per row, and cost more).
    """
    # `seq` is the event's log position: it keeps log order among events of one instant, and
    # a rebuild gives every event the same one.
    payload = event.model_dump(mode="json", exclude=METADATA)
    return {
        "event_id": event_id_text(event) if for_copy else event_id_of(event),
        "seq": position,
        "aggregate_id": event.originator_id,
        "aggregate_version": event.originator_version,
        "type": type(event).type_name(),
        "actor": event.actor,
        "at": event.timestamp.isoformat() if for_copy else event.timestamp,
        "summary": summarise(event, payload),
        "payload": json_text(payload) if for_copy else Jsonb(payload, dumps=json_text),
    }


def json_text(payload: Any) -> str:
    """A payload as JSON text."""
    return orjson.dumps(payload).decode()


@cache
def aggregate_type(event_type: type[DomainEvent]) -> str:
    """The timeline's name for the aggregate of this event type, e.g. `ticket`."""
    return event_type.TYPE.split(".")[1]


@lru_cache(maxsize=64)
def _insert_statement(
    table: str, columns: tuple[str, ...], customer_of: tuple[str, str] | None
) -> str:
    """The INSERT for a timeline or staging row, rendered once (it runs for every event)."""
    names = SQL(", ").join(map(Identifier, columns))
    placeholders = SQL(", ").join(SQL("%s") for _ in columns)
    if customer_of is None:
        statement = SQL("INSERT INTO {} ({}) VALUES ({})").format(
            Identifier(table), names, placeholders
        )
    else:
        source, key = customer_of
        statement = SQL(
            "INSERT INTO {} ({}, customer_id) SELECT {}, customer_id FROM {} WHERE {} = %s"
        ).format(Identifier(table), names, placeholders, Identifier(source), Identifier(key))
    return statement.as_string(None)
