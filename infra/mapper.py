"""Stores pydantic events as orjson under their stable type names, upcasting old versions."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)

from domain.personal import Path, personal_paths
from domain.shared import EVENT_TYPES, DomainEvent, Snapshot
from infra.privacy.fields import is_sealed, sealer, unsealer, walk
from infra.privacy.keys import InMemoryKeyStore, KeyStore

_VERSIONED = re.compile(r"^(?P<base>.+)\.v(?P<version>\d+)$")
_IDENTITY = {"originator_id", "originator_version"}


class UnreadableSnapshot(MapperDeserialisationError):
    """A snapshot whose record's key was destroyed after it was taken."""


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson; the mapper hands it JSON-ready dicts."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


_RESOLVED: dict[str, tuple[str, int]] = {}  # stored type name → (event type, version)


def resolve_event_type(type_name: str) -> tuple[type[DomainEvent], int]:
    """The event class for a stored type name, and the schema version it was stored at."""
    resolved = _RESOLVED.get(type_name)
    if resolved is None:
        match = _VERSIONED.match(type_name)
        if match is None:
            raise MapperDeserialisationError(f"Unknown event type {type_name!r}")
        resolved = _RESOLVED[type_name] = (match["base"], int(match["version"]))
    cls = EVENT_TYPES.get(resolved[0])  # looked up each time: a class may be defined anew
    if cls is None:
        raise MapperDeserialisationError(f"Unknown event type {type_name!r}")
    return cls, resolved[1]


def upcast(cls: type[DomainEvent], from_version: int, state: dict[str, Any]) -> dict[str, Any]:
    """Run `upcast_vN_vN+1` for each version between the stored one and the class's."""
    if from_version > cls.class_version:
        raise MapperDeserialisationError(
            f"{cls.TYPE} stored at v{from_version} is newer than this code (v{cls.class_version})"
        )
    for version in range(from_version, cls.class_version):
        upcasted = getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        state = state if upcasted is None else upcasted  # in place, or a new dict returned
    return state


class PydanticMapper(Mapper[Any]):
    """Maps frozen pydantic events to stored events and back, via a registry of type names.

    Personal fields (`PersonalData[...]`) are sealed under their record's own key from `keys`
    (see infra/privacy); an erasure event destroys its subjects' keys as it is recorded.
    """

    def __init__(
        self,
        transcoder: Transcoder,
        cipher: Cipher | None = None,
        compressor: Compressor | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        super().__init__(transcoder, cipher=cipher, compressor=compressor)
        self.keys: KeyStore = keys if keys is not None else InMemoryKeyStore()

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: DomainEvent = domain_event
        state = event.model_dump(mode="json", exclude=_IDENTITY)
        self._seal(event, state)
        erased = event.erased_subjects()
        if erased:
            self.keys.erase(erased)
        stored_state = self.transcoder.encode(state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=type(event).type_name(),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls, stored_version = resolve_event_type(stored_event.topic)
        try:
            stored_state = stored_event.state
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            state: dict[str, Any] = self.transcoder.decode(stored_state)
        except Exception as error:
            raise MapperDeserialisationError(
                f"Cannot read {stored_event.topic} {stored_event.originator_id}"
                f"@{stored_event.originator_version}: {error}"
            ) from error
        state = upcast(cls, stored_version, state)
        paths = personal_paths(cls)
        if paths:
            record_id: UUID = stored_event.originator_id  # type: ignore[assignment]
            key = self.keys.key_for_reading(record_id)
            if key is None and cls is Snapshot and is_sealed(state.get("state")):
                # Sealed under a key destroyed since: the loader replays the events instead.
                raise UnreadableSnapshot(
                    f"the snapshot of {record_id} was sealed under an erased key"
                )
            unseal = unsealer(key, record_id)
            for path in paths:
                walk(state, path, unseal)
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        return cls.model_validate(state)

    def _seal(self, event: DomainEvent, state: dict[str, Any]) -> None:
        paths = personal_paths(type(event))
        if not paths or not any(_has_value(state, path) for path in paths):
            return
        snapshot = isinstance(event, Snapshot)
        key = self.keys.key_for_writing(
            event.originator_id,
            event.data_subject_id(),
            new_record=event.originator_version == 1 and not snapshot,
        )
        if key is None and snapshot:
            return  # an erased record's snapshot: its state holds only redactions already
        seal = sealer(key, event.originator_id)
        for path in paths:
            walk(state, path, seal)


def _has_value(state: dict[str, Any], path: Path) -> bool:
    found = False

    def note(value: Any) -> Any:
        nonlocal found
        found = True
        return value

    walk(state, path, note)
    return found
