"""The Customer 360° tables and queries: one customer's document, its timeline, and search."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import Any, ClassVar
from uuid import UUID

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
    schema: ClassVar[int] = 3  # 2: customers.erased_at, campaigns; 3: billing details
    tables: ClassVar[dict[str, str]] = {
        "customers": (
            "customer_id uuid PRIMARY KEY, kind text NOT NULL, name text NOT NULL, email text, "
            "phone text, region text NOT NULL, industry text NOT NULL, owner text NOT NULL, "
            "source text NOT NULL, tier text NOT NULL, registered_at timestamptz NOT NULL, "
            "updated_at timestamptz NOT NULL, last_interaction_at timestamptz, "
            "merged_into uuid, merged_at timestamptz, erased_at timestamptz, "
            "id_number text, bank_account text"
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
        # The campaigns the customer is enrolled in now (a withdrawn consent ends its channel's).
        "campaigns": (
            "customer_id uuid NOT NULL, campaign text NOT NULL, channel text NOT NULL, "
            "enrolled_at timestamptz NOT NULL, PRIMARY KEY (customer_id, campaign)"
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
        """The 360° document of a customer (None when unknown), with merged duplicates counted.

        One statement, so one round trip and one snapshot: the lists come back as arrays of
        typed columns (uuid[], timestamptz[], numeric[]), never through JSON, so every value
        keeps its exact Python type.
        """
        self.wait_for(min_position)
        rows = self.fetch(customer_statement(type(self)), [customer_id, customer_id])
        return customer_document(rows[0]) if rows else None

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
        _, page, next_cursor = self.owned_timeline(
            customer_id, limit=limit, cursor=cursor, min_position=min_position, without=without
        )
        return page, next_cursor

    def owned_timeline(
        self,
        customer_id: UUID,
        *,
        limit: int = 50,
        cursor: str | None = None,
        min_position: int | None = None,
        without: Collection[str] = (),
    ) -> tuple[Row | None, list[Row], str | None]:
        """`timeline`, with the customer's region and owner (None: no such customer), in one
        statement: the caller checks who may see it without a second round trip."""
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
            " SELECT c.region AS c360_region, c.owner AS c360_owner, t.* FROM {} c "
            "LEFT JOIN LATERAL (SELECT * FROM {} WHERE " + IN_GROUP + "{} "
            "ORDER BY at DESC, seq DESC LIMIT %s) t ON true WHERE c.customer_id = %s"
        ).format(self.reader("customers"), self.reader("timeline"), after)
        rows = self.fetch(statement, [*params, limit + 1, customer_id])
        if not rows:
            return None, [], None
        owner = {"region": rows[0]["c360_region"], "owner": rows[0]["c360_owner"]}
        entries = [
            {k: v for k, v in row.items() if not k.startswith("c360_")}
            for row in rows
            if row["event_id"] is not None
        ]
        page, next_cursor = page_of(entries, limit, timeline_key, TIMELINE)
        for row in page:
            del row["seq"]  # an internal tie-breaker; the cursor carries it
        return owner, page, next_cursor

    def erasure_records(self, customer_id: UUID) -> list[UUID]:
        """The records an erasure of the customer erases too: the duplicates merged into it (at
        any depth), and the tickets and converted leads of all of them."""
        statement = group_of(self) + SQL(
            " SELECT customer_id AS id FROM group_ WHERE customer_id <> %s"
            " UNION SELECT ticket_id FROM {} WHERE "
            + IN_GROUP
            + " UNION SELECT lead_id FROM {} WHERE "
            + IN_GROUP
            + " ORDER BY 1"
        ).format(self.reader("tickets"), self.reader("leads"))
        return [row["id"] for row in self.fetch(statement, [customer_id, customer_id])]

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
        match_contact_data: bool = True,
    ) -> tuple[list[Row], str | None]:
        """Customers by name, then id; `text` matches name, email or phone, in any case.

        Without `match_contact_data`, `text` matches names only: a reader who may not see
        addresses must not be able to confirm one by searching for it.

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
            matches: list[Composable] = [SQL("strpos(lower(name), %s) > 0")]
            params.append(needle)
            if match_contact_data:
                matches.append(SQL("strpos(email, %s) > 0"))
                params.append(needle)
            digits = re.sub(r"\D", "", needle) if match_contact_data else ""
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


# A merged duplicate lives on in its survivor: the survivor's counts and timeline cover every
# customer merged into it (following chains of merges), gathered at query time, so a merge moves no
# rows and a rebuild from zero gives the very same ones. Tags and contacts move with the
# `CustomerAbsorbedDuplicate` event that carries them.
# GROUP: the customer, and every customer merged into it directly or through a chain of merges.
GROUP = (
    "WITH RECURSIVE group_(customer_id) AS (SELECT %s::uuid UNION "
    "SELECT c.customer_id FROM {} c JOIN group_ g ON c.merged_into = g.customer_id)"
)
# `= ANY(array(...))`, not `IN (SELECT ...)`: the planner cannot estimate the recursive CTE and
# would hash-join it with a full scan; an array parameter makes it use the customer_id indexes.
IN_GROUP = "customer_id = ANY(array(SELECT customer_id FROM group_))"

# The 360° document's lists, as parallel arrays of typed columns (one element per entry).
CONTACT_FIELDS = ("contact_id", "name", "title", "email", "phone")
CONSENT_FIELDS = ("granted", "legal_basis", "recorded_at")
CAMPAIGN_FIELDS = ("campaign", "channel", "enrolled_at")
COUNT_NAMES = (
    "leads",
    "open_opportunities",
    "won_opportunities",
    "lost_opportunities",
    "open_tickets",
    "closed_tickets",
)
# After the `group_` CTE: the customer's row (none when unknown) and, in columns named c360_*,
# everything else of its document; each part reads the tables by an index (see `indexes`).
DOCUMENT = (
    " SELECT c.*, "
    "array(SELECT customer_id FROM group_ WHERE customer_id <> c.customer_id "
    "ORDER BY customer_id) AS c360_merged_ids, "
    "array(SELECT tag FROM {tags} t WHERE t.customer_id = c.customer_id ORDER BY tag) "
    "AS c360_tags, ct.*, k.*, e.*, l.*, o.*, t.*, w.*, i.* "
    "FROM {customers} c "
    "CROSS JOIN LATERAL (SELECT "
    + ", ".join(
        f"array_agg({f} ORDER BY name, contact_id) AS c360_contact_{f}" for f in CONTACT_FIELDS
    )
    + " FROM {contacts} x WHERE x.customer_id = c.customer_id) ct "
    "CROSS JOIN LATERAL (SELECT "
    + ", ".join(
        f"array_agg({f} ORDER BY channel) AS c360_consent_{f}" for f in ("channel", *CONSENT_FIELDS)
    )
    + " FROM {consents} x WHERE x.customer_id = c.customer_id) k "
    "CROSS JOIN LATERAL (SELECT "
    + ", ".join(f"array_agg({f} ORDER BY campaign) AS c360_campaign_{f}" for f in CAMPAIGN_FIELDS)
    + " FROM {campaigns} x WHERE x.customer_id = c.customer_id) e "
    "CROSS JOIN (SELECT count(*) AS c360_leads FROM {leads} WHERE " + IN_GROUP + ") l "
    "CROSS JOIN (SELECT "
    "count(*) FILTER (WHERE stage NOT IN " + CLOSED_STAGES + ") AS c360_open_opportunities, "
    "count(*) FILTER (WHERE stage = 'won') AS c360_won_opportunities, "
    "count(*) FILTER (WHERE stage = 'lost') AS c360_lost_opportunities "
    "FROM {opportunities} WHERE " + IN_GROUP + ") o "
    "CROSS JOIN (SELECT "
    "count(*) FILTER (WHERE status IN " + ACTIVE_TICKETS + ") AS c360_open_tickets, "
    "count(*) FILTER (WHERE status NOT IN " + ACTIVE_TICKETS + ") AS c360_closed_tickets, "
    "avg(csat) AS c360_avg_csat FROM {tickets} WHERE " + IN_GROUP + ") t "
    "CROSS JOIN (SELECT array_agg(currency ORDER BY currency) AS c360_won_currencies, "
    "array_agg(total ORDER BY currency) AS c360_won_totals "
    "FROM (SELECT currency, sum(amount) AS total FROM {opportunities} "
    "WHERE stage = 'won' AND " + IN_GROUP + " GROUP BY currency) s) w "
    "CROSS JOIN (SELECT max(last_interaction_at) AS c360_last_interaction_at "
    "FROM {customers} WHERE " + IN_GROUP + ") i "
    "WHERE c.customer_id = %s"
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


@cache
def customer_statement(view: type[ReadModelView]) -> Composed:
    """The one statement of `customer()` (parameters: the customer's id, twice)."""
    return SQL(GROUP).format(view.reader("customers")) + SQL(DOCUMENT).format(
        **{logical: view.reader(logical) for logical in view.tables}
    )


def customer_document(row: Row) -> Row:
    """The 360° document from the one row of `customer_statement` (its c360_* columns folded)."""
    extra = {column: row.pop(column) for column in list(row) if column.startswith("c360_")}
    contacts = zip(*(extra[f"c360_contact_{field}"] or [] for field in CONTACT_FIELDS), strict=True)
    consents = zip(
        *(extra[f"c360_consent_{field}"] or [] for field in ("channel", *CONSENT_FIELDS)),
        strict=True,
    )
    campaigns = zip(
        *(extra[f"c360_campaign_{field}"] or [] for field in CAMPAIGN_FIELDS), strict=True
    )
    won = zip(extra["c360_won_currencies"] or [], extra["c360_won_totals"] or [], strict=True)
    avg_csat = extra["c360_avg_csat"]
    return {
        **row,
        "last_interaction_at": extra["c360_last_interaction_at"],
        "merged_ids": extra["c360_merged_ids"],
        "contacts": [dict(zip(CONTACT_FIELDS, values, strict=True)) for values in contacts],
        "tags": extra["c360_tags"],
        "consents": {
            channel: dict(zip(CONSENT_FIELDS, values, strict=True)) for channel, *values in consents
        },
        "campaigns": [dict(zip(CAMPAIGN_FIELDS, values, strict=True)) for values in campaigns],
        "counts": {name: extra[f"c360_{name}"] for name in COUNT_NAMES},
        "won_totals": dict(won),
        "avg_csat": None if avg_csat is None else float(avg_csat),
    }


# The view's two listings; each one's cursors are refused by the other.
TIMELINE, SEARCH = "timeline", "search"


def timeline_key(row: Row) -> list[Any]:
    """A timeline entry's sort key, as its cursor carries it (TIMELINE_KEY_PARSERS read it back)."""
    return [row["at"].isoformat(), row["seq"]]


def search_key(row: Row) -> list[Any]:
    """A found customer's sort key, as its cursor carries it (SEARCH_KEY_PARSERS read it back)."""
    return [row["name"], str(row["customer_id"])]


TIMELINE_KEY_PARSERS = (datetime.fromisoformat, int)


def _text_without_nul(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a name")
    return value


SEARCH_KEY_PARSERS = (_text_without_nul, UUID)
