"""Key-account alerts on real PostgreSQL: trouble on a ticket tasks each open deal's owner once."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from domain.application import CRM
from domain.shared import DomainEvent
from domain.task import Task, TaskCreated
from domain.ticket import TicketOpened, TicketPriorityChanged, TicketRated, TicketReopened
from infra.sagas import SagaEventFailed, SagaRunner
from sagas.account_portfolio import AccountPortfolio, KeyAccountAlertRaised, portfolio_id
from sagas.key_account_alert import KeyAccountAlertSaga, KeyAccountRules
from tests.domain.scenario import MONDAY_9AM
from tests.sagas.flows import crashing, customer, deal, effects_of, head, last_of, log, rewind, win

ACTOR = "saga:key_account_alert"


@pytest.fixture
def saga(crm: CRM) -> KeyAccountAlertSaga:
    return KeyAccountAlertSaga(KeyAccountRules(sales_team="key-accounts"), crm.config.calendar)


@pytest.fixture
def alerts(saga: KeyAccountAlertSaga, crm: CRM) -> SagaRunner:
    return SagaRunner(saga, crm)


def ticket(crm: CRM, customer_id: UUID, priority: str = "P3") -> UUID:
    return crm.open_ticket(
        customer_id=customer_id, channel="phone", subject="Outage", priority=priority
    ).id


def tasks_for(crm: CRM, cause: DomainEvent) -> dict[str, Task]:
    created = [e for e in effects_of(crm, cause) if isinstance(e, TaskCreated)]
    return {e.assignee or "": crm.commands.load(Task, e.originator_id) for e in created}


def all_tasks(crm: CRM) -> int:
    return sum(isinstance(e, TaskCreated) for e in log(crm))


def test_a_p1_ticket_gives_each_owner_of_an_open_deal_a_task(crm: CRM, alerts: SagaRunner) -> None:
    acme = customer(crm)
    deal(crm, acme, owner="bob")
    deal(crm, acme, owner="bob")
    deal(crm, acme, owner="carol")
    win(crm, deal(crm, acme, owner="dave"))
    crm.lose_opportunity(deal(crm, acme, owner="erin"), reason="no budget")
    p1 = ticket(crm, acme, "P1")

    alerts.catch_up()

    cause = last_of(crm, p1, TicketOpened)
    tasks = tasks_for(crm, cause)
    assert sorted(tasks) == ["bob", "carol"]  # one task per owner, closed deals ignored
    for task in tasks.values():
        assert (task.related_kind, task.related_id, task.team) == ("ticket", p1, "key-accounts")
        assert (task.priority, task.source_saga) == ("urgent", "key_account_alert")
        assert task.due_at == MONDAY_9AM + timedelta(hours=4)
    assert "P1 ticket opened" in tasks["bob"].title
    effects = effects_of(crm, cause)
    assert all(e.actor == ACTOR and e.correlation_id == cause.correlation_id for e in effects)
    [raised] = [e for e in effects if isinstance(e, KeyAccountAlertRaised)]
    assert raised.owners == ["bob", "carol"] and len(raised.opportunity_ids) == 3


def test_raising_to_p1_reopening_and_a_low_csat_alert_but_other_ticket_events_do_not(
    crm: CRM, alerts: SagaRunner
) -> None:
    acme, quiet = customer(crm), customer(crm, "Quiet")
    lost = deal(crm, acme, owner="bob")
    crm.lose_opportunity(lost, reason="timing")
    crm.reopen_opportunity(lost)  # open again: it counts
    raised, reopened, rated, fine = (ticket(crm, acme) for _ in range(4))
    crm.change_ticket_priority(raised, "P1")
    for done in (reopened, rated, fine):
        crm.resolve_ticket(done, "Fixed")
    crm.reopen_ticket(reopened)
    crm.rate_ticket(rated, 2)
    crm.rate_ticket(fine, 3)
    ticket(crm, quiet, "P1")  # no deals: no one to tell

    alerts.catch_up()

    causes = [
        last_of(crm, raised, TicketPriorityChanged),
        last_of(crm, reopened, TicketReopened),
        last_of(crm, rated, TicketRated),
    ]
    assert [sorted(tasks_for(crm, cause)) for cause in causes] == [["bob"]] * 3
    assert [t.priority for cause in causes for t in tasks_for(crm, cause).values()] == [
        "urgent",
        "high",
        "high",
    ]
    assert all_tasks(crm) == 3
    assert crm.commands.load(AccountPortfolio, portfolio_id(acme)).open_deals().keys() == {lost}


def test_a_crash_between_reading_and_writing_loses_nothing_and_duplicates_nothing(
    crm: CRM, saga: KeyAccountAlertSaga
) -> None:
    acme = customer(crm)
    deal(crm, acme, owner="bob")
    first, second = ticket(crm, acme, "P1"), ticket(crm, acme, "P1")
    dies = crashing(saga, lambda event: event.originator_id == second)

    with pytest.raises(SagaEventFailed):
        SagaRunner(dies, crm).catch_up()
    assert all_tasks(crm) == 1

    assert SagaRunner(saga, crm).catch_up() == 1

    for p1 in (first, second):
        assert list(tasks_for(crm, last_of(crm, p1, TicketOpened))) == ["bob"]
    assert all_tasks(crm) == 2


def test_running_again_from_position_zero_decides_nothing_again_on_later_deals(
    crm: CRM, alerts: SagaRunner
) -> None:
    acme = customer(crm)
    early = deal(crm, acme, owner="bob")
    ticket(crm, acme, "P1")  # bob hears of it
    win(crm, early)
    lonely = ticket(crm, acme, "P1")  # no open deal at this point of the log: nobody
    deal(crm, acme, owner="carol")  # opened later; must not be told of the lonely ticket
    alerts.catch_up()
    before, finished_at = head(crm), alerts.position()
    rewind(alerts)

    assert alerts.catch_up() == 5  # two deals opened, one won, two P1 tickets

    assert head(crm) == before
    assert alerts.position() == finished_at
    assert tasks_for(crm, last_of(crm, lonely, TicketOpened)) == {}
    assert all_tasks(crm) == 1
