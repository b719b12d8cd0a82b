"""Visibility: which records one reader may see, for one record and as SQL for listings."""

from __future__ import annotations

import pytest
from psycopg.sql import SQL, Composed

from projections.visibility import Visibility


def as_text(conditions: list[Composed | SQL]) -> list[str]:
    """The conditions as SQL text (no connection needed: identifiers are double-quoted)."""
    return [condition.as_string() for condition in conditions]


def test_the_default_restricts_nothing() -> None:
    visible = Visibility()

    assert visible.unrestricted
    assert visible.admits(region="west", owner="bob", assignee="carol", team="service")
    assert visible.where(assignee="assignee", team="team") == ([], [])


def test_a_reader_with_a_team_sees_work_assigned_to_them_or_to_their_team() -> None:
    visible = Visibility(assignee_or_team=("alice", "east-sales"))

    assert not visible.unrestricted
    assert visible.admits(assignee="alice", team="service")
    assert visible.admits(assignee="bob", team="east-sales")
    assert visible.admits(assignee=None, team="east-sales")
    assert not visible.admits(assignee="bob", team="service")
    assert not visible.admits(assignee=None, team="service")


def test_a_reader_without_a_team_sees_only_work_assigned_to_them() -> None:
    visible = Visibility(assignee_or_team=("alice", None))

    assert visible.admits(assignee="alice", team="east-sales")
    assert not visible.admits(assignee="bob", team="east-sales")
    assert not visible.admits(assignee=None, team=None)


def test_work_visibility_becomes_one_condition_over_assignee_and_team() -> None:
    with_team = Visibility(assignee_or_team=("alice", "east-sales"))
    alone = Visibility(assignee_or_team=("alice", None))

    where, params = with_team.where(assignee="assignee", team="team")
    assert as_text(where) == ['("assignee" = %s OR "team" = %s)']
    assert params == ["alice", "east-sales"]

    where, params = alone.where(assignee="who", team="queue")
    assert as_text(where) == ['"who" = %s']
    assert params == ["alice"]


def test_a_listing_without_assignee_and_team_cannot_be_restricted_by_them() -> None:
    visible = Visibility(assignee_or_team=("alice", "east-sales"))

    with pytest.raises(ValueError):
        visible.where(region="region", owner="owner")


def test_work_visibility_combines_with_the_other_restrictions() -> None:
    visible = Visibility(region="east", assignee_or_team=("alice", None))

    assert visible.admits(region="east", assignee="alice")
    assert not visible.admits(region="west", assignee="alice")
    where, params = visible.where(region="region", assignee="assignee", team="team")
    assert as_text(where) == ['"assignee" = %s', '"region" = %s']
    assert params == ["alice", "east"]


def test_region_and_owner_rules_are_unchanged() -> None:
    visible = Visibility(owner="bob", or_unassigned_in_region="east")

    assert visible.admits(owner="bob", region="west")
    assert visible.admits(owner=None, region="east")
    assert not visible.admits(owner=None, region="west")
    where, params = visible.where(region="region", owner="owner")
    assert as_text(where) == ['("owner" = %s OR ("owner" IS NULL AND "region" = %s))']
    assert params == ["bob", "east"]
