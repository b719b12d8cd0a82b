"""Random command scripts for read-model tests: steps, the records they made, and playing them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

from hypothesis import strategies as st

from domain.shared import DomainError

T = TypeVar("T")
Step = tuple[str, int, int]  # an operation, and two numbers that pick records and vary arguments
Command = Callable[[int, int], object]


def random_scripts(
    operations: Sequence[str], *, a: int = 7, b: int = 7, min_size: int = 5, max_size: int = 30
) -> st.SearchStrategy[list[Step]]:
    """Random scripts of steps (operation, 0..a, 0..b)."""
    return st.lists(
        st.tuples(st.sampled_from(operations), st.integers(0, a), st.integers(0, b)),
        min_size=min_size,
        max_size=max_size,
    )


@dataclass
class World:
    """The records a random script has created so far, for later commands to pick from."""

    customers: list[UUID] = field(default_factory=list)
    leads: list[UUID] = field(default_factory=list)
    deals: list[UUID] = field(default_factory=list)
    tickets: list[UUID] = field(default_factory=list)
    contacts: list[tuple[UUID, UUID]] = field(default_factory=list)  # (customer, contact)


def pick(ids: list[T], n: int) -> T:
    """The `n`th record, counting round; NothingToPick before there is any."""
    if not ids:
        raise NothingToPick
    return ids[n % len(ids)]


def play(
    steps: Iterable[Step],
    commands: Mapping[str, Command],
    catch_up_live: Callable[[], object],
    *,
    catch_up_every: int = 0,
) -> None:
    """Run each step's command, then catch the live read model up with the log.

    A "catch_up" step catches up there and then, as does every `catch_up_every`th step.
    """
    for n, (op, a, b) in enumerate(steps):
        if op == "catch_up":
            catch_up_live()
            continue
        try:
            commands[op](a, b)
        except (DomainError, NothingToPick):
            pass  # refused, or nothing to act on yet: the log is unchanged
        if catch_up_every and n % catch_up_every == catch_up_every - 1:
            catch_up_live()
    catch_up_live()


class NothingToPick(LookupError):
    """The script refers to a kind of record it has not created yet."""
