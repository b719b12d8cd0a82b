"""The event store factories: the library's, with the personal-data key store wired in.

`PERSISTENCE_MODULE` names one of these, so every CRM application built from the environment
(the API's, the projection and saga runners', the relay's) seals and opens personal data alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    EventStore,
    Mapper,
    ProcessRecorder,
)
from eventsourcing.popo import POPOFactory
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, EnvType

from infra.mapper import PydanticMapper
from infra.privacy.keys import InMemoryKeyStore, PostgresKeyStore
from infra.privacy.master import MasterKey, verify_master_key
from infra.recorder import (
    KeyedAggregateRecorder,
    KeyedProcessRecorder,
    KeyWriting,
    OneTripApplicationRecorder,
)

MASTER_KEY = "PERSONAL_DATA_MASTER_KEY"
GROUP_COMMIT = "GROUP_COMMIT"
YES = ("y", "yes", "t", "true", "1")


class KeyedEventStore(EventStore[Any]):
    """Starts every save with no key changes left over from one that failed mid-way, so an
    erasure or a key mapped for a failed save is never written by the next one."""

    def put(self, domain_events: Sequence[Any], **kwargs: Any) -> Any:
        keys = getattr(self.mapper, "keys", None)
        if keys is not None:
            keys.discard_pending()
        return super().put(domain_events, **kwargs)


R = TypeVar("R")


class CRMPostgresFactory(PostgresFactory):
    """PostgreSQL persistence whose mapper and recorders share one key store."""

    aggregate_recorder_class = KeyedAggregateRecorder
    process_recorder_class = KeyedProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        if self.env.get("POSTGRES_ENABLE_DB_FUNCTIONS", "").lower() in YES:
            # The library's function path skips the recorders' hooks: keys would not be stored.
            raise ValueError("POSTGRES_ENABLE_DB_FUNCTIONS must stay off (docs/adr/0006)")
        text = self.env.get(MASTER_KEY)
        if not text:
            raise ValueError(f"{MASTER_KEY} is not set: personal data cannot be protected")
        master = MasterKey.from_text(text)
        verify_master_key(self.datastore, master)
        self.keys = PostgresKeyStore(self.datastore, master)
        self.keys.snapshots_table = (self.env.name.lower() or "stored") + "_snapshots"

    def mapper(self, transcoder: Any = None, mapper_class: Any = None) -> Mapper[Any]:
        mapper = super().mapper(transcoder, mapper_class)
        if isinstance(mapper, PydanticMapper):
            mapper.keys = self.keys
        return mapper

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self._keyed(super().aggregate_recorder(purpose))

    def application_recorder(self) -> ApplicationRecorder:
        recorder = self._keyed(super().application_recorder())
        if isinstance(recorder, OneTripApplicationRecorder):
            recorder.group_commit = self.env.get(GROUP_COMMIT, "y").lower() in YES
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        return self._keyed(super().process_recorder())

    def event_store(self, mapper: Any = None, recorder: Any = None) -> EventStore[Any]:
        return KeyedEventStore(
            mapper=mapper or self.mapper(), recorder=recorder or self.application_recorder()
        )

    def _keyed(self, recorder: R) -> R:
        if isinstance(recorder, KeyWriting):
            recorder.keys = self.keys
        return recorder


class CRMPopoFactory(POPOFactory):
    """In-memory persistence (fast tests) with an in-memory key store."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.keys = InMemoryKeyStore()

    def mapper(self, transcoder: Any = None, mapper_class: Any = None) -> Mapper[Any]:
        mapper = super().mapper(transcoder, mapper_class)
        if isinstance(mapper, PydanticMapper):
            mapper.keys = self.keys
        return mapper

    def event_store(self, mapper: Any = None, recorder: Any = None) -> EventStore[Any]:
        return KeyedEventStore(
            mapper=mapper or self.mapper(), recorder=recorder or self.application_recorder()
        )
