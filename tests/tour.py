"""A scripted day in the CRM that records at least one event of every type (for store tests)."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

from domain.application import CRM
from domain.shared import FixedClock
from infra.sagas import SagaRunner
from sagas.deal_won_onboarding import DealWonOnboardingSaga, OnboardingRules
from sagas.key_account_alert import KeyAccountAlertSaga, KeyAccountRules
from sagas.lead_routing import LeadRoutingSaga
from sagas.routing import RoutingRules, SalesUser, Territory
from sagas.sla_escalation import SlaEscalationRules, SlaEscalationSaga

ROUTING = RoutingRules(
    version=1,
    territories=(Territory(id="territory-east", regions=("east",), team="east-sales"),),
    sales_users=(SalesUser(username="user:alice", team="east-sales", capacity=1),),
    fallback_team="sales",
)


def exercise_every_command(crm: CRM, clock: FixedClock) -> list[UUID]:
    """Run every use case at least once; returns the ids of the records it touched."""
    acme = crm.register_customer(
        kind="company",
        name="Acme",
        region="east",
        owner="user:alice",
        email="info@acme.example.com",
        phone="+86 138 0000 0001",
        industry="retail",
    ).id
    dup = crm.register_customer(
        kind="company",
        name="ACME Ltd",
        region="east",
        owner="user:bob",
        email="hello@acme.example.com",
    ).id
    crm.update_customer_profile(acme, email="sales@acme.example.com", industry="wholesale")
    crm.add_customer_contact(acme, name="Wang Fang", title="CFO", email="wf@acme.example.com")
    crm.add_customer_contact(acme, name="Temp", contact_id=UUID(int=7))
    crm.remove_customer_contact(acme, UUID(int=7))
    crm.tag_customer(acme, "VIP")
    crm.tag_customer(acme, "churn-risk")
    crm.untag_customer(acme, "churn-risk")
    crm.assign_customer_owner(acme, "user:chen")
    crm.log_customer_interaction(acme, kind="call", summary="Kick-off call")
    crm.record_customer_consent(acme, "email", granted=True, legal_basis="consent")
    crm.enrol_customer_in_campaign(acme, "spring-newsletter", channel="email")
    crm.record_customer_billing_details(
        acme, id_number="91310000MA1FL2XQ3B", bank_account="6222021234567890128"
    )
    crm.change_customer_tier(acme, "gold", reason="Annual revenue above 1M")
    crm.merge_customers(acme, dup)
    crm.register_customer(  # the merged duplicate's email is free again: its claim is re-taken
        kind="person",
        name="Hello Desk",
        region="east",
        owner="user:bob",
        email="hello@acme.example.com",
    )

    lead = crm.capture_lead(
        channel="web_form",
        name="Li Lei",
        region="east",
        email="li@example.com",
        company="Li Trading",
        campaign="spring-expo",
        utm={"source": "google", "medium": "cpc"},
    ).id
    crm.score_lead(lead, 70, ["complete contact data", "campaign"])
    crm.assign_lead(lead, "user:alice", rule_id="territory-east@1", explanation="east region")
    crm.log_lead_activity(lead, kind="call", summary="Interested in the premium plan")
    crm.disqualify_lead(lead, "No budget this year")
    crm.reopen_lead(lead)
    crm.qualify_lead(lead)
    crm.request_lead_conversion(lead)  # then converted by hand before the saga gets to it

    deal = crm.open_opportunity(
        customer_id=acme,
        title="Premium plan",
        amount="120000.00",
        currency="CNY",
        expected_close=date(2026, 6, 30),
        owner="user:alice",
        source_lead_id=lead,
    ).id
    crm.convert_lead(lead, acme, deal)
    crm.move_opportunity_stage(deal, "needs_analysis")
    crm.change_opportunity_amount(deal, "150000.00", "CNY")
    crm.change_opportunity_expected_close(deal, date(2026, 7, 31))
    crm.lose_opportunity(deal, reason="Went silent", competitor="Rival Inc")
    crm.reopen_opportunity(deal)
    crm.move_opportunity_stage(deal, "proposal")
    crm.win_opportunity(deal, amount="140000.00", currency="CNY", contract_reference="C-2026-001")

    ticket = crm.open_ticket(
        customer_id=acme,
        channel="email",
        subject="Invoice missing",
        priority="P3",
        category="billing",
    ).id
    crm.assign_ticket(ticket, "user:dana", team="billing")
    crm.record_ticket_first_response(ticket)
    crm.wait_on_customer(ticket)
    clock.advance(hours=2)
    crm.resume_ticket(ticket)
    crm.change_ticket_priority(ticket, "P2")
    crm.escalate_ticket(ticket, 1, "Customer is a key account")
    crm.resolve_ticket(ticket, "Invoice re-sent")
    clock.advance(days=1)
    crm.reopen_ticket(ticket)
    crm.resolve_ticket(ticket, "Invoice re-sent again, confirmed received")
    crm.rate_ticket(ticket, 5, "Quick and friendly")
    crm.close_ticket(ticket)

    task = crm.create_task(
        title="Call back about the premium plan",
        team="east-sales",
        related_kind="lead",
        related_id=lead,
        due_at=clock.now() + timedelta(hours=2),
        assignee="user:alice",
    ).id
    crm.reassign_task(task, "user:bob")
    crm.complete_task(task, "Called, sent the offer")
    dropped = crm.create_task(
        title="Send the brochure",
        team="east-sales",
        related_kind="customer",
        related_id=acme,
        due_at=clock.now() + timedelta(days=1),
    ).id
    crm.cancel_task(dropped, "Customer asked not to be sent paper")

    routed = crm.capture_lead(
        channel="web_form", name="Han Mei", region="east", email="han.mei@example.com"
    ).id
    SagaRunner(LeadRoutingSaga(ROUTING, crm.config.calendar), crm).catch_up()
    onboarding = DealWonOnboardingSaga(
        OnboardingRules(), crm.config.sla_policy, crm.config.calendar
    )
    SagaRunner(onboarding, crm).catch_up()  # the won deal: its ticket, task and won total
    key_accounts = KeyAccountAlertSaga(KeyAccountRules(), crm.config.calendar)
    SagaRunner(key_accounts, crm).catch_up()  # acme's deals, and an alert for the reopened ticket

    late = crm.open_ticket(customer_id=acme, channel="phone", subject="Line down", priority="P3").id
    sla = SagaRunner(SlaEscalationSaga(SlaEscalationRules(), crm.config.calendar), crm)
    sla.catch_up()  # every ticket's SLA timers
    clock.advance(days=7)
    sla.fire_due_timers()  # the late ticket: warned, breached, escalated, two tasks per breach

    erased = crm.register_customer(
        kind="person",
        name="Erin Erased",
        region="east",
        owner="user:alice",
        email="erin@erased.example.com",
        phone="+86 138 0000 0099",
    ).id
    crm.add_customer_contact(erased, name="Erin's assistant", email="pa@erased.example.com")
    crm.log_customer_interaction(erased, kind="call", summary="Erin asked to be forgotten")
    crm.record_customer_billing_details(erased, id_number="110105194912310021", bank_account=None)
    their_ticket = crm.open_ticket(
        customer_id=erased, channel="email", subject="Forget me", priority="P4"
    ).id
    crm.erase_customer(erased, reason="Data subject request", records=[their_ticket])
    forgotten = crm.capture_lead(
        channel="event", name="Fay Forgotten", region="east", phone="+86 138 0000 0098"
    ).id
    crm.log_lead_activity(forgotten, kind="note", summary="Met Fay at the expo")
    crm.erase_lead(forgotten, reason="Data subject request")
    return [acme, dup, lead, deal, ticket, task, dropped, routed, late, erased, forgotten]
