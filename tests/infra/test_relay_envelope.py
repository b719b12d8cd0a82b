"""Unit tests of what the relay puts on the wire, and of the acknowledged-prefix window."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat

from domain.customer import CustomerTagged
from domain.shared import event_id_for
from infra.relay.config import RelayConfig
from infra.relay.envelope import (
    is_published,
    kind_and_name,
    published_event_types,
    subject_for,
    to_message,
)
from infra.relay.publisher import PubAck, PublishFailed
from infra.relay.schemas import import_event_modules
from infra.relay.window import AckWindow

INTEGRATORS_DOC = Path(__file__).parents[2] / "docs" / "integrators.md"
SUBJECT_TOKEN = re.compile(r"^[a-z0-9_]+$")


def tagged(causation: UUID | None = None) -> CustomerTagged:
    return CustomerTagged(
        originator_id=UUID("0b7c52a4-8a4e-4c1e-9a44-6a3f2f6d1e01"),
        originator_version=3,
        timestamp=datetime(2026, 11, 25, 8, 30, tzinfo=UTC),
        actor="user:li",
        correlation_id=UUID("5f0b1f3e-2a9c-4a7e-8f61-2d6b7a0c9e11"),
        causation_id=causation,
        tag="vip",
    )


def test_the_subject_drops_the_version_and_keeps_kind_and_event_name() -> None:
    assert subject_for("crm.ticket.resolved.v1") == "crm.ticket.resolved"
    assert subject_for("crm.customer.profile_updated", "staging.crm") == (
        "staging.crm.customer.profile_updated"
    )
    assert kind_and_name("crm.ticket.opened.v2") == ("ticket", "opened")


def test_every_published_event_type_maps_to_a_valid_subject() -> None:
    import_event_modules()
    for name in published_event_types():
        kind, event = kind_and_name(name)
        assert SUBJECT_TOKEN.match(kind) and SUBJECT_TOKEN.match(event), name


def test_a_type_name_outside_the_crm_scheme_is_refused() -> None:
    with pytest.raises(ValueError):
        subject_for("billing.invoice.paid.v1")


def test_uniqueness_claims_and_snapshots_are_not_published() -> None:
    assert not is_published("crm.claim.claimed.v1")
    assert not is_published("crm.snapshot")
    assert is_published("crm.customer.registered.v1")
    assert "crm.claim.claimed" not in published_event_types()
    assert "crm.ticket.resolved" in published_event_types()


def test_the_envelope_is_a_valid_cloudevent_with_the_events_metadata() -> None:
    event = tagged()
    message = to_message(event, position=42)

    parsed = JSONFormat().read(None, message.payload)
    assert parsed.get_id() == str(event_id_for(event.originator_id, 3)) == message.id
    assert parsed.get_type() == "crm.customer.tagged.v1"
    assert parsed.get_source() == "/crm/customer"
    assert parsed.get_subject() == str(event.originator_id)
    assert parsed.get_time() == event.timestamp
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == {"tag": "vip"}
    assert parsed.get_extension("position") == 42
    assert parsed.get_extension("aggregateversion") == 3
    assert parsed.get_extension("actor") == "user:li"
    assert parsed.get_extension("correlationid") == str(event.correlation_id)
    assert message.subject == "crm.customer.tagged"


def test_the_causation_id_is_omitted_when_there_is_none_and_present_when_there_is() -> None:
    cause = uuid4()

    without = orjson.loads(to_message(tagged(), 1).payload)
    with_cause = orjson.loads(to_message(tagged(cause), 1).payload)

    assert "causationid" not in without
    assert with_cause["causationid"] == str(cause)
    assert without["time"] == "2026-11-25T08:30:00Z"


def test_the_same_event_always_gets_the_same_id_and_bytes() -> None:
    assert to_message(tagged(), 7) == to_message(tagged(), 7)


def test_a_duplicate_window_under_two_minutes_is_refused() -> None:
    with pytest.raises(ValueError):
        RelayConfig(duplicate_window_seconds=60)


def test_the_integrator_docs_describe_every_published_event_type() -> None:
    import_event_modules()
    text = INTEGRATORS_DOC.read_text()

    missing = [
        cls.type_name() for cls in published_event_types().values() if cls.type_name() not in text
    ]

    assert missing == [], "run `python -m infra.relay.schemas` and paste into docs/integrators.md"


def acked(seq: int) -> asyncio.Future[PubAck]:
    future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
    future.set_result(PubAck(seq, duplicate=False))
    return future


def pending() -> asyncio.Future[PubAck]:
    return asyncio.get_running_loop().create_future()


def test_the_position_moves_only_over_the_acknowledged_prefix() -> None:
    async def scenario() -> list[int]:
        window = AckWindow(position=10, ack_timeout=0.05)
        late = pending()
        window.add(11, acked(1))
        window.skip(12)
        window.add(13, late)
        window.add(14, acked(3))
        positions = []
        await window.settle(keep=5)
        positions.append(window.position)
        late.set_result(PubAck(2, duplicate=False))
        await window.settle()
        positions.append(window.position)
        return positions

    assert asyncio.run(scenario()) == [12, 14]


def test_a_refused_message_stops_the_position_before_it() -> None:
    async def scenario() -> int:
        window = AckWindow(position=0, ack_timeout=0.05)
        refused = pending()
        refused.set_exception(PublishFailed("wrong last msg ID"))
        window.add(1, acked(1))
        window.add(2, refused)
        window.add(3, acked(2))
        with pytest.raises(PublishFailed):
            await window.settle()
        return window.position

    assert asyncio.run(scenario()) == 1


def test_a_message_never_acknowledged_fails_after_the_timeout() -> None:
    async def scenario() -> int:
        window = AckWindow(position=5, ack_timeout=0.05)
        window.add(6, pending())
        with pytest.raises(PublishFailed, match="no acknowledgement"):
            await window.settle()
        return window.position

    assert asyncio.run(scenario()) == 5
