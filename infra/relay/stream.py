"""The `CRM` JetStream stream: created or brought up to date, idempotently, at relay start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from infra.relay.config import RelayConfig

DESCRIPTION = "Every CRM event as CloudEvents 1.0 JSON (docs/integrators.md)"
# What we set and therefore compare; the server fills in the rest with its defaults.
MANAGED_FIELDS = (
    "subjects",
    "retention",
    "max_age",
    "max_bytes",
    "duplicate_window",
    "num_replicas",
    "storage",
    "discard",
    "description",
    "allow_atomic",
)


def stream_config(config: RelayConfig) -> StreamConfig:
    """The stream the relay publishes into: file storage, bounded only if configured."""
    return StreamConfig(
        name=config.stream,
        description=DESCRIPTION,
        subjects=[config.subjects],
        retention=RetentionPolicy(config.retention),
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=config.max_age_seconds,
        max_bytes=config.max_bytes,
        duplicate_window=config.duplicate_window_seconds,
        num_replicas=config.replicas,
        allow_atomic=True,  # atomic batch publish (nats-server >= 2.12): one fsync per batch
    )


async def ensure_stream(js: JetStreamContext, config: RelayConfig) -> StreamInfo:
    """Create the stream, or update it when its managed settings differ; else leave it be."""
    wanted = stream_config(config)
    try:
        info = await js.stream_info(config.stream)
    except NotFoundError:
        return await js.add_stream(wanted)
    if differences(info.config, wanted):
        return await js.update_stream(wanted)
    return info


def differences(current: StreamConfig, wanted: StreamConfig) -> list[str]:
    """Names of the managed settings where the stream differs from what we want."""
    return [
        field
        for field in MANAGED_FIELDS
        if _normal(getattr(current, field)) != _normal(getattr(wanted, field))
    ]


def _normal(value: object) -> object:
    # The server answers 0 for "no max age" and echoes durations as floats of seconds.
    if isinstance(value, float | int) and not isinstance(value, bool):
        return round(float(value), 3)
    return value
