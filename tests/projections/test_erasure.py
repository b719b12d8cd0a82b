"""Erasure in the read models: no row keeps an erased value, figures stay, rebuilds agree."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

from psycopg.sql import SQL, Identifier

from domain.application import CRM
from domain.personal import REDACTED
from domain.shared import FixedClock
from projections.catalog import READ_MODELS
from projections.catchup import catch_up as catch_up_view
from projections.customer_360 import Customer360View
from projections.lead_queue import LeadQueueView
from projections.pipeline_forecast import PipelineForecastView
from projections.readmodel import ReadModelView
from projections.replay import replay
from projections.sales_funnel import SalesFunnelView
from projections.sla_board import SlaBoardView
from projections.task_list import TaskListView
from tests.projections.test_replay import assert_same_rows, live_read_models, next_versions


def tables_holding(crm: CRM, text: str) -> list[str]:
    """Every read-model table (any version) with a row whose text holds `text`, in any case."""
    datastore = crm.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.cursor() as curs:
        curs.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'rm\\_%'")
        tables = [row["tablename"] for row in curs.fetchall()]
        assert tables, "no read-model tables to search"
        found = []
        for table in tables:
            curs.execute(
                SQL("SELECT 1 FROM {} t WHERE t::text ILIKE %s LIMIT 1").format(Identifier(table)),
                (f"%{text}%",),
            )
            if curs.fetchone() is not None:
                found.append(table)
    return found


def view_of(views: list[ReadModelView], view_class: type[ReadModelView]) -> Any:
    return next(view for view in views if isinstance(view, view_class))


def catch_up(crm: CRM, views: list[ReadModelView]) -> None:
    for spec, view in zip(READ_MODELS, views, strict=True):
        catch_up_view(spec.projection(view=view), crm.recorder, crm.mapper, batch_size=3)


def figures(views: list[ReadModelView]) -> dict[str, Any]:
    """The business figures an erasure must leave as they were."""
    funnel: SalesFunnelView = view_of(views, SalesFunnelView)
    sla: SlaBoardView = view_of(views, SlaBoardView)
    forecast: PipelineForecastView = view_of(views, PipelineForecastView)
    return {
        "stages": funnel.stages(),
        "conversion": funnel.conversion(),
        "compliance": {by: sla.compliance(by) for by in ("team", "priority", "month")},
        "forecast": forecast.forecast(),
    }


def record_a_persons_story(crm: CRM, clock: FixedClock, mark: str, n: int) -> dict[str, UUID]:
    """A customer, a lead converted into it and a lead of their own, all full of `mark`."""
    customer = crm.register_customer(
        kind="person",
        name=f"Zoe {mark}",
        region="east",
        owner="user:alice",
        email=f"zoe.{mark}@example.com",
        phone=f"+86 138 0000 424{n}",
    ).id
    crm.update_customer_profile(customer, name=f"Zoe Q {mark}")
    crm.add_customer_contact(customer, name=f"Pa {mark}", email=f"pa.{mark}@example.com")
    crm.log_customer_interaction(customer, kind="call", summary=f"Zoe said {mark}")
    crm.record_customer_consent(customer, "email", granted=True, legal_basis="consent")
    crm.enrol_customer_in_campaign(customer, "autumn-offers", channel="email")
    ticket = crm.open_ticket(
        customer_id=customer,
        channel="email",
        subject=f"Help {mark}",
        description=f"My address is {mark}",
        priority="P2",
    ).id
    crm.assign_ticket(ticket, "user:dana", team="support")
    crm.record_ticket_first_response(ticket)
    clock.advance(hours=1)
    crm.resolve_ticket(ticket, f"Fixed for {mark}")
    crm.rate_ticket(ticket, 4, f"Thanks from {mark}")
    converted = crm.capture_lead(
        channel="web_form", name=f"Zoe L {mark}", region="east", email=f"l.{mark}@example.com"
    ).id
    crm.log_lead_activity(converted, kind="call", summary=f"Lead call {mark}")
    crm.disqualify_lead(converted, f"Said {mark}")
    crm.reopen_lead(converted)
    crm.qualify_lead(converted)
    deal = crm.open_opportunity(
        customer_id=customer,
        title="Plan",
        amount="5000.00",
        currency="CNY",
        expected_close=date(2026, 9, 30),
        owner="user:alice",
        source_lead_id=converted,
    ).id
    crm.convert_lead(converted, customer, deal)
    crm.move_opportunity_stage(deal, "proposal")
    task = crm.create_task(
        title=f"Ring {mark}",
        team="east-sales",
        related_kind="customer",
        related_id=customer,
        due_at=clock.now() + timedelta(hours=2),
    ).id
    crm.complete_task(task, f"Done {mark}")
    own = crm.capture_lead(
        channel="event", name=f"Ola {mark}", region="east", phone=f"1381234000{n}"
    )
    crm.log_lead_activity(own.id, kind="note", summary=f"Met {mark}")
    crm.create_task(
        title=f"Follow up {mark}",
        team="east-sales",
        related_kind="lead",
        related_id=own.id,
        due_at=clock.now() + timedelta(hours=3),
    )
    clock.advance(hours=1)
    return {
        "customer": customer,
        "ticket": ticket,
        "converted": converted,
        "lead": own.id,
        "deal": deal,
    }


def test_after_an_erasure_no_read_model_row_holds_the_erased_data_and_figures_stay(
    crm: CRM, clock: FixedClock
) -> None:
    mark, other = f"qx{uuid4().hex[:10]}", f"kp{uuid4().hex[:10]}"
    erased = record_a_persons_story(crm, clock, mark, 1)
    kept = record_a_persons_story(crm, clock, other, 2)
    views = live_read_models(crm)
    assert len(tables_holding(crm, mark)) >= 3  # the search finds what is there
    before = figures(views)

    crm.erase_customer(
        erased["customer"],
        reason="Data subject request",
        records=[erased["ticket"], erased["converted"]],
    )
    crm.erase_lead(erased["lead"], reason="Data subject request")
    catch_up(crm, views)

    assert tables_holding(crm, mark) == []
    assert len(tables_holding(crm, other)) >= 3  # nobody else's data went
    assert figures(views) == before
    c360: Customer360View = view_of(views, Customer360View)
    doc = c360.customer(erased["customer"])
    assert doc is not None
    assert (doc["name"], doc["email"], doc["phone"]) == (REDACTED, REDACTED, REDACTED)
    assert doc["erased_at"] == clock.now()
    assert [c["name"] for c in doc["contacts"]] == [REDACTED]
    assert doc["campaigns"] == []  # nobody is contacted about an erased person
    assert doc["counts"]["won_opportunities"] + doc["counts"]["open_opportunities"] == 1
    assert c360.customer(kept["customer"])["erased_at"] is None  # type: ignore[index]
    queue: LeadQueueView = view_of(views, LeadQueueView)
    for lead in (erased["lead"], erased["converted"]):
        row = queue.get(lead)
        assert row is not None and (row["name"], row["erased_at"]) == (REDACTED, clock.now())
    tasks: TaskListView = view_of(views, TaskListView)
    about = {erased["customer"], erased["lead"]}
    titles = [row["title"] for row in tasks.tasks()[0] if row["related_id"] in about]
    assert titles == [REDACTED, REDACTED]

    rebuilt = next_versions(views)
    replay(
        [spec.projection(view=v) for spec, v in zip(READ_MODELS, rebuilt, strict=True)],
        crm.recorder,
        crm.mapper,
        page_size=5,
    )
    assert_same_rows(views, rebuilt)


def test_an_erasure_reaches_the_customers_records_and_those_about_it_but_no_other_person(
    crm: CRM, clock: FixedClock
) -> None:
    mark = f"qx{uuid4().hex[:10]}"
    erased = record_a_persons_story(crm, clock, mark, 1)
    # No record named: its leads are people of their own (they keep their data), while its
    # ticket and the task about it are the customer's; seen live only after the erasure.
    crm.erase_customer(erased["customer"], reason="Data subject request")
    views = live_read_models(crm)

    gone = [
        f"Zoe Q {mark}",
        f"zoe.{mark}@example",
        f"Pa {mark}",
        f"Zoe said {mark}",
        f"Help {mark}",
    ]
    gone += [f"address is {mark}", f"Fixed for {mark}", f"Thanks from {mark}", f"Ring {mark}"]
    assert {text: tables_holding(crm, text) for text in gone} == dict.fromkeys(gone, [])
    kept = [f"Zoe L {mark}", f"Lead call {mark}", f"Said {mark}", f"Ola {mark}", f"Met {mark}"]
    for text in [*kept, f"Follow up {mark}"]:
        assert tables_holding(crm, text) != [], text
    rebuilt = next_versions(views)
    replay(
        [spec.projection(view=v) for spec, v in zip(READ_MODELS, rebuilt, strict=True)],
        crm.recorder,
        crm.mapper,
    )
    assert_same_rows(views, rebuilt)


def test_a_withdrawn_consent_ends_the_campaigns_on_its_channel_only(
    crm: CRM, clock: FixedClock
) -> None:
    customer = crm.register_customer(kind="person", name="Mo", region="east", owner="u").id
    for channel in ("email", "sms"):
        crm.record_customer_consent(customer, channel, granted=True, legal_basis="consent")
    crm.enrol_customer_in_campaign(customer, "news", channel="email")
    crm.enrol_customer_in_campaign(customer, "deals", channel="sms")
    views = live_read_models(crm)
    c360: Customer360View = view_of(views, Customer360View)
    assert [c["campaign"] for c in c360.customer(customer)["campaigns"]] == ["deals", "news"]  # type: ignore[index]

    crm.record_customer_consent(customer, "email", granted=False, legal_basis="consent")
    catch_up(crm, views)

    assert c360.customer(customer)["campaigns"] == [  # type: ignore[index]
        {"campaign": "deals", "channel": "sms", "enrolled_at": clock.now()}
    ]
