"""Erasure in Customer 360°: the rows an erasure reaches, redacted in place as a rebuild reads them.

Reached (projections/erasure.py): customers and their contacts whose customer is erased; tickets
whose id or customer is; timeline and staged entries of erased customers, leads and tickets, and
of the tickets of erased customers. A timeline entry keeps its non-personal payload; its summary
is derived again from the redacted payload.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from domain.personal import REDACTED
from domain.shared import DomainEvent
from projections.customer_360.summaries import summary_of
from projections.customer_360.writes import event_row
from projections.erasure import redacted_column, redacted_payload, with_personal_data
from projections.readmodel import ReadModelView


def redacted_entry(type_name: str, summary: str, payload: dict[str, Any]) -> tuple[str, Any] | None:
    """A timeline entry's (summary, payload) once its record is erased; None if unchanged."""
    redacted = redacted_payload(type_name, copy.deepcopy(payload))
    if redacted == payload:
        return None
    event_type = type_name.rpartition(".v")[0]
    after = summary_of(event_type, redacted)
    # A summary without personal data stays as it was (a stored payload's dict keys may come
    # back in another order, so it is not derived again from it).
    unchanged = summary_of(event_type, payload) == after
    return (summary if unchanged else after), redacted


def erase_rows(view: ReadModelView, curs: Cursor[DictRow], ids: list[UUID], at: datetime) -> None:
    """Redact every row the erasure of `ids` reaches (live; see the module docstring)."""
    erased = Literal(REDACTED)
    curs.execute(
        SQL(
            "UPDATE {} SET name = {}, email = {}, phone = {}, id_number = {}, bank_account = {}, "
            "erased_at = coalesce(erased_at, %s), updated_at = %s WHERE customer_id = ANY(%s)"
        ).format(
            view.table("customers"),
            erased,
            redacted_column("email"),
            redacted_column("phone"),
            redacted_column("id_number"),
            redacted_column("bank_account"),
        ),
        (at, at, ids),
    )
    curs.execute(
        SQL("UPDATE {} SET name = {}, email = {}, phone = {} WHERE customer_id = ANY(%s)").format(
            view.table("contacts"), erased, redacted_column("email"), redacted_column("phone")
        ),
        (ids,),
    )
    curs.execute(
        SQL(
            "UPDATE {} SET subject = {} "
            "WHERE ticket_id = ANY(%(ids)s) OR customer_id = ANY(%(ids)s)"
        ).format(view.table("tickets"), erased),
        {"ids": ids},
    )
    params = {"ids": ids, "types": with_personal_data()}
    # Through the timeline's customer index: the erased customers, and the customers of the
    # erased tickets and converted leads.
    curs.execute(
        SQL(
            "SELECT event_id, type, summary, payload FROM {timeline} WHERE customer_id = ANY(array("
            "SELECT unnest(%(ids)s::uuid[]) "
            "UNION SELECT customer_id FROM {tickets} WHERE ticket_id = ANY(%(ids)s) "
            "UNION SELECT customer_id FROM {leads} WHERE lead_id = ANY(%(ids)s))) "
            "AND type = ANY(%(types)s) AND (aggregate_id = ANY(%(ids)s) "
            "OR (aggregate_type = 'ticket' AND customer_id = ANY(%(ids)s)))"
        ).format(
            timeline=view.table("timeline"),
            tickets=view.table("tickets"),
            leads=view.table("leads"),
        ),
        params,
    )
    _rewrite(view, curs, "timeline", curs.fetchall())
    curs.execute(
        SQL(
            "SELECT event_id, type, summary, payload FROM {} "
            "WHERE aggregate_id = ANY(%(ids)s) AND type = ANY(%(types)s)"
        ).format(view.table("lead_events")),
        params,
    )
    _rewrite(view, curs, "lead_events", curs.fetchall())


def _rewrite(view: ReadModelView, curs: Cursor[DictRow], table: str, rows: list[DictRow]) -> None:
    changed = [
        (row["event_id"], entry)
        for row in rows
        if (entry := redacted_entry(row["type"], row["summary"], row["payload"])) is not None
    ]
    if not changed:
        return
    curs.execute(
        SQL(
            "UPDATE {} t SET summary = v.summary, payload = v.payload::jsonb "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS v(event_id, summary, payload) "
            "WHERE t.event_id = v.event_id"
        ).format(view.table(table)),
        (
            [event_id for event_id, _ in changed],
            [summary for _, (summary, _) in changed],
            [orjson.dumps(payload).decode() for _, (_, payload) in changed],
        ),
    )


def record_lead_erasure(
    view: ReadModelView, curs: Cursor[DictRow], event: DomainEvent, position: int
) -> None:
    """A lead's erasure joins its customer's timeline if converted, else its staged events."""
    values = event_row(event, position)
    names = SQL(", ").join(map(Identifier, values))
    placeholders = SQL(", ").join(SQL("%s") for _ in values)
    curs.execute(
        SQL(
            "INSERT INTO {} ({}, customer_id, aggregate_type) "
            "SELECT {}, customer_id, 'lead' FROM {} WHERE lead_id = %s"
        ).format(view.table("timeline"), names, placeholders, view.table("leads")),
        [*values.values(), event.originator_id],
    )
    curs.execute(
        SQL(
            "INSERT INTO {} ({}) SELECT {} WHERE NOT EXISTS (SELECT 1 FROM {} WHERE lead_id = %s)"
        ).format(view.table("lead_events"), names, placeholders, view.table("leads")),
        [*values.values(), event.originator_id],
    )
