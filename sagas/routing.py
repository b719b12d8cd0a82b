"""Lead scoring and routing rules (configured), and each team's round-robin rotation (recorded).

Routing is ordered: the first territory whose regions include the lead's region names a team;
the team's sales users with capacity > 0 take turns by smooth weighted round-robin (a user of
capacity 2 gets two turns in every cycle, spread out); a lead matching no territory, or a team
without candidates, goes to the fallback queue. The turn counter lives in the team's
`SalesRotation`, saved with the assignment, so the same history and rules give the same owners.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from domain.lead import Lead
from domain.shared import Aggregate, CreationEvent, DomainEvent
from sagas.base import SAGA_NAMESPACE

MAX_SCORE = 100


class ScoringRules(BaseModel):
    """Points a lead earns for its channel and for what it told us."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: dict[str, int] = Field(
        default_factory=lambda: {
            "referral": 30,
            "event": 25,
            "phone": 20,
            "web_form": 15,
            "landing_page": 15,
            "ads": 10,
            "import": 5,
        }
    )
    email: int = 10
    phone: int = 10
    company: int = 15
    interest: int = 15
    campaign: int = 10


class Territory(BaseModel):
    """A routing rule: leads from these regions go to this team."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    regions: tuple[str, ...]
    team: str


class SalesUser(BaseModel):
    """A user who takes leads for a team; capacity is their share of turns (0: none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str
    team: str
    capacity: int = Field(default=1, ge=0)


class RoutingRules(BaseModel):
    """Everything lead routing is configured with; bump `version` whenever it changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    scoring: ScoringRules = ScoringRules()
    territories: tuple[Territory, ...] = ()
    sales_users: tuple[SalesUser, ...] = ()
    fallback_team: str = "sales"
    first_contact_business_hours: float = Field(default=2.0, gt=0)

    @property
    def fallback_queue(self) -> str:
        """The owner a lead gets when no one is chosen: the fallback team's queue."""
        return f"queue:{self.fallback_team}"


def score(lead: Lead, rules: ScoringRules) -> tuple[int, tuple[str, ...]]:
    """The lead's score (capped at 100) and one reason per rule that gave points."""
    earned = [(f"channel {lead.channel}", rules.channel.get(lead.channel, 0))]
    for field_name in ("email", "phone", "company", "interest", "campaign"):
        if getattr(lead, field_name):
            earned.append((field_name, getattr(rules, field_name)))
    reasons = tuple(f"{reason} +{points}" for reason, points in earned if points)
    return min(MAX_SCORE, sum(points for _, points in earned)), reasons


def weighted_cycle(candidates: Sequence[SalesUser]) -> list[str]:
    """One cycle of smooth weighted round-robin: each user appears `capacity` times, spread out."""
    total = sum(user.capacity for user in candidates)
    current = [0] * len(candidates)
    cycle = []
    for _ in range(total):
        for i, user in enumerate(candidates):
            current[i] += user.capacity
        best = current.index(max(current))  # ties go to the user listed first
        current[best] -= total
        cycle.append(candidates[best].username)
    return cycle


@dataclass(frozen=True)
class Route:
    """Where a lead goes and why."""

    owner: str
    team: str
    rule_id: str
    candidates: tuple[SalesUser, ...] = ()
    counter: int | None = None  # the team's round-robin counter when the turn was taken

    @property
    def assignee(self) -> str | None:
        """The person the lead's task goes to (None: the fallback team's queue)."""
        return None if self.counter is None else self.owner

    def explanation(self, rules_version: int) -> str:
        """A sentence that lets anyone replay the decision."""
        text = f"routing rules v{rules_version}: {self.rule_id} -> team {self.team}"
        if self.candidates:
            shares = ", ".join(f"{u.username} x{u.capacity}" for u in self.candidates)
            text += f"; candidates {shares}; round-robin counter {self.counter}"
        return f"{text}; owner {self.owner}"


def territory_for(region: str, rules: RoutingRules) -> Territory | None:
    return next((t for t in rules.territories if region in t.regions), None)


def candidates_in(team: str, rules: RoutingRules) -> tuple[SalesUser, ...]:
    return tuple(u for u in rules.sales_users if u.team == team and u.capacity > 0)


def team_of(owner: str | None, rules: RoutingRules) -> str:
    """The team a sales user works in (the fallback team for anyone else)."""
    return next((u.team for u in rules.sales_users if u.username == owner), rules.fallback_team)


def route(region: str, rules: RoutingRules, counter: int) -> Route:
    """The route for a lead from `region`, given its team's round-robin counter."""
    territory = territory_for(region, rules)
    if territory is None:
        return Route(rules.fallback_queue, rules.fallback_team, "fallback:no-territory")
    candidates = candidates_in(territory.team, rules)
    if not candidates:
        return Route(rules.fallback_queue, rules.fallback_team, f"fallback:{territory.id}")
    cycle = weighted_cycle(candidates)
    owner = cycle[counter % len(cycle)]
    return Route(owner, territory.team, territory.id, candidates, counter)


# --- the rotation: a team's round-robin counter, recorded ------------------------------------


def rotation_id(team: str) -> UUID:
    return uuid5(SAGA_NAMESPACE, f"lead_routing/rotation/{team}")


class RotationStarted(CreationEvent):
    """A team's round-robin began (with its first lead)."""

    TYPE: ClassVar[str] = "crm.lead_routing.rotation_started"

    team: str

    def create(self) -> SalesRotation:
        return SalesRotation.born(self, team=self.team)


class TurnTaken(DomainEvent):
    """A team member got a lead; the counter says which turn of the rotation it was."""

    TYPE: ClassVar[str] = "crm.lead_routing.turn_taken"

    counter: int
    lead_id: UUID
    owner: str

    def apply(self, aggregate: SalesRotation) -> None:
        aggregate.turns = self.counter + 1


class SalesRotation(Aggregate):
    """How many leads a team's round-robin has handed out."""

    TYPE: ClassVar[str] = "crm.lead_routing.rotation"

    team: str
    turns: int = 0

    @classmethod
    def start(cls, team: str) -> SalesRotation:
        return cls._start(RotationStarted, rotation_id(team), team=team)

    def take_turn(self, lead_id: UUID, owner: str) -> None:
        self._trigger(TurnTaken, counter=self.turns, lead_id=lead_id, owner=owner)
