"""Prints the per-event-type section of docs/integrators.md from the event registry.

Run: `.venv/bin/python -m infra.relay.schemas` and paste the output under "Event types".
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import domain
import sagas
from infra.relay.envelope import METADATA_FIELDS, published_event_types, subject_for


def import_event_modules() -> None:
    """Import every module that may define events, so the registry is complete."""
    for package in (domain, sagas):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)


def field_type(schema: dict[str, Any]) -> str:
    """A short JSON-schema type: `string (uuid)`, `array of string`, `Stage or null`, ..."""
    if "$ref" in schema:
        return str(schema["$ref"].rsplit("/", 1)[-1])
    if "anyOf" in schema:
        return " or ".join(field_type(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"array of {field_type(schema.get('items', {}))}"
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def markdown() -> str:
    """One table per event type: subject, CloudEvents type and the fields of `data`."""
    lines = []
    for name, cls in published_event_types().items():
        schema = cls.model_json_schema(mode="serialization")
        required = set(schema.get("required", []))
        lines += [
            f"### `{cls.type_name()}`",
            "",
            f"Subject `{subject_for(name)}`. {(cls.__doc__ or '').strip()}",
            "",
            "| `data` field | type | required |",
            "|---|---|---|",
        ]
        for field, spec in schema.get("properties", {}).items():
            if field not in METADATA_FIELDS:
                yes = "yes" if field in required else "no"
                lines.append(f"| `{field}` | {field_type(spec)} | {yes} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import_event_modules()
    print(markdown())
