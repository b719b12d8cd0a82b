"""Routing and scoring rules, pure: weighted turns, territories, fallback, scores."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from domain.lead import Lead
from domain.shared import FixedClock, command_context
from sagas.routing import RoutingRules, SalesUser, ScoringRules, route, score, weighted_cycle
from tests.domain.scenario import MONDAY_9AM, new_id
from tests.sagas.conftest import RULES

capacities = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=5)


def users(caps: list[int]) -> list[SalesUser]:
    return [SalesUser(username=f"u{i}", team="t", capacity=c) for i, c in enumerate(caps)]


@given(capacities)
def test_every_user_gets_as_many_turns_per_cycle_as_their_capacity(caps: list[int]) -> None:
    cycle = weighted_cycle(users(caps))
    assert Counter(cycle) == {f"u{i}": c for i, c in enumerate(caps)}


def test_the_first_matching_territory_names_the_team_and_the_counter_picks_the_turn() -> None:
    assert [route("east", RULES, n).owner for n in range(4)] == ["alice", "bob", "alice", "alice"]
    assert route("central", RULES, 1).team == "east-sales"
    assert route("north", RULES, 7).owner == "chen"


def test_a_region_without_territory_or_a_team_without_capacity_goes_to_the_fallback_queue() -> None:
    rules = RULES.model_copy(
        update={"sales_users": (SalesUser(username="x", team="north-sales", capacity=0),)}
    )
    assert route("west", RULES, 0).owner == "queue:sales"
    fallback = route("north", rules, 0)
    assert (fallback.owner, fallback.rule_id, fallback.assignee) == (
        "queue:sales",
        "fallback:territory-north",
        None,
    )


def test_routing_rules_read_from_json_settings() -> None:
    rules = RoutingRules.model_validate_json(
        '{"version": 2, "territories": [{"id": "e", "regions": ["east"], "team": "e"}],'
        ' "sales_users": [{"username": "amy", "team": "e", "capacity": 3}]}'
    )
    assert route("east", rules, 5).owner == "amy"


def test_scores_add_the_points_of_every_rule_met_and_are_capped_at_100() -> None:
    with command_context(clock=FixedClock(MONDAY_9AM)):
        lead = Lead.capture(
            lead_id=new_id(),
            channel="referral",
            name="Wang",
            region="east",
            email="w@example.com",
            phone="13800138000",
            company="Acme",
            campaign="spring",
            interest="CRM",
        )
    points, reasons = score(lead, ScoringRules())
    assert points == 90
    assert reasons[0] == "channel referral +30"
    assert score(lead, ScoringRules(channel={"referral": 80}))[0] == 100
