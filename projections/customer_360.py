"""Customer 360°: profile, contacts, tags, consents, deals, tickets, leads and one timeline.

A merged duplicate lives on in its survivor: the survivor's counts and timeline cover every
customer merged into it (following chains of merges), gathered at query time, so a merge moves no
rows and a rebuild from zero gives the very same ones. Tags and contacts move with the
`CustomerAbsorbedDuplicate` event that carries them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import orjson
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg.types.json import Jsonb

from domain.customer import (
    Contact,
    CustomerAbsorbedDuplicate,
    CustomerConsentRecorded,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerInteractionLogged,
    CustomerMerged,
    CustomerOwnerAssigned,
    CustomerProfileUpdated,
    CustomerRegistered,
    CustomerTagged,
    CustomerTierChanged,
    CustomerUntagged,
)
from domain.lead import (
    LeadActivityLogged,
    LeadAssigned,
    LeadCaptured,
    LeadConverted,
    LeadDisqualified,
    LeadQualified,
    LeadReopened,
    LeadScored,
)
from domain.opportunity import (
    OpportunityAmountChanged,
    OpportunityExpectedCloseChanged,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityStageChanged,
    OpportunityWon,
)
from domain.shared import DomainEvent
from domain.ticket import (
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketFirstResponded,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketRated,
    TicketReopened,
    TicketResolved,
    TicketResumed,
    TicketStatus,
)
from projections.readmodel import ReadModelProjection, ReadModelView, Row, handles

# Columns shared by the timeline and the staging table of not-yet-converted leads' events.
EVENT_COLUMNS = "event_id, seq, aggregate_id, aggregate_version, type, actor, at, summary, payload"
EVENT_TABLE = (
    "event_id uuid PRIMARY KEY, seq bigint NOT NULL, aggregate_id uuid NOT NULL, "
    "aggregate_version int NOT NULL, type text NOT NULL, actor text NOT NULL, "
    "at timestamptz NOT NULL, summary text NOT NULL, payload jsonb NOT NULL"
)
ACTIVE_TICKETS = "('open', 'waiting_on_customer')"  # resolved and closed ones count as closed
CLOSED_STAGES = "('won', 'lost')"


class Customer360View(ReadModelView):
    """One customer's whole story; a survivor's view includes the duplicates merged into it."""

    name: ClassVar[str] = "customer_360"
    tables: ClassVar[dict[str, str]] = {
        "customers": (
            "customer_id uuid PRIMARY KEY, kind text NOT NULL, name text NOT NULL, email text, "
            "phone text, region text NOT NULL, industry text NOT NULL, owner text NOT NULL, "
            "source text NOT NULL, tier text NOT NULL, registered_at timestamptz NOT NULL, "
            "updated_at timestamptz NOT NULL, last_interaction_at timestamptz, "
            "merged_into uuid, merged_at timestamptz"
        ),
        "contacts": (
            "customer_id uuid NOT NULL, contact_id uuid NOT NULL, name text NOT NULL, "
            "title text NOT NULL, email text, phone text, PRIMARY KEY (customer_id, contact_id)"
        ),
        "tags": "customer_id uuid NOT NULL, tag text NOT NULL, PRIMARY KEY (customer_id, tag)",
        "consents": (
            "customer_id uuid NOT NULL, channel text NOT NULL, granted boolean NOT NULL, "
            "legal_basis text NOT NULL, recorded_at timestamptz NOT NULL, "
            "PRIMARY KEY (customer_id, channel)"
        ),
        "opportunities": (
            "opportunity_id uuid PRIMARY KEY, customer_id uuid NOT NULL, title text NOT NULL, "
            "stage text NOT NULL, amount numeric NOT NULL, currency text NOT NULL"
        ),
        "tickets": (
            "ticket_id uuid PRIMARY KEY, customer_id uuid NOT NULL, subject text NOT NULL, "
            "status text NOT NULL, csat int"
        ),
        "leads": (
            "lead_id uuid PRIMARY KEY, customer_id uuid NOT NULL, opportunity_id uuid, "
            "converted_at timestamptz NOT NULL"
        ),
        "timeline": f"{EVENT_TABLE}, customer_id uuid NOT NULL, aggregate_type text NOT NULL",
        "lead_events": EVENT_TABLE,
        # The last ordinal handed out; it orders the events of one instant as the log does.
        "sequence": "id int PRIMARY KEY, seq bigint NOT NULL",
    }
    indexes: ClassVar[dict[str, list[str]]] = {
        "customers": ["merged_into", "name, customer_id", "owner"],
        "opportunities": ["customer_id"],
        "tickets": ["customer_id"],
        "leads": ["customer_id"],
        "timeline": ["customer_id, at DESC, seq DESC"],
        "lead_events": ["aggregate_id"],
    }

    def customer(self, customer_id: UUID, *, min_position: int | None = None) -> Row | None:
        """The 360° document of a customer (None when unknown), with merged duplicates counted."""
        self.wait_for(min_position)
        with self._snapshot() as curs:
            found = self._rows(
                curs, "SELECT * FROM {customers} WHERE customer_id = %s", customer_id
            )
            if not found:
                return None
            merged = self._rows(
                curs,
                "SELECT customer_id FROM group_ WHERE customer_id <> %s ORDER BY customer_id",
                customer_id,
                group=customer_id,
            )
            contacts = self._rows(
                curs,
                "SELECT contact_id, name, title, email, phone FROM {contacts} "
                "WHERE customer_id = %s ORDER BY name, contact_id",
                customer_id,
            )
            tags = self._rows(
                curs, "SELECT tag FROM {tags} WHERE customer_id = %s ORDER BY tag", customer_id
            )
            consents = self._rows(
                curs,
                "SELECT channel, granted, legal_basis, recorded_at FROM {consents} "
                "WHERE customer_id = %s ORDER BY channel",
                customer_id,
            )
            counts = self._rows(curs, COUNTS, group=customer_id)[0]
            won = self._rows(
                curs,
                "SELECT currency, sum(amount) AS total FROM {opportunities} "
                "WHERE stage = 'won' AND customer_id IN (SELECT customer_id FROM group_) "
                "GROUP BY currency ORDER BY currency",
                group=customer_id,
            )
        avg_csat = counts.pop("avg_csat")
        return {
            **found[0],
            "last_interaction_at": counts.pop("last_interaction_at"),
            "merged_ids": [row["customer_id"] for row in merged],
            "contacts": contacts,
            "tags": [row["tag"] for row in tags],
            "consents": {row.pop("channel"): row for row in consents},
            "counts": counts,
            "won_totals": {row["currency"]: row["total"] for row in won},
            "avg_csat": None if avg_csat is None else float(avg_csat),
        }

    def timeline(
        self,
        customer_id: UUID,
        *,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
    ) -> tuple[list[Row], str | None]:
        """Every event about the customer and its merged duplicates, newest first, by pages."""
        check_limit(limit)
        self.wait_for(min_position)
        after = SQL("")
        params: list[Any] = [customer_id]
        if cursor is not None:
            after = SQL(" AND (at, seq) < (%s, %s)")
            params.extend(decode_cursor(cursor, TIMELINE_CURSOR, datetime.fromisoformat, int))
        statement = group_of(self) + SQL(
            " SELECT * FROM {} WHERE customer_id IN (SELECT customer_id FROM group_){} "
            "ORDER BY at DESC, seq DESC LIMIT %s"
        ).format(self.reader("timeline"), after)
        rows = self.fetch(statement, [*params, limit + 1])
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            next_cursor = encode_cursor(
                TIMELINE_CURSOR, page[-1]["at"].isoformat(), page[-1]["seq"]
            )
        for row in page:
            del row["seq"]  # an internal tie-breaker; the cursor carries it
        return page, next_cursor

    def search(
        self,
        *,
        text: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        region: str | None = None,
        tier: str | None = None,
        include_merged: bool = False,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
    ) -> tuple[list[Row], str | None]:
        """Customers by name, then id; `text` matches name, email or phone, in any case."""
        check_limit(limit)
        self.wait_for(min_position)
        where: list[Composable] = []
        params: list[Any] = []
        if text is not None and text.strip():
            needle = text.strip().lower()
            matches = [SQL("strpos(lower(name), %s) > 0"), SQL("strpos(email, %s) > 0")]
            params.extend([needle, needle])
            digits = re.sub(r"\D", "", needle)
            if digits:  # phones are stored as E.164: compare digits with digits
                matches.append(SQL("strpos(regexp_replace(phone, '[^0-9]', '', 'g'), %s) > 0"))
                params.append(digits)
            where.append(SQL("(") + SQL(" OR ").join(matches) + SQL(")"))
        if tag is not None:
            where.append(
                SQL(
                    "EXISTS (SELECT 1 FROM {} t WHERE t.customer_id = c.customer_id AND t.tag = %s)"
                ).format(self.reader("tags"))
            )
            params.append(tag.strip().lower())
        for column, value in (("owner", owner), ("region", region), ("tier", tier)):
            if value is not None:
                where.append(SQL("{} = %s").format(Identifier(column)))
                params.append(value)
        if not include_merged:
            where.append(SQL("merged_into IS NULL"))
        if cursor is not None:
            where.append(SQL("(name, customer_id) > (%s, %s)"))
            params.extend(decode_cursor(cursor, SEARCH_CURSOR, str, UUID))
        statement = SQL(
            "SELECT c.*, array(SELECT tag FROM {} t WHERE t.customer_id = c.customer_id "
            "ORDER BY tag) AS tags FROM {} c"
        ).format(self.reader("tags"), self.reader("customers"))
        if where:
            statement += SQL(" WHERE ") + SQL(" AND ").join(where)
        statement += SQL(" ORDER BY name, customer_id LIMIT %s")
        rows = self.fetch(statement, [*params, limit + 1])
        page, more = rows[:limit], len(rows) > limit
        if not more:
            return page, None
        return page, encode_cursor(SEARCH_CURSOR, page[-1]["name"], str(page[-1]["customer_id"]))

    # --- reading helpers ------------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[Cursor[DictRow]]:
        """One consistent snapshot for the several queries of one document."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield curs

    def _rows(
        self, curs: Cursor[DictRow], query: str, *params: Any, group: UUID | None = None
    ) -> list[Row]:
        """Rows of `query` ({table} names a reader view), after the CTE of `group`'s group."""
        statement: Composed | SQL = SQL(query).format(
            **{logical: self.reader(logical) for logical in self.tables}
        )
        if group is not None:
            statement = group_of(self) + SQL(" ") + statement
            params = (group, *params)
        curs.execute(statement, params)
        return list(curs.fetchall())


# The customer, and every customer merged into it directly or through a chain of merges.
GROUP = (
    "WITH RECURSIVE group_(customer_id) AS (SELECT %s::uuid UNION "
    "SELECT c.customer_id FROM {} c JOIN group_ g ON c.merged_into = g.customer_id)"
)
IN_GROUP = "customer_id IN (SELECT customer_id FROM group_)"
COUNTS = (
    "SELECT (SELECT count(*) FROM {leads} WHERE " + IN_GROUP + ") AS leads, o.*, t.*, "
    "(SELECT max(last_interaction_at) FROM {customers} WHERE " + IN_GROUP + ") "
    "AS last_interaction_at "
    "FROM (SELECT count(*) FILTER (WHERE stage NOT IN " + CLOSED_STAGES + ") "
    "AS open_opportunities, count(*) FILTER (WHERE stage = 'won') AS won_opportunities, "
    "count(*) FILTER (WHERE stage = 'lost') AS lost_opportunities "
    "FROM {opportunities} WHERE " + IN_GROUP + ") o, "
    "(SELECT count(*) FILTER (WHERE status IN " + ACTIVE_TICKETS + ") AS open_tickets, "
    "count(*) FILTER (WHERE status NOT IN " + ACTIVE_TICKETS + ") AS closed_tickets, "
    "avg(csat) AS avg_csat FROM {tickets} WHERE " + IN_GROUP + ") t"
)


def group_of(view: ReadModelView) -> Composed:
    """The `group_` CTE (its one parameter: the customer's id)."""
    return SQL(GROUP).format(view.reader("customers"))


TIMELINE_CURSOR, SEARCH_CURSOR = "timeline", "search"


def check_limit(limit: int) -> None:
    """A page holds at least one row (a cursor names the last row of a page)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def encode_cursor(kind: str, *key: Any) -> str:
    """An opaque cursor: the sort key of the last row of a page, and which listing it pages."""
    return base64.urlsafe_b64encode(orjson.dumps([kind, *key])).decode()


def decode_cursor(cursor: str, kind: str, *parsers: Callable[[Any], Any]) -> list[Any]:
    """The sort key in a cursor of that listing, parsed; anything else is an InvalidCursor."""
    try:
        issued_for, *key = orjson.loads(base64.urlsafe_b64decode(cursor))
        if issued_for != kind or len(key) != len(parsers):
            raise ValueError(f"not a {kind} cursor")
        return [parse(value) for parse, value in zip(parsers, key, strict=True)]
    except (ValueError, TypeError) as error:
        raise InvalidCursor(cursor) from error


class InvalidCursor(ValueError):
    """A pagination cursor that this read model did not issue."""


class Customer360Projection(ReadModelProjection):
    """Fills `customer_360` from customer, lead, opportunity and ticket events."""

    name = "customer_360"

    # --- the customer's own events --------------------------------------------------------------

    @handles(CustomerRegistered)
    def registered(self, curs: Cursor[DictRow], event: CustomerRegistered) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, kind, name, email, phone, region, industry, owner, "
                "source, tier, registered_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'standard', %s, %s)"
            ).format(self.view.table("customers")),
            (
                event.originator_id,
                event.kind,
                event.name,
                event.email,
                event.phone,
                event.region,
                event.industry,
                event.owner,
                event.source,
                event.timestamp,
                event.timestamp,
            ),
        )
        self._record(curs, event, event.originator_id)

    @handles(CustomerProfileUpdated)
    def profile_updated(self, curs: Cursor[DictRow], event: CustomerProfileUpdated) -> None:
        self._customer(curs, event, **event.changes)

    @handles(CustomerOwnerAssigned)
    def owner_assigned(self, curs: Cursor[DictRow], event: CustomerOwnerAssigned) -> None:
        self._customer(curs, event, owner=event.owner)

    @handles(CustomerTierChanged)
    def tier_changed(self, curs: Cursor[DictRow], event: CustomerTierChanged) -> None:
        self._customer(curs, event, tier=event.tier)

    @handles(CustomerMerged)
    def merged(self, curs: Cursor[DictRow], event: CustomerMerged) -> None:
        self._customer(curs, event, merged_into=event.survivor_id, merged_at=event.timestamp)

    @handles(CustomerInteractionLogged)
    def interaction_logged(self, curs: Cursor[DictRow], event: CustomerInteractionLogged) -> None:
        # greatest() skips NULL; a backdated interaction never hides a later one.
        curs.execute(
            SQL(
                "UPDATE {} SET last_interaction_at = greatest(last_interaction_at, %s) "
                "WHERE customer_id = %s"
            ).format(self.view.table("customers")),
            (event.occurred_at, event.originator_id),
        )
        self._customer(curs, event)

    @handles(CustomerContactAdded)
    def contact_added(self, curs: Cursor[DictRow], event: CustomerContactAdded) -> None:
        self._add_contacts(curs, event.originator_id, [event.contact])
        self._customer(curs, event)

    @handles(CustomerContactRemoved)
    def contact_removed(self, curs: Cursor[DictRow], event: CustomerContactRemoved) -> None:
        curs.execute(
            SQL("DELETE FROM {} WHERE customer_id = %s AND contact_id = %s").format(
                self.view.table("contacts")
            ),
            (event.originator_id, event.contact_id),
        )
        self._customer(curs, event)

    @handles(CustomerTagged)
    def tagged(self, curs: Cursor[DictRow], event: CustomerTagged) -> None:
        self._add_tags(curs, event.originator_id, [event.tag])
        self._customer(curs, event)

    @handles(CustomerUntagged)
    def untagged(self, curs: Cursor[DictRow], event: CustomerUntagged) -> None:
        curs.execute(
            SQL("DELETE FROM {} WHERE customer_id = %s AND tag = %s").format(
                self.view.table("tags")
            ),
            (event.originator_id, event.tag),
        )
        self._customer(curs, event)

    @handles(CustomerAbsorbedDuplicate)
    def absorbed(self, curs: Cursor[DictRow], event: CustomerAbsorbedDuplicate) -> None:
        self._add_tags(curs, event.originator_id, event.tags)
        self._add_contacts(curs, event.originator_id, event.contacts)
        self._customer(curs, event)

    @handles(CustomerConsentRecorded)
    def consent_recorded(self, curs: Cursor[DictRow], event: CustomerConsentRecorded) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, channel, granted, legal_basis, recorded_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (customer_id, channel) DO UPDATE SET "
                "granted = EXCLUDED.granted, legal_basis = EXCLUDED.legal_basis, "
                "recorded_at = EXCLUDED.recorded_at"
            ).format(self.view.table("consents")),
            (event.originator_id, event.channel, event.granted, event.legal_basis, event.timestamp),
        )
        self._customer(curs, event)

    # --- leads: staged until LeadConverted names their customer -------------------------------

    @handles(
        LeadCaptured,
        LeadScored,
        LeadAssigned,
        LeadActivityLogged,
        LeadQualified,
        LeadDisqualified,
        LeadReopened,
    )
    def lead_event(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        self._insert_event(curs, "lead_events", event)

    @handles(LeadConverted)
    def lead_converted(self, curs: Cursor[DictRow], event: LeadConverted) -> None:
        columns = SQL(EVENT_COLUMNS)
        curs.execute(
            SQL(
                "INSERT INTO {timeline} ({columns}, customer_id, aggregate_type) "
                "SELECT {columns}, %s, 'lead' FROM {staged} WHERE aggregate_id = %s"
            ).format(
                timeline=self.view.table("timeline"),
                staged=self.view.table("lead_events"),
                columns=columns,
            ),
            (event.customer_id, event.originator_id),
        )
        curs.execute(
            SQL("DELETE FROM {} WHERE aggregate_id = %s").format(self.view.table("lead_events")),
            (event.originator_id,),
        )
        curs.execute(
            SQL(
                "INSERT INTO {} (lead_id, customer_id, opportunity_id, converted_at) "
                "VALUES (%s, %s, %s, %s)"
            ).format(self.view.table("leads")),
            (event.originator_id, event.customer_id, event.opportunity_id, event.timestamp),
        )
        self._record(curs, event, event.customer_id)

    # --- opportunities --------------------------------------------------------------------------

    @handles(OpportunityOpened)
    def opportunity_opened(self, curs: Cursor[DictRow], event: OpportunityOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (opportunity_id, customer_id, title, stage, amount, currency) "
                "VALUES (%s, %s, %s, 'qualification', %s, %s)"
            ).format(self.view.table("opportunities")),
            (
                event.originator_id,
                event.customer_id,
                event.title,
                event.amount.amount,
                event.amount.currency,
            ),
        )
        self._record(curs, event, event.customer_id)

    @handles(OpportunityStageChanged, OpportunityReopened)
    def opportunity_moved(
        self, curs: Cursor[DictRow], event: OpportunityStageChanged | OpportunityReopened
    ) -> None:
        self._child(curs, event, "opportunities", stage=event.stage)

    @handles(OpportunityAmountChanged)
    def opportunity_amount(self, curs: Cursor[DictRow], event: OpportunityAmountChanged) -> None:
        self._child(
            curs, event, "opportunities", amount=event.amount.amount, currency=event.amount.currency
        )

    @handles(OpportunityExpectedCloseChanged)
    def opportunity_close(
        self, curs: Cursor[DictRow], event: OpportunityExpectedCloseChanged
    ) -> None:
        self._child(curs, event, "opportunities")

    @handles(OpportunityWon)
    def opportunity_won(self, curs: Cursor[DictRow], event: OpportunityWon) -> None:
        amount, currency = event.amount.amount, event.amount.currency
        self._child(curs, event, "opportunities", stage="won", amount=amount, currency=currency)

    @handles(OpportunityLost)
    def opportunity_lost(self, curs: Cursor[DictRow], event: OpportunityLost) -> None:
        self._child(curs, event, "opportunities", stage="lost")

    # --- tickets --------------------------------------------------------------------------------

    @handles(TicketOpened)
    def ticket_opened(self, curs: Cursor[DictRow], event: TicketOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (ticket_id, customer_id, subject, status) VALUES (%s, %s, %s, %s)"
            ).format(self.view.table("tickets")),
            (event.originator_id, event.customer_id, event.subject, TicketStatus.OPEN.value),
        )
        self._record(curs, event, event.customer_id)

    @handles(TicketPausedForCustomer, TicketResumed, TicketResolved, TicketClosed, TicketReopened)
    def ticket_status(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        self._child(curs, event, "tickets", status=STATUS_AFTER[type(event)].value)

    @handles(TicketRated)
    def ticket_rated(self, curs: Cursor[DictRow], event: TicketRated) -> None:
        self._child(curs, event, "tickets", csat=event.score)

    @handles(TicketAssigned, TicketFirstResponded, TicketEscalated, TicketPriorityChanged)
    def ticket_worked(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        self._child(curs, event, "tickets")

    # --- writing helpers ------------------------------------------------------------------------

    def _customer(self, curs: Cursor[DictRow], event: DomainEvent, **columns: Any) -> None:
        """Change the customer's row (always its `updated_at`) and put the event on its timeline."""
        columns["updated_at"] = event.timestamp
        self._update(curs, "customers", "customer_id", event, columns)
        self._record(curs, event, event.originator_id)

    def _child(self, curs: Cursor[DictRow], event: DomainEvent, table: str, **columns: Any) -> None:
        """Change an opportunity's or ticket's row; its customer's timeline gets the event."""
        key = CHILD_KEYS[table]
        if columns:
            row = self._update(curs, table, key, event, columns)
        else:
            curs.execute(
                SQL("SELECT customer_id FROM {} WHERE {} = %s").format(
                    self.view.table(table), Identifier(key)
                ),
                (event.originator_id,),
            )
            row = curs.fetchone()
        if row is not None:
            self._record(curs, event, row["customer_id"])

    def _update(
        self,
        curs: Cursor[DictRow],
        table: str,
        key: str,
        event: DomainEvent,
        columns: dict[str, Any],
    ) -> DictRow | None:
        """Set `columns` on the event's row of `table`; returns its customer_id, if found."""
        statement = SQL("UPDATE {} SET {} WHERE {} = %s RETURNING customer_id").format(
            self.view.table(table),
            SQL(", ").join(SQL("{} = %s").format(Identifier(column)) for column in columns),
            Identifier(key),
        )
        curs.execute(statement, [*columns.values(), event.originator_id])
        return curs.fetchone()

    def _add_tags(self, curs: Cursor[DictRow], customer_id: UUID, tags: Iterable[str]) -> None:
        for tag in tags:
            curs.execute(
                SQL(
                    "INSERT INTO {} (customer_id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING"
                ).format(self.view.table("tags")),
                (customer_id, tag),
            )

    def _add_contacts(
        self, curs: Cursor[DictRow], customer_id: UUID, contacts: Iterable[Contact]
    ) -> None:
        for contact in contacts:
            curs.execute(
                SQL(
                    "INSERT INTO {} (customer_id, contact_id, name, title, email, phone) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (customer_id, contact_id) "
                    "DO UPDATE SET name = EXCLUDED.name, title = EXCLUDED.title, "
                    "email = EXCLUDED.email, phone = EXCLUDED.phone"
                ).format(self.view.table("contacts")),
                (
                    customer_id,
                    contact.contact_id,
                    contact.name,
                    contact.title,
                    contact.email,
                    contact.phone,
                ),
            )

    def _record(self, curs: Cursor[DictRow], event: DomainEvent, customer_id: UUID) -> None:
        """Put the event on the customer's timeline."""
        aggregate_type = type(event).TYPE.split(".")[1]
        self._insert_event(
            curs, "timeline", event, customer_id=customer_id, aggregate_type=aggregate_type
        )

    def _insert_event(
        self, curs: Cursor[DictRow], table: str, event: DomainEvent, **extra: Any
    ) -> None:
        # The log position is not handed to handlers, so an ordinal of our own keeps log order
        # among events of one instant; it is rolled back with the batch, so rebuilds agree.
        curs.execute(
            SQL(
                "INSERT INTO {} AS s (id, seq) VALUES (1, 1) "
                "ON CONFLICT (id) DO UPDATE SET seq = s.seq + 1 RETURNING seq"
            ).format(self.view.table("sequence"))
        )
        row = curs.fetchone()
        assert row is not None  # INSERT .. RETURNING always returns the row
        payload = event.model_dump(mode="json", exclude=METADATA)
        values = {
            "event_id": event.event_id,
            "seq": row["seq"],
            "aggregate_id": event.originator_id,
            "aggregate_version": event.originator_version,
            "type": type(event).type_name(),
            "actor": event.actor,
            "at": event.timestamp,
            "summary": summarise(event, payload),
            "payload": Jsonb(payload),
            **extra,
        }
        curs.execute(
            SQL("INSERT INTO {} ({}) VALUES ({})").format(
                self.view.table(table),
                SQL(", ").join(map(Identifier, values)),
                SQL(", ").join(SQL("%s") for _ in values),
            ),
            list(values.values()),
        )


CHILD_KEYS = {"opportunities": "opportunity_id", "tickets": "ticket_id"}
STATUS_AFTER: dict[type[DomainEvent], TicketStatus] = {
    TicketPausedForCustomer: TicketStatus.WAITING_ON_CUSTOMER,
    TicketResumed: TicketStatus.OPEN,
    TicketResolved: TicketStatus.RESOLVED,
    TicketClosed: TicketStatus.CLOSED,
    TicketReopened: TicketStatus.OPEN,
}
METADATA = set(DomainEvent.model_fields)  # timeline columns of their own, not payload

# What the timeline says after "<Aggregate> <what happened>", from the event's payload.
DETAILS = {
    "crm.customer.registered": "{name} ({kind}, {region})",
    "crm.customer.profile_updated": "{changed}",
    "crm.customer.contact_added": "{contact[name]}",
    "crm.customer.tagged": "{tag}",
    "crm.customer.untagged": "{tag}",
    "crm.customer.owner_assigned": "{previous_owner} → {owner}",
    "crm.customer.interaction_logged": "{kind}: {summary}",
    "crm.customer.consent_recorded": "{channel} {granted_or_withdrawn} ({legal_basis})",
    "crm.customer.tier_changed": "{previous_tier} → {tier}: {reason}",
    "crm.customer.merged": "into {survivor_id}",
    "crm.customer.absorbed_duplicate": "{duplicate_id}",
    "crm.lead.captured": "{name} via {channel}",
    "crm.lead.scored": "{score}",
    "crm.lead.assigned": "to {owner}",
    "crm.lead.activity_logged": "{kind}: {summary}",
    "crm.lead.disqualified": "{reason}",
    "crm.lead.converted": "to customer {customer_id}",
    "crm.opportunity.opened": "{title}, {amount[amount]} {amount[currency]}",
    "crm.opportunity.stage_changed": "{from_stage} → {stage}",
    "crm.opportunity.amount_changed": "{amount[amount]} {amount[currency]}",
    "crm.opportunity.expected_close_changed": "{expected_close}",
    "crm.opportunity.won": "{amount[amount]} {amount[currency]}, {contract_reference}",
    "crm.opportunity.lost": "{reason}",
    "crm.opportunity.reopened": "at {stage}",
    "crm.ticket.opened": "{subject} ({priority})",
    "crm.ticket.assigned": "to {agent}",
    "crm.ticket.escalated": "to level {level}: {reason}",
    "crm.ticket.priority_changed": "to {priority}",
    "crm.ticket.resolved": "{resolution}",
    "crm.ticket.rated": "CSAT {score}",
}
SUMMARY_LENGTH = 200


def summarise(event: DomainEvent, payload: dict[str, Any]) -> str:
    """A one-line summary, e.g. "Customer tagged: vip"."""
    aggregate, _, happened = type(event).TYPE.removeprefix("crm.").partition(".")
    summary = f"{aggregate.capitalize()} {happened.replace('_', ' ')}"
    detail = DETAILS.get(type(event).TYPE)
    if detail is not None:
        derived = {
            "changed": ", ".join(payload.get("changes", ())),
            "granted_or_withdrawn": "granted" if payload.get("granted") else "withdrawn",
        }
        summary += ": " + detail.format_map({**payload, **derived})
    return summary[:SUMMARY_LENGTH]
