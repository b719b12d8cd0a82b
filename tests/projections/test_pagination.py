"""Keyset pagination: cursors give back their key, and refuse what their listing did not issue."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID

import orjson
import pytest

from projections.pagination import (
    InvalidCursor,
    check_limit,
    decode_cursor,
    encode_cursor,
    page_of,
)

AT = datetime(2026, 3, 2, 1, tzinfo=UTC)
ID = UUID(int=7)
PARSERS = (datetime.fromisoformat, UUID)


def test_a_cursor_gives_back_the_key_it_was_made_from() -> None:
    cursor = encode_cursor([AT.isoformat(), str(ID)], "timeline")

    assert decode_cursor(cursor, PARSERS, "timeline") == [AT, ID]


def test_an_unnamed_listings_cursor_carries_the_key_alone() -> None:
    cursor = encode_cursor([AT.isoformat(), str(ID)])

    assert orjson.loads(base64.urlsafe_b64decode(cursor)) == [AT.isoformat(), str(ID)]
    assert decode_cursor(cursor, PARSERS) == [AT, ID]


def test_a_cursor_of_another_listing_is_invalid() -> None:
    search = encode_cursor([AT.isoformat(), str(ID)], "search")

    with pytest.raises(InvalidCursor):
        decode_cursor(search, PARSERS, "timeline")
    with pytest.raises(InvalidCursor):
        decode_cursor(search, PARSERS)


def encoded(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "é",
        encoded({"at": "2026-03-02"}),
        encoded([AT.isoformat()]),
        encoded([AT.isoformat(), str(ID), 1]),
        encoded(["yesterday", str(ID)]),
        encoded([AT.isoformat(), 7]),
    ],
)
def test_a_malformed_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, PARSERS)


def test_a_page_has_a_next_cursor_only_when_more_rows_follow() -> None:
    rows = [{"n": n} for n in range(3)]

    def key(row: dict[str, int]) -> list[int]:
        return [row["n"]]

    page, cursor = page_of(rows, 2, key, "numbers")
    last, no_cursor = page_of(rows, 3, key, "numbers")

    assert page == rows[:2]
    assert cursor is not None
    assert decode_cursor(cursor, (int,), "numbers") == [1]
    assert (last, no_cursor) == (rows, None)


@pytest.mark.parametrize("limit", [0, -1])
def test_a_page_holds_at_least_one_row(limit: int) -> None:
    with pytest.raises(ValueError):
        check_limit(limit)
