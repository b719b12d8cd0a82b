"""Keyset pagination for every read model's listings: opaque cursors and pages of `limit` rows."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from projections.readmodel import Row

Parse = Callable[[Any], Any]


def check_limit(limit: int) -> None:
    """A page holds at least one row (a cursor names the last row of a page)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def encode_cursor(key: Sequence[Any], kind: str = "") -> str:
    """An opaque cursor: the sort key of the last row of a page, and which listing it pages.

    A read model with several listings names each one (`kind`); a listing left unnamed carries
    the key alone, as its cursors always have, so cursors already handed out stay valid.
    """
    return base64.urlsafe_b64encode(orjson.dumps([kind, *key] if kind else [*key])).decode()


def decode_cursor(cursor: str, parsers: Sequence[Parse], kind: str = "") -> list[Any]:
    """The sort key in a cursor of that listing, one parser a value; anything else is invalid."""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor))
        if not isinstance(decoded, list):
            raise TypeError("a cursor holds a list")
        key = decoded
        if kind:
            issued_for, *key = decoded
            if issued_for != kind:
                raise ValueError(f"not a {kind} cursor")
        if len(key) != len(parsers):
            raise ValueError(f"a cursor key has {len(parsers)} values")
        return [parse(value) for parse, value in zip(parsers, key, strict=True)]
    except (ValueError, TypeError, AttributeError) as error:
        raise InvalidCursor(cursor) from error


def page_of(
    rows: list[Row], limit: int, key: Callable[[Row], Sequence[Any]], kind: str = ""
) -> tuple[list[Row], str | None]:
    """The page in `rows` (fetched with LIMIT limit + 1), and the cursor of the next, if any."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor(key(page[-1]), kind)


class InvalidCursor(ValueError):
    """A pagination cursor that this listing did not issue: malformed, or another listing's."""
