"""Service -> management and sales: a ticket about to miss, or missing, its SLA is escalated.

Every change of a ticket's SLA state (opened, paused, resumed, reprioritised, responded, resolved,
reopened, closed) plans its durable timers: per unmet measure a warning at 75 % of the target's
business time and a check at the due time; a responded measure or a finished ticket has none.
A timer decides on the ticket as it is when it fires: a moved due time (pause, new priority)
belongs to another timer, and a ticket paused before its due time has not breached it. A breach
records TicketSlaBreached, escalates the ticket one level and tasks the team lead and the
customer's owner in sales.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import ClassVar
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from domain.shared import Aggregate, DomainEvent, now
from domain.sla import BusinessCalendar
from domain.task import Task
from domain.ticket import (
    ACTIVE,
    ESCALATION_LEVELS,
    SlaMeasure,
    Ticket,
    TicketClosed,
    TicketFirstResponded,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketReopened,
    TicketResolved,
    TicketResumed,
)
from sagas.base import SAGA_NAMESPACE, Records, Saga, Timer, TimerPlan, live_customer

SLA_EVENTS = (
    TicketOpened,
    TicketPausedForCustomer,
    TicketResumed,
    TicketPriorityChanged,
    TicketFirstResponded,
    TicketResolved,
    TicketReopened,
    TicketClosed,
)
WARNING, DUE = "warning", "due"
WARN_AT = 0.75


class SlaEscalationRules(BaseModel):
    """Who hears of a breach: the lead of the ticket's team (or of `service_team`), and the
    customer's owner in `sales_team`; their tasks are due in `task_business_hours`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_team: str = "service"
    team_leads: dict[str, str] = Field(default_factory=dict)
    sales_team: str = "sales"
    task_business_hours: float = Field(default=2.0, gt=0)


def timer_kind(measure: SlaMeasure, stage: str) -> str:
    return f"{measure.value}:{stage}"


def current_due(ticket: Ticket, measure: SlaMeasure) -> datetime:
    if measure is SlaMeasure.FIRST_RESPONSE:
        return ticket.first_response_due
    return ticket.resolution_due


def unmet(ticket: Ticket) -> list[SlaMeasure]:
    """The measures an active ticket can still miss."""
    if ticket.status not in ACTIVE:
        return []
    if ticket.first_responded_at is None:
        return [SlaMeasure.FIRST_RESPONSE, SlaMeasure.RESOLUTION]
    return [SlaMeasure.RESOLUTION]


class SlaEscalationSaga(Saga):
    """Plans a ticket's SLA timers on each change; on a breach escalates and tasks people."""

    name: ClassVar[str] = "sla_escalation"
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]] = SLA_EVENTS
    has_timers: ClassVar[bool] = True

    def __init__(self, rules: SlaEscalationRules, calendar: BusinessCalendar) -> None:
        self.rules = rules
        self.calendar = calendar

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        return []  # a ticket change only moves timers (plan_timers)

    def plan_timers(self, event: DomainEvent, records: Records) -> Sequence[TimerPlan]:
        ticket = records.load(Ticket, event.originator_id, version=event.originator_version)
        timers = []
        for measure in unmet(ticket):
            due = current_due(ticket, measure)
            warn_at = self._warn_at(ticket, due)
            if warn_at > event.timestamp or measure not in ticket.sla_at_risk:
                # a resume past the 75 % mark of a measure already warned about warns no more
                timers.append(
                    self.timer(event, ticket.id, timer_kind(measure, WARNING), warn_at, due)
                )
            timers.append(self.timer(event, ticket.id, timer_kind(measure, DUE), due, due))
        return [TimerPlan(ticket.id, tuple(timers))]

    def _warn_at(self, ticket: Ticket, due: datetime) -> datetime:
        """When 75 % of the target's business time has run (pauses do not count)."""
        paused = ticket.paused_business_time
        target = self.calendar.business_time_between(ticket.created_on, due) - paused
        return self.calendar.add_business_time(ticket.created_on, target * WARN_AT + paused)

    def fire(self, timer: Timer, records: Records) -> Sequence[Aggregate]:
        ticket = records.load(Ticket, timer.subject_id)
        measure_name, stage = timer.kind.split(":")
        measure = SlaMeasure(measure_name)
        if measure not in unmet(ticket) or current_due(ticket, measure) != timer.deadline:
            return []  # met, finished, or the due time moved (another timer watches it)
        sla_clock = ticket.sla_clock_stopped_at or now()
        if stage == WARNING:
            if sla_clock < timer.fire_at:
                return []  # paused before the warning: the resume plans a later one
            ticket.flag_sla_at_risk(measure, timer.deadline)
            return [ticket]
        if sla_clock < timer.deadline:
            return []  # paused before the due time: not missed until the pause is made up
        return self._escalate(timer, ticket, measure, records)

    def _escalate(
        self, timer: Timer, ticket: Ticket, measure: SlaMeasure, records: Records
    ) -> Sequence[Aggregate]:
        lead_task_id = self.timer_record_id(timer, "team-lead")
        if records.exists(lead_task_id):
            return []  # fired already (all effects were saved together)
        ticket.record_sla_breach(measure, timer.deadline)
        level = min(ticket.escalation_level + 1, ESCALATION_LEVELS[-1])
        ticket.escalate(
            level, f"SLA {measure.value} due {timer.deadline:%Y-%m-%d %H:%M} UTC missed"
        )
        customer = live_customer(records, ticket.customer_id)
        team = ticket.team or self.rules.service_team
        due = self.calendar.add_business_time(
            now(), timedelta(hours=self.rules.task_business_hours)
        )
        what = f"SLA breach ({measure.value.replace('_', ' ')}) on '{ticket.subject}'"
        lead = Task.create(
            task_id=lead_task_id,
            title=f"{what}: escalated to level {level}",
            team=team,
            assignee=self.rules.team_leads.get(team),
            related_kind="ticket",
            related_id=ticket.id,
            due_at=due,
            priority="urgent",
            source_saga=self.name,
            cause_id=timer.cause_id,
        )
        owner = Task.create(
            task_id=self.timer_record_id(timer, "customer-owner"),
            title=f"{what} for your customer {customer.name}",
            team=self.rules.sales_team,
            assignee=customer.owner,
            related_kind="ticket",
            related_id=ticket.id,
            due_at=due,
            priority="high",
            source_saga=self.name,
            cause_id=timer.cause_id,
        )
        return [ticket, lead, owner]

    def timer_record_id(self, timer: Timer, purpose: str) -> UUID:
        """The id of the record a timer creates for `purpose`: the same however often it fires."""
        return uuid5(SAGA_NAMESPACE, f"{self.name}/timer/{timer.timer_id}/{purpose}")
