"""Marketing -> sales: every captured lead is scored, given an owner and a first-contact task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from domain.lead import Lead, LeadCaptured
from domain.shared import Aggregate, DomainEvent
from domain.sla import BusinessCalendar
from domain.task import Task
from sagas.base import Records, Saga
from sagas.routing import RoutingRules, SalesRotation, rotation_id, route, score, team_of

HOT_SCORE = 70  # a lead scoring this much gets a high-priority first contact


class LeadRoutingSaga(Saga):
    """On LeadCaptured: score the lead, assign it by the routing rules, and hand its owner (or
    the fallback queue) a first-contact task due within the configured business hours."""

    name: ClassVar[str] = "lead_routing"
    reacts_to: ClassVar[tuple[type[DomainEvent], ...]] = (LeadCaptured,)

    def __init__(self, rules: RoutingRules, calendar: BusinessCalendar) -> None:
        self.rules = rules
        self.calendar = calendar

    def react(self, event: DomainEvent, records: Records) -> Sequence[Aggregate]:
        if not isinstance(event, LeadCaptured):
            return []
        task_id = self.record_id(event, "first-contact")
        if records.exists(task_id):
            return []  # handled already: the task is saved with every other effect of the cause
        lead = records.load(Lead, event.originator_id)
        if lead.status != "open":
            return []  # someone qualified, disqualified or converted it before we got here
        points, reasons = score(lead, self.rules.scoring)
        lead.score(points, (*reasons, f"scoring rules v{self.rules.version}"))
        changed: list[Aggregate] = [lead]
        team, assignee = team_of(lead.owner, self.rules), lead.owner  # assigned by hand
        if lead.owner is None:
            rotation = self._rotation(lead.region, records)
            chosen = route(lead.region, self.rules, rotation.turns if rotation else 0)
            lead.assign(
                chosen.owner,
                f"{chosen.rule_id}@v{self.rules.version}",
                chosen.explanation(self.rules.version),
            )
            team, assignee = chosen.team, chosen.assignee
            if rotation is not None and chosen.counter is not None:
                rotation.take_turn(lead.id, chosen.owner)
                changed.append(rotation)
        due = self.calendar.add_business_time(
            event.timestamp, timedelta(hours=self.rules.first_contact_business_hours)
        )
        task = Task.create(
            task_id=task_id,
            title=f"First contact: {lead.name}",
            team=team,
            assignee=assignee,
            related_kind="lead",
            related_id=lead.id,
            due_at=due,
            priority="high" if points >= HOT_SCORE else "normal",
            source_saga=self.name,
            cause_id=event.event_id,
        )
        return [*changed, task]

    def _rotation(self, region: str, records: Records) -> SalesRotation | None:
        """The round-robin of the team the lead's territory names (started on first use)."""
        probe = route(region, self.rules, 0)
        if probe.counter is None:
            return None  # the fallback queue takes no turns
        found = records.find(SalesRotation, rotation_id(probe.team))
        return found or SalesRotation.start(probe.team)
