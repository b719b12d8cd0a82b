"""Personal data: how an event field says it holds some, and where in an event it sits.

The rule lives next to the field (`name: PersonalData[str]`); infra's mapper encrypts every such
value under its data subject's own key, so destroying the key erases the data everywhere.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel

REDACTED = "[erased]"  # what a personal value reads as once its subject's key is destroyed
EACH = "*"  # a path segment: every item of a list or tuple


@dataclass(frozen=True)
class Personal:
    """Marks a field as personal data.

    `keys` narrows a dict field to the values under those keys (a profile update's name, email
    and phone are personal; its region is not).
    """

    keys: frozenset[str] | None = None


T = TypeVar("T")
PersonalData = Annotated[T, Personal()]


def personal_keys(*keys: str) -> Personal:
    """The marker for a dict field whose values under `keys` are personal data."""
    return Personal(frozenset(keys))


# A path to personal values: field names, EACH for list items, and last a frozenset of dict
# keys when only some of a dict's values are personal.
Path = tuple[str | frozenset[str], ...]


@cache
def personal_paths(model: type[BaseModel]) -> tuple[Path, ...]:
    """Every path to personal data in `model`, nested models and their sequences included."""
    paths: list[Path] = []
    for name, info in model.model_fields.items():
        marker = next((m for m in info.metadata if isinstance(m, Personal)), None)
        if marker is not None:
            paths.append((name,) if marker.keys is None else (name, marker.keys))
            continue
        for nested, prefix in _nested_models(info.annotation, (name,)):
            paths.extend(prefix + path for path in personal_paths(nested))
    return tuple(paths)


def _nested_models(annotation: Any, prefix: Path) -> list[tuple[type[BaseModel], Path]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, prefix)]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [found for arg in get_args(annotation) for found in _nested_models(arg, prefix)]
    if origin in (list, tuple):
        items = [arg for arg in get_args(annotation) if arg is not Ellipsis]
        return [found for arg in items for found in _nested_models(arg, (*prefix, EACH))]
    return []


def describe(path: Path) -> str:
    """`contact.email`, `contacts[].name`, `changes{email,name,phone}`: for listings and docs."""
    text = ""
    for segment in path:
        if isinstance(segment, frozenset):
            text += "{" + ",".join(sorted(segment)) + "}"
        elif segment == EACH:
            text += "[]"
        else:
            text += ("." if text else "") + segment
    return text
