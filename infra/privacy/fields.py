"""Encrypts and decrypts the personal values inside an event's JSON state, in place.

A personal value is stored as `{"$pd": "<base64 nonce+ciphertext>"}`: an object where the event
schema has a string (or a dict), so it can never be mistaken for what a user typed. Values that
are None stay None (there is nothing to protect, and "no phone" stays visible after erasure).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson

from domain.personal import EACH, REDACTED, Path
from infra.privacy.keys import seal, unseal

SEALED = "$pd"

Transform = Callable[[Any], Any]


def walk(state: Any, path: Path, transform: Transform) -> None:
    """Apply `transform` to every non-None value at `path` in `state` (in place)."""
    if not path or state is None:
        return
    head, rest = path[0], path[1:]
    if isinstance(head, frozenset):  # the personal keys of a dict
        for key in head & state.keys():
            if state[key] is not None:
                state[key] = transform(state[key])
    elif head == EACH:
        for item in state:
            walk(item, rest, transform)
    elif head in state:
        if rest:
            walk(state[head], rest, transform)
        elif state[head] is not None:
            state[head] = transform(state[head])


def sealer(data_key: bytes | None, record_id: UUID) -> Transform:
    """Seals values under the record's key; with the key destroyed, stores the redaction."""

    def seal_value(value: Any) -> Any:
        if data_key is None:
            return REDACTED
        sealed = seal(data_key, record_id, orjson.dumps(value))
        return {SEALED: base64.b64encode(sealed).decode()}

    return seal_value


def unsealer(data_key: bytes | None, record_id: UUID) -> Transform:
    """Opens sealed values; with the key destroyed they read as the redaction marker."""

    def unseal_value(value: Any) -> Any:
        if not (isinstance(value, dict) and SEALED in value):
            return value  # stored in clear (an erased record's later writes are redactions)
        if data_key is None:
            return REDACTED
        return orjson.loads(unseal(data_key, record_id, base64.b64decode(value[SEALED])))

    return unseal_value


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and SEALED in value
