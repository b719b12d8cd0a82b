"""The Customer 360° tables and queries: one customer's document, its timeline, and search."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from projections.pagination import check_limit, decode_cursor, page_of
from projections.readmodel import ReadModelView, Row
from projections.visibility import Visibility

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

    def profile(self, customer_id: UUID, *, min_position: int | None = None) -> Row | None:
        """The customer's own row (profile, owner, region; None when unknown), nothing else."""
        self.wait_for(min_position)
        rows = self.fetch(
            SQL("SELECT * FROM {} WHERE customer_id = %s").format(self.reader("customers")),
            [customer_id],
        )
        return rows[0] if rows else None

    def timeline(
        self,
        customer_id: UUID,
        *,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
        without: Collection[str] = (),
    ) -> tuple[list[Row], str | None]:
        """Every event about the customer and its merged duplicates, newest first, by pages.

        `without` leaves out the events of those aggregate types (e.g. `opportunity`).
        """
        check_limit(limit)
        self.wait_for(min_position)
        after: Composable = SQL("")
        params: list[Any] = [customer_id]
        if without:
            after += SQL(" AND aggregate_type <> ALL(%s)")
            params.append(list(without))
        if cursor is not None:
            after += SQL(" AND (at, seq) < (%s, %s)")
            params.extend(decode_cursor(cursor, TIMELINE_KEY_PARSERS, TIMELINE))
        statement = group_of(self) + SQL(
            " SELECT * FROM {} WHERE customer_id IN (SELECT customer_id FROM group_){} "
            "ORDER BY at DESC, seq DESC LIMIT %s"
        ).format(self.reader("timeline"), after)
        rows = self.fetch(statement, [*params, limit + 1])
        page, next_cursor = page_of(rows, limit, timeline_key, TIMELINE)
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
        visible: Visibility | None = None,
    ) -> tuple[list[Row], str | None]:
        """Customers by name, then id; `text` matches name, email or phone, in any case.

        Each row carries its tags and its consents by channel; `visible` restricts the rows to
        those a reader may see (None: all of them).
        """
        check_limit(limit)
        self.wait_for(min_position)
        where: list[Composable] = []
        params: list[Any] = []
        if visible is not None:
            restrictions, params = visible.where(region="region", owner="owner")
            where.extend(restrictions)
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
            params.extend(decode_cursor(cursor, SEARCH_KEY_PARSERS, SEARCH))
        statement = SQL(
            "SELECT c.*, array(SELECT tag FROM {} t WHERE t.customer_id = c.customer_id "
            "ORDER BY tag) AS tags, " + CONSENTS + " AS consents FROM {} c"
        ).format(self.reader("tags"), self.reader("consents"), self.reader("customers"))
        if where:
            statement += SQL(" WHERE ") + SQL(" AND ").join(where)
        statement += SQL(" ORDER BY name, customer_id LIMIT %s")
        return page_of(self.fetch(statement, [*params, limit + 1]), limit, search_key, SEARCH)

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


# A merged duplicate lives on in its survivor: the survivor's counts and timeline cover every
# customer merged into it (following chains of merges), gathered at query time, so a merge moves no
# rows and a rebuild from zero gives the very same ones. Tags and contacts move with the
# `CustomerAbsorbedDuplicate` event that carries them.
# GROUP: the customer, and every customer merged into it directly or through a chain of merges.
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


# A found customer's consents, as the 360° document has them: {channel: {granted, ...}}.
CONSENTS = (
    "(SELECT coalesce(jsonb_object_agg(channel, jsonb_build_object('granted', granted, "
    "'legal_basis', legal_basis, 'recorded_at', recorded_at)), '{{}}'::jsonb) "
    "FROM {} k WHERE k.customer_id = c.customer_id)"
)


def group_of(view: ReadModelView) -> Composed:
    """The `group_` CTE (its one parameter: the customer's id)."""
    return SQL(GROUP).format(view.reader("customers"))


# The view's two listings; each one's cursors are refused by the other.
TIMELINE, SEARCH = "timeline", "search"


def timeline_key(row: Row) -> list[Any]:
    """A timeline entry's sort key, as its cursor carries it (TIMELINE_KEY_PARSERS read it back)."""
    return [row["at"].isoformat(), row["seq"]]


def search_key(row: Row) -> list[Any]:
    """A found customer's sort key, as its cursor carries it (SEARCH_KEY_PARSERS read it back)."""
    return [row["name"], str(row["customer_id"])]


TIMELINE_KEY_PARSERS = (datetime.fromisoformat, int)
SEARCH_KEY_PARSERS = (str, UUID)
