"""Won-deal onboarding on real PostgreSQL: one ticket, one task, the tier, once per win."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from domain.application import CRM
from domain.customer import Customer, CustomerTierChanged
from domain.opportunity import OpportunityWon
from domain.sla import DEFAULT_POLICY, Priority
from domain.task import Task, TaskCreated
from domain.ticket import Ticket, TicketOpened
from infra.sagas import SagaEventFailed, SagaRunner
from sagas.deal_won_onboarding import (
    DealWonOnboardingSaga,
    OnboardingRules,
    WinCounted,
    WonTotal,
    won_total_id,
)
from tests.domain.scenario import MONDAY_9AM
from tests.sagas.flows import crashing, customer, deal, effects_of, head, last_of, rewind, win

ACTOR = "saga:deal_won_onboarding"
RULES = OnboardingRules(
    service_team="onboarding-east",
    task_business_days=2,
    tier_thresholds={
        "CNY": {"silver": Decimal(100_000), "gold": Decimal(500_000)},
        "USD": {"platinum": Decimal(1_000_000)},
    },
)


@pytest.fixture
def saga(crm: CRM) -> DealWonOnboardingSaga:
    return DealWonOnboardingSaga(RULES, DEFAULT_POLICY, crm.config.calendar)


@pytest.fixture
def onboarding(saga: DealWonOnboardingSaga, crm: CRM) -> SagaRunner:
    return SagaRunner(saga, crm)


def test_a_won_deal_opens_an_onboarding_ticket_raises_the_tier_and_tasks_the_service_team(
    crm: CRM, onboarding: SagaRunner, saga: DealWonOnboardingSaga
) -> None:
    acme = customer(crm)
    won = deal(crm, acme)
    win(crm, won, "120000")

    assert onboarding.catch_up() == 1

    cause = last_of(crm, won, OpportunityWon)
    effects = effects_of(crm, cause)
    assert sorted(type(e).__name__ for e in effects) == sorted(
        ["TicketOpened", "WonTotalStarted", "WinCounted", "CustomerTierChanged", "TaskCreated"]
    )
    assert all(e.actor == ACTOR and e.correlation_id == cause.correlation_id for e in effects)
    ticket = crm.commands.load(Ticket, saga.record_id(cause, "onboarding-ticket"))
    assert (ticket.customer_id, ticket.priority, ticket.category) == (
        acme,
        Priority.P3,
        "onboarding",
    )
    task = crm.commands.load(Task, saga.record_id(cause, "onboarding-task"))
    assert (task.team, task.assignee, task.related_id) == ("onboarding-east", None, acme)
    assert task.due_at == MONDAY_9AM + timedelta(days=1, hours=9)  # Tuesday at closing
    assert (task.source_saga, task.cause_id) == ("deal_won_onboarding", cause.event_id)
    assert crm.commands.load(Customer, acme).tier == "silver"


def test_the_tier_follows_the_won_total_per_currency_and_is_never_lowered(
    crm: CRM, onboarding: SagaRunner
) -> None:
    acme = customer(crm)
    crm.change_customer_tier(acme, "platinum", reason="strategic account")
    beta = customer(crm, "Beta")
    for amount, currency in (("60000", "CNY"), ("60000", "CNY"), ("900000", "USD")):
        won = deal(crm, beta, amount, currency)
        win(crm, won, amount, currency)
    win(crm, deal(crm, acme, "600000"), "600000")
    onboarding.catch_up()

    tiers = [e for e in crm.history(beta) if isinstance(e, CustomerTierChanged)]
    assert [(t.previous_tier, t.tier) for t in tiers] == [("standard", "silver")]
    assert tiers[0].reason == "won total 120000 CNY"  # the second CNY win crossed 100 000
    total = crm.commands.load(WonTotal, won_total_id(beta))
    assert total.totals == {"CNY": Decimal(120_000), "USD": Decimal(900_000)}  # never added up
    assert crm.commands.load(Customer, acme).tier == "platinum"  # gold earned, platinum kept


def test_a_crash_between_reading_and_writing_loses_nothing_and_duplicates_nothing(
    crm: CRM, saga: DealWonOnboardingSaga
) -> None:
    acme = customer(crm)
    first, second = deal(crm, acme), deal(crm, acme)
    win(crm, first, "70000")
    win(crm, second, "70000")
    dies = crashing(saga, lambda event: event.originator_id == second)

    with pytest.raises(SagaEventFailed):
        SagaRunner(dies, crm).catch_up()
    assert crm.commands.load(Customer, acme).tier == "standard"

    assert SagaRunner(saga, crm).catch_up() == 1

    assert crm.commands.load(Customer, acme).tier == "silver"
    for won in (first, second):
        cause = last_of(crm, won, OpportunityWon)
        kinds = [type(e) for e in effects_of(crm, cause)]
        assert kinds.count(TicketOpened) == kinds.count(TaskCreated) == kinds.count(WinCounted) == 1
    assert crm.commands.load(WonTotal, won_total_id(acme)).totals == {"CNY": Decimal(140_000)}


def test_running_again_from_position_zero_over_a_finished_history_creates_nothing(
    crm: CRM, onboarding: SagaRunner
) -> None:
    acme = customer(crm)
    for amount in ("50000", "80000", "400000"):
        win(crm, deal(crm, acme, amount), amount)
    onboarding.catch_up()
    before, finished_at = head(crm), onboarding.position()
    rewind(onboarding)

    assert onboarding.catch_up() == 3

    assert head(crm) == before
    assert onboarding.position() == finished_at
    assert crm.commands.load(Customer, acme).tier == "gold"
