"""What the saga tests share: records to react to, the effects of a cause, crashes, rewinds."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Identifier

from domain.application import CRM
from domain.shared import DomainEvent
from infra.sagas import TRACKING_TABLE, SagaRunner
from sagas.base import Records, Saga


def head(crm: CRM) -> int:
    """The position of the last event in the log."""
    return crm.recorder.max_notification_id() or 0


def log(crm: CRM) -> list[DomainEvent]:
    """Every event in the log, in order."""
    notifications = crm.recorder.select_notifications(start=1, limit=1_000_000)
    return [crm.mapper.to_domain_event(n) for n in notifications]  # type: ignore[misc]


def effects_of(crm: CRM, cause: DomainEvent) -> list[DomainEvent]:
    """Every event the log says `cause` caused."""
    return [e for e in log(crm) if e.causation_id == cause.event_id]


def last_of(crm: CRM, record_id: UUID, kind: type[DomainEvent]) -> DomainEvent:
    """The record's most recent event of this kind."""
    return [e for e in crm.history(record_id) if isinstance(e, kind)][-1]


def rewind(runner: SagaRunner) -> None:
    """Forget the saga's position, as if it were started from position zero."""
    with runner.crm.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
        curs.execute(
            SQL("DELETE FROM {} WHERE application_name = %s").format(Identifier(TRACKING_TABLE)),
            (runner.saga.name,),
        )


def crashing(saga: Saga, when: Callable[[Any], bool], policy: str = "react") -> Saga:
    """The saga, except that its process dies after its `policy` (react, plan_timers or fire)
    has read the records and decided on the causes (or timers) `when` picks."""
    copied = copy.copy(saga)
    decide = getattr(saga, policy)

    def crash(cause: Any, records: Records) -> Any:
        decided = decide(cause, records)  # everything read and decided ...
        if when(cause):
            raise RuntimeError("process killed")  # ... and then the process dies
        return decided

    setattr(copied, policy, crash)
    return copied


def customer(crm: CRM, name: str = "Acme", owner: str = "alice", **fields: str) -> UUID:
    details = {"kind": "company", "name": name, "region": "east", "owner": owner}
    return crm.register_customer(**(details | fields)).id  # type: ignore[arg-type]


def deal(
    crm: CRM, customer_id: UUID, amount: str = "100000", currency: str = "CNY", owner: str = "bob"
) -> UUID:
    """An opportunity at `proposal`, ready to be won."""
    deal_id = crm.open_opportunity(
        customer_id=customer_id,
        title=f"Deal for {amount} {currency}",
        amount=amount,
        currency=currency,
        expected_close=date(2026, 6, 30),
        owner=owner,
    ).id
    crm.move_opportunity_stage(deal_id, "proposal")
    return deal_id


def win(crm: CRM, deal_id: UUID, amount: str = "100000", currency: str = "CNY") -> None:
    crm.win_opportunity(deal_id, amount=amount, currency=currency, contract_reference="C-1")
