"""What an erasure reaches in a read model, and what the personal values there read as afterwards.

Recording `CustomerErased` or `LeadErased` destroys the key of every record whose id, or whose
data subject's id, is one of the event's erased subjects (infra/privacy/keys.py), so a rebuild
from the log reads every personal value of those records as REDACTED (None stays None). The live
handlers redact the same rows in place, by the same rule: a record is reached when its id is
erased, or the id of its data subject (a ticket's customer, a task's related record).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.sql import SQL, Composed, Identifier, Literal

from domain.customer import CustomerErased
from domain.lead import LeadErased
from domain.personal import EACH, REDACTED, Path, personal_paths
from domain.shared import EVENT_TYPES

ErasureEvent = CustomerErased | LeadErased


def erased_ids(event: ErasureEvent) -> list[UUID]:
    """The data subjects (and records) whose personal data the event erased."""
    return list(event.erased_subjects())


def redact(value: str | None) -> str | None:
    """A personal value as it reads after erasure (an absent one stays absent)."""
    return None if value is None else REDACTED


def redacted_column(column: str) -> Composed:
    """SQL for `redact(column)`, for `UPDATE ... SET column = <this>`."""
    return SQL("CASE WHEN {0} IS NULL THEN NULL ELSE {1} END").format(
        Identifier(column), Literal(REDACTED)
    )


def with_personal_data() -> list[str]:
    """The stored type names (`crm.ticket.opened.v2`) of the events holding personal data."""
    return sorted(cls.type_name() for cls in EVENT_TYPES.values() if personal_paths(cls))


def redacted_payload(type_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An event's JSON payload (its fields but the metadata) as it reads after erasure."""
    cls = EVENT_TYPES.get(type_name.rpartition(".v")[0])
    if cls is None:
        return payload
    for path in personal_paths(cls):
        _redact_at(payload, path)
    return payload


def _redact_at(state: Any, path: Path) -> None:
    """Set every non-None value at `path` in `state` to REDACTED, in place (as infra's walk)."""
    if not path or state is None:
        return
    head, rest = path[0], path[1:]
    if isinstance(head, frozenset):  # only these keys of a dict are personal
        for key in head & state.keys():
            if state[key] is not None:
                state[key] = REDACTED
    elif head == EACH:
        for item in state:
            _redact_at(item, rest)
    elif head in state:
        if rest:
            _redact_at(state[head], rest)
        elif state[head] is not None:
            state[head] = REDACTED
