"""The event base refuses schema mistakes at import time, not the day old data is read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from domain.shared import EVENT_TYPES, DomainError, DomainEvent
from infra.mapper import upcast


@pytest.fixture(autouse=True)
def forget_test_event_types() -> Iterator[None]:
    """Event types defined here must not leak into other tests' view of the registry."""
    before = dict(EVENT_TYPES)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(before)


def test_an_event_at_v2_without_an_upcaster_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="upcast_v1_v2"):

        class Forgetful(DomainEvent):
            TYPE: ClassVar[str] = "crm.test.forgetful"
            class_version: ClassVar[int] = 2


def test_two_classes_cannot_share_one_type_name() -> None:
    class Original(DomainEvent):
        TYPE: ClassVar[str] = "crm.test.named_once"

    with pytest.raises(TypeError, match="already names"):
        type("Impostor", (DomainEvent,), {"TYPE": "crm.test.named_once", "__module__": "x"})

    assert Original.type_name() == "crm.test.named_once.v1"


def test_an_upcaster_may_return_a_new_dict_instead_of_changing_its_argument() -> None:
    class Renamed(DomainEvent):
        TYPE: ClassVar[str] = "crm.test.renamed"
        class_version: ClassVar[int] = 2
        title: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> dict[str, Any]:
            return {**{k: v for k, v in state.items() if k != "name"}, "title": state["name"]}

    assert upcast(Renamed, 1, {"name": "x"}) == {"title": "x"}


def test_domain_errors_name_their_rule_in_kebab_case() -> None:
    class LeadAlreadyConverted(DomainError):
        pass

    assert LeadAlreadyConverted.code() == "lead-already-converted"
