"""The fast event ids rebuilds use are the domain's event ids."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from domain.shared import event_id_for
from projections.event_ids import event_id_int


@given(st.uuids(), st.integers(min_value=1, max_value=10**9))
def test_an_events_fast_id_is_its_uuid5(originator_id: UUID, version: int) -> None:
    expected = event_id_for(originator_id, version)

    assert UUID(int=event_id_int(originator_id, version)) == expected
    assert UUID(f"{event_id_int(originator_id, version):032x}") == expected
