"""The hot read routes' queries: one statement each, planned on indexes over realistic data.

The read models are filled straight with SQL (thousands of rows in well under a second) and
analysed, then each view method runs as the routes call it: its statements are captured and
EXPLAINed with the very parameters it used, and the plan is checked for the index that serves
it and for no sequential scan of a large table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.postgres import PostgresDatastore
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Identifier

from domain.application import CRM
from domain.sla import DEFAULT_CALENDAR, DEFAULT_POLICY
from infra.bootstrap import build_crm
from infra.settings import Settings
from projections.customer_360 import Customer360View
from projections.lead_queue import QUEUE_KEY, LeadQueueView
from projections.pagination import encode_cursor
from projections.readmodel import ReadModelView, install
from projections.sales_funnel import SalesFunnelView
from projections.sla_board import SlaBoardView
from projections.task_list import TASK_KEY, TaskListView
from projections.visibility import Visibility

CUSTOMERS = 10_000  # and as many leads, tasks and deals; twice as many tickets
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Plan = dict[str, Any]
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


def customer_id(n: int) -> UUID:
    """The id the fill below gives customer n (md5('customer' || n) as a uuid)."""
    return UUID(hashlib.md5(f"customer{n}".encode()).hexdigest())


@dataclass
class Views:
    """The read models the hot routes read, installed and filled."""

    datastore: PostgresDatastore
    customers: Customer360View
    leads: LeadQueueView
    sla: SlaBoardView
    tasks: TaskListView
    funnel: SalesFunnelView


@pytest.fixture(scope="module")
def crm(module_database_url: str) -> Iterator[CRM]:
    app = build_crm(Settings(customer_snapshot_interval=0), module_database_url)
    yield app
    app.close()


@pytest.fixture(scope="module")
def views(crm: CRM) -> Views:
    """The read models, filled with a busy CRM's rows and analysed."""
    datastore: PostgresDatastore = crm.recorder.datastore  # type: ignore[attr-defined]
    views = Views(
        datastore,
        install(Customer360View, datastore),
        install(LeadQueueView, datastore),
        install(SlaBoardView, datastore),
        install(TaskListView, datastore),
        install(SalesFunnelView, datastore),
    )
    with datastore.transaction(commit=True) as curs:
        for view, statements in FILL.items():
            target = getattr(views, view)
            for statement in statements:
                curs.execute(SQL(statement).format(**tables_of(target)), {"n": CUSTOMERS})
    with datastore.get_connection() as conn:
        for view in FILL:
            for table in tables_of(getattr(views, view)).values():
                conn.execute(SQL("ANALYZE {}").format(table))
    return views


def tables_of(view: ReadModelView) -> dict[str, Identifier]:
    return {logical: view.table(logical) for logical in view.tables}


# Customer n: one region in four, one owner in fifty; every hundredth is a duplicate merged
# into the customer before it. Ticket and deal counts per customer are what a busy CRM has.
FILL: dict[str, list[str]] = {
    "customers": [
        "INSERT INTO {customers} SELECT md5('customer' || i)::uuid, 'company', "
        "'Customer ' || lpad(i::text, 5, '0'), 'c' || i || '@example.com', "
        "'+4930' || lpad(i::text, 7, '0'), (ARRAY['east','west','north','south'])[1 + i %% 4], "
        "'retail', 'user:' || i %% 50, 'web', (ARRAY['gold','silver','bronze'])[1 + i %% 3], "
        "now() - i * interval '1 hour', now(), now() - i * interval '1 minute', "
        "CASE WHEN i %% 100 = 0 THEN md5('customer' || (i - 1))::uuid END, "
        "CASE WHEN i %% 100 = 0 THEN now() END, NULL FROM generate_series(1, %(n)s) i",
        "INSERT INTO {contacts} SELECT md5('customer' || i)::uuid, md5('contact' || i)::uuid, "
        "'Contact ' || i, 'CEO', NULL, NULL FROM generate_series(1, %(n)s) i",
        "INSERT INTO {tags} SELECT md5('customer' || i)::uuid, 'tag' || (i + k) %% 20 "
        "FROM generate_series(1, %(n)s) i, generate_series(0, 1) k",
        "INSERT INTO {consents} SELECT md5('customer' || i)::uuid, channel, true, 'consent', "
        "now() FROM generate_series(1, %(n)s) i, unnest(ARRAY['email', 'phone']) channel",
        "INSERT INTO {campaigns} SELECT md5('customer' || i)::uuid, 'spring', 'email', now() "
        "FROM generate_series(1, %(n)s) i WHERE i %% 5 = 0",
        "INSERT INTO {opportunities} SELECT md5('deal' || i || '-' || k)::uuid, "
        "md5('customer' || i)::uuid, 'Deal', (ARRAY['proposal','won','lost'])[1 + k %% 3], "
        "1000, 'EUR' FROM generate_series(1, %(n)s) i, generate_series(0, 2) k",
        "INSERT INTO {tickets} SELECT md5('ticket' || i || '-' || k)::uuid, "
        "md5('customer' || i)::uuid, 'It broke', (ARRAY['open','resolved','closed'])[1 + k %% 3], "
        "5 FROM generate_series(1, %(n)s) i, generate_series(0, 1) k",
        "INSERT INTO {leads} SELECT md5('lead' || i)::uuid, md5('customer' || i)::uuid, NULL, "
        "now() FROM generate_series(1, %(n)s) i WHERE i %% 2 = 0",
        "INSERT INTO {timeline} SELECT md5('event' || i || '-' || k)::uuid, i * 10 + k, "
        "md5('customer' || i)::uuid, k + 1, 'crm.customer.tagged.v1', 'user:a', "
        "now() - (i * 10 + k) * interval '1 minute', 'Tagged', '{{}}'::jsonb, "
        "md5('customer' || i)::uuid, 'customer' FROM generate_series(1, %(n)s) i, "
        "generate_series(0, 9) k",
    ],
    # Tickets: two per customer, one in ten on the board (open or waiting), the rest done.
    "sla": [
        "INSERT INTO {tickets} (ticket_id, customer_id, channel, category, priority, "
        "sla_policy_version, team, agent, status, escalation_level, opened_at, "
        "first_response_due, first_responded_at, resolution_due, paused_at, updated_at) "
        "SELECT md5('ticket' || i)::uuid, md5('customer' || (1 + i %% %(n)s))::uuid, 'email', "
        "'billing', (ARRAY['P1','P2','P3','P4'])[1 + i %% 4], 'v1', 'team' || i %% 8, "
        "'agent:' || i %% 40, CASE i %% 20 WHEN 0 THEN 'open' WHEN 1 THEN 'waiting_on_customer' "
        "WHEN 2 THEN 'resolved' ELSE 'closed' END, 0, "
        "now() - i * interval '10 minutes', now() - i * interval '10 minutes' + interval '4h', "
        "CASE WHEN i %% 3 = 0 THEN now() END, now() - i * interval '10 minutes' + interval '2d', "
        "CASE WHEN i %% 20 = 1 THEN now() END, now() FROM generate_series(1, 2 * %(n)s) i",
        "INSERT INTO {outcomes} SELECT ticket_id, measure, team, priority, true, opened_at "
        "FROM {tickets}, unnest(ARRAY['first_response', 'resolution']) measure "
        "WHERE status NOT IN ('open', 'waiting_on_customer')",
    ],
    # Leads: one in five unassigned, most still open.
    "leads": [
        "INSERT INTO {leads} (lead_id, name, company, channel, campaign, region, status, owner, "
        "score, captured_at, updated_at) SELECT md5('lead' || i)::uuid, 'Lead ' || i, 'Acme', "
        "'web', NULL, (ARRAY['east','west','north','south'])[1 + i %% 4], "
        "(ARRAY['open','open','open','qualified','disqualified','converted'])[1 + i %% 6], "
        "CASE WHEN i %% 5 <> 0 THEN 'user:' || i %% 50 END, NULLIF(i %% 101, 100), "
        "now() - i * interval '1 hour', now() FROM generate_series(1, %(n)s) i",
    ],
    # Tasks: one in four still open, spread over fifty users and eight teams.
    "tasks": [
        "INSERT INTO {tasks} (task_id, title, assignee, team, related_kind, related_id, due_at, "
        "priority, status, created_at, updated_at) SELECT md5('task' || i)::uuid, 'Call back', "
        "'user:' || i %% 50, 'team' || i %% 8, 'lead', md5('lead' || i)::uuid, "
        "now() + (i - %(n)s / 2) * interval '1 hour', 'normal', "
        "(ARRAY['open','completed','completed','cancelled'])[1 + i %% 4], now(), now() "
        "FROM generate_series(1, %(n)s) i",
    ],
    # Deals: one per customer, over the pipeline's stages.
    "funnel": [
        "INSERT INTO {opportunities} (opportunity_id, title, customer_id, owner, region, stage, "
        "amount, currency, opened_at, stage_entered_at) SELECT md5('deal' || i)::uuid, 'Deal', "
        "md5('customer' || i)::uuid, 'user:' || i %% 50, "
        "(ARRAY['east','west','north','south'])[1 + i %% 4], "
        "(ARRAY['qualification','proposal','negotiation','won','lost'])[1 + i %% 5], 1000, 'EUR', "
        "now() - i * interval '1 hour', now() - i * interval '1 hour' "
        "FROM generate_series(1, %(n)s) i",
    ],
}


# --- the hot queries ----------------------------------------------------------------------------

SURVIVOR = customer_id(99)  # customer 100 was merged into it
BOARD = (NOW, DEFAULT_CALENDAR, DEFAULT_POLICY)
# An index: (read model, table, its columns as the view declares them, "pkey", or "*": any).
Index = tuple[str, str, str]


@dataclass(frozen=True)
class Case:
    """A view method as a hot route calls it, and the indexes its one statement must use."""

    query: Callable[[Views], object]
    uses: tuple[Index, ...]
    view: str = ""  # the read model it reads (default: that of the first index)
    seq_scans: tuple[tuple[str, str], ...] = ()  # (read model, table) scanned whole by design

    @property
    def reads(self) -> str:
        return self.view or self.uses[0][0]


CASES = {
    # GET /customers/{id}: every part of the document by its customer's key.
    "customer 360 document": Case(
        lambda v: v.customers.customer(SURVIVOR),
        (
            ("customers", "customers", "pkey"),
            ("customers", "customers", "merged_into"),
            ("customers", "contacts", "pkey"),
            ("customers", "consents", "pkey"),
            ("customers", "campaigns", "pkey"),
            ("customers", "tags", "pkey"),
            ("customers", "leads", "customer_id"),
            ("customers", "opportunities", "customer_id"),
            ("customers", "tickets", "customer_id"),
        ),
    ),
    # GET /customers/{id}/timeline: the profile and a page of the group's events, one statement.
    "customer profile": Case(
        lambda v: v.customers.profile(SURVIVOR), (("customers", "customers", "pkey"),)
    ),
    "customer timeline": Case(
        lambda v: v.customers.owned_timeline(SURVIVOR),
        (
            ("customers", "customers", "pkey"),
            ("customers", "customers", "merged_into"),
            ("customers", "timeline", "customer_id, at DESC, seq DESC"),
        ),
    ),
    # GET /customers: pages walk the name index, each row's tags and consents by its key.
    "customer search": Case(
        lambda v: v.customers.search(),
        (
            ("customers", "customers", "name, customer_id"),
            ("customers", "tags", "pkey"),
            ("customers", "consents", "pkey"),
        ),
    ),
    "customer search, a later page": Case(
        lambda v: v.customers.search(
            cursor=encode_cursor(["Customer 05000", str(customer_id(5000))], "search")
        ),
        (("customers", "customers", "name, customer_id"),),
    ),
    "customer search by tag": Case(
        lambda v: v.customers.search(tag="tag3"),
        (("customers", "customers", "name, customer_id"), ("customers", "tags", "pkey")),
    ),
    # A substring of name, email or phone (strpos) cannot be looked up in a b-tree: the name
    # index is walked in order, filtered, until the page is full. A rare text walks it all;
    # a trigram index would serve it, but needs pg_trgm and a changed query.
    "customer search by text": Case(
        lambda v: v.customers.search(text="customer 0042"),
        (("customers", "customers", "name, customer_id"),),
    ),
    "customer search, a sales rep's customers": Case(
        lambda v: v.customers.search(visible=Visibility(owner="user:7")),
        (("customers", "customers", "*"),),
    ),
    # GET /leads
    "lead queue": Case(lambda v: v.leads.queue(), (("leads", "leads", QUEUE_KEY),)),
    "lead queue, open leads": Case(
        lambda v: v.leads.queue(status="open"), (("leads", "leads", QUEUE_KEY),)
    ),
    "lead queue, a sales rep's and the region's unassigned": Case(
        lambda v: v.leads.queue(visible=Visibility(owner="user:7", or_unassigned_in_region="east")),
        (("leads", "leads", QUEUE_KEY),),
    ),
    # GET /sla/board: the tickets on the board by the status index (two statuses: sorted after).
    "sla board": Case(
        lambda v: v.sla.board_page(*BOARD), (("sla", "tickets", "status, next_due, ticket_id"),)
    ),
    "sla board, one team's": Case(
        lambda v: v.sla.board_page(*BOARD, team="team3"), (("sla", "tickets", "*"),)
    ),
    # Tickets do not carry their customer's region: a regional reader's board joins the
    # customers of the region, a quarter of them, which no index would make cheaper to find.
    "sla board, one region's": Case(
        lambda v: v.sla.board_page(*BOARD, visible=Visibility(region="east")),
        (("sla", "tickets", "status, next_due, ticket_id"),),
        seq_scans=(("customers", "customers"),),
    ),
    # GET /tickets
    "ticket list": Case(lambda v: v.sla.tickets(), (("sla", "tickets", "opened_at, ticket_id"),)),
    "ticket list, one customer's": Case(
        lambda v: v.sla.tickets(customer_id=SURVIVOR), (("sla", "tickets", "customer_id"),)
    ),
    # GET /tasks
    "task list": Case(lambda v: v.tasks.tasks(), (("tasks", "tasks", TASK_KEY),)),
    "task list, mine": Case(lambda v: v.tasks.tasks(assignee="user:7"), (("tasks", "tasks", "*"),)),
    "task list, a team member's": Case(
        lambda v: v.tasks.tasks(visible=Visibility(assignee_or_team=("user:7", "team3"))),
        (("tasks", "tasks", TASK_KEY),),
    ),
    "task list, overdue": Case(
        lambda v: v.tasks.tasks(overdue_at=NOW), (("tasks", "tasks", TASK_KEY),)
    ),
    # GET /opportunities: newest first by the opening-time index (ties sorted incrementally).
    "opportunity list": Case(
        lambda v: v.funnel.opportunities(), (("funnel", "opportunities", "opened_at"),)
    ),
    "opportunity list, one owner's": Case(
        lambda v: v.funnel.opportunities(owner="user:7"), (("funnel", "opportunities", "*"),)
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_hot_query_is_one_statement_served_by_its_indexes(
    views: Views, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    [statement] = statements_of(monkeypatch, getattr(views, case.reads), lambda: case.query(views))
    plan = explain(views, statement)

    used = indexes_used(plan)
    for index in case.uses:
        assert matching(views, index) & used, f"{index} not used:\n{show(plan)}"
    allowed = {table_of(views, read_model, table) for read_model, table in case.seq_scans}
    assert seq_scanned(plan) <= allowed, show(plan)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("ticket list", ("sla", "tickets", "opened_at, ticket_id")),
        ("lead queue", ("leads", "leads", QUEUE_KEY)),
        ("customer 360 document", ("customers", "opportunities", "customer_id")),
    ],
)
def test_without_its_index_the_query_scans_the_whole_table(
    views: Views, name: str, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: drop the index (rolled back) and the plan scans the table."""
    case = CASES[name]
    [statement] = statements_of(monkeypatch, getattr(views, case.reads), lambda: case.query(views))
    [dropped] = matching(views, index)
    with views.datastore.transaction(commit=False) as curs:
        curs.execute(SQL("DROP INDEX {}").format(Identifier(dropped)))
        plan = plan_of(curs.connection, statement)

    assert dropped not in indexes_used(plan)
    assert table_of(views, index[0], index[1]) in seq_scanned(plan), show(plan)


# --- capturing and explaining -------------------------------------------------------------------


Statement = tuple[Composable, Sequence[Any]]


def statements_of(
    monkeypatch: pytest.MonkeyPatch, view: ReadModelView, query: Callable[[], object]
) -> list[Statement]:
    """The statements `query` sends through `view` (each one a round trip), run for real."""
    sent: list[Statement] = []
    fetch = view.fetch

    def recording(statement: Any, params: Sequence[Any] = ()) -> list[Any]:
        sent.append((statement, list(params)))
        return fetch(statement, params)

    with monkeypatch.context() as patch:
        patch.setattr(view, "fetch", recording)
        query()
    return sent


def explain(views: Views, statement: Statement) -> Plan:
    with views.datastore.get_connection() as conn:
        return plan_of(conn, statement)


def plan_of(conn: Connection[DictRow], statement: Statement) -> Plan:
    """The plan of `statement` with its parameters (a custom plan, as its first runs get)."""
    sql, params = statement
    row = conn.execute(SQL("EXPLAIN (FORMAT JSON) ") + sql, params).fetchone()
    assert row is not None
    plan: Plan = row["QUERY PLAN"][0]["Plan"]
    return plan


def nodes(plan: Plan) -> Iterator[Plan]:
    """Every node of a plan, its init plans and subplans included."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def indexes_used(plan: Plan) -> set[str]:
    return {node["Index Name"] for node in nodes(plan) if node["Node Type"] in INDEX_SCANS}


def seq_scanned(plan: Plan) -> set[str]:
    return {node["Relation Name"] for node in nodes(plan) if node["Node Type"] == "Seq Scan"}


def table_of(views: Views, read_model: str, table: str) -> str:
    view: ReadModelView = getattr(views, read_model)
    return view.physical(table)


def matching(views: Views, index: Index) -> set[str]:
    """The physical names of the indexes `index` stands for (their version's)."""
    read_model, table, columns = index
    view: ReadModelView = getattr(views, read_model)
    with views.datastore.get_connection() as conn:
        names = {
            row["indexname"]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s", (view.physical(table),)
            )
        }
    if columns == "*":
        return names
    if columns == "pkey":
        return names & {f"{view.physical(table)}_pkey"}
    return names & {view.physical(f"{table}_ix{view.indexes[table].index(columns)}")}


def show(plan: Plan, depth: int = 0) -> str:
    """A plan as an indented outline, for failure messages."""
    line = "  " * depth + plan["Node Type"]
    for key in ("Relation Name", "Index Name", "Index Cond", "Filter"):
        if key in plan:
            line += f" [{key}: {plan[key]}]"
    return "\n".join([line, *(show(child, depth + 1) for child in plan.get("Plans", ()))])
