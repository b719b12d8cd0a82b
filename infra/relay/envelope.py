"""How a stored event looks on the wire: a CloudEvents 1.0 JSON envelope on a NATS subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson

from domain.shared import EVENT_TYPES, DomainEvent

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
# Envelope attributes carry these; `data` holds only what the event itself says.
METADATA_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "actor", "correlation_id", "causation_id"}
)
# Bookkeeping that is not a business fact: never published (see docs/integrators.md). Uniqueness
# claims, snapshots, and the sagas' own records (rotation, won totals, key-account portfolios).
# Any other new kind is published, and the docs test fails until docs/integrators.md describes it.
INTERNAL_KINDS = frozenset(
    {"claim", "snapshot", "lead_routing", "deal_won_onboarding", "key_account_alert"}
)


def kind_and_name(type_name: str) -> tuple[str, str]:
    """`crm.ticket.resolved.v1` (or without `.v1`) -> (`ticket`, `resolved`)."""
    parts = type_name.split(".")
    if parts[-1].startswith("v") and parts[-1][1:].isdigit():
        parts = parts[:-1]
    if len(parts) != 3 or parts[0] != "crm":
        raise ValueError(f"event type {type_name!r} is not crm.<aggregate-kind>.<event-name>")
    return parts[1], parts[2]


def subject_for(type_name: str, prefix: str = "crm") -> str:
    """The NATS subject of an event type: `<prefix>.<aggregate-kind>.<event-name>`."""
    kind, name = kind_and_name(type_name)
    return f"{prefix}.{kind}.{name}"


def is_published(type_name: str) -> bool:
    """Whether events of this (stored or stable) type name go to integrators."""
    return type_name.split(".")[1] not in INTERNAL_KINDS


def published_event_types() -> dict[str, type[DomainEvent]]:
    """Every event type integrators receive, by stable name (without version), sorted."""
    return {name: EVENT_TYPES[name] for name in sorted(EVENT_TYPES) if is_published(name)}


@dataclass(frozen=True)
class Message:
    """One event ready to publish: its subject, its CloudEvents id and the JSON envelope."""

    position: int
    id: str
    subject: str
    payload: bytes


def cloud_event(event: DomainEvent, position: int) -> dict[str, Any]:
    """The CloudEvents 1.0 structured form of `event`, stored at `position` of the log."""
    kind, _ = kind_and_name(event.TYPE)
    envelope: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": str(event.event_id),
        "source": f"/crm/{kind}",
        "type": type(event).type_name(),
        "subject": str(event.originator_id),
        "time": event.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": CONTENT_TYPE,
        "data": event.model_dump(mode="json", exclude=set(METADATA_FIELDS)),
        "position": position,
        "aggregateversion": event.originator_version,
        "correlationid": str(event.correlation_id),
        "actor": event.actor,
    }
    if event.causation_id is not None:  # CloudEvents attributes are never null: omit instead
        envelope["causationid"] = str(event.causation_id)
    return envelope


def to_message(event: DomainEvent, position: int, prefix: str = "crm") -> Message:
    """The message the relay publishes for `event`."""
    envelope = cloud_event(event, position)
    return Message(
        position=position,
        id=envelope["id"],
        subject=subject_for(event.TYPE, prefix),
        payload=orjson.dumps(envelope),
    )
