"""The relay's knobs, taken from settings once so the relay never reads the environment."""

from __future__ import annotations

from dataclasses import dataclass

from infra.settings import Settings

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RelayConfig:
    """Where and how the relay publishes; defaults match `Settings`."""

    stream: str = "CRM"
    subject_prefix: str = "crm"
    retention: str = "limits"
    max_age_seconds: float = 0.0  # 0: keep every message
    max_bytes: int = -1
    duplicate_window_seconds: float = 120.0
    replicas: int = 1
    max_in_flight: int = 1000
    batch_size: int = 500
    ack_timeout_seconds: float = 5.0
    max_backoff_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.duplicate_window_seconds < 120:
            raise ValueError("the duplicate window must be at least 2 minutes")

    @property
    def subjects(self) -> str:
        """The subjects the stream captures."""
        return f"{self.subject_prefix}.>"


def relay_config(settings: Settings) -> RelayConfig:
    """The relay's configuration from `CRM_RELAY_*` settings."""
    return RelayConfig(
        stream=settings.relay_stream,
        subject_prefix=settings.relay_subject_prefix,
        retention=settings.relay_retention,
        max_age_seconds=settings.relay_max_age_days * SECONDS_PER_DAY,
        max_bytes=settings.relay_max_bytes,
        duplicate_window_seconds=settings.relay_duplicate_window_seconds,
        replicas=settings.relay_replicas,
        max_in_flight=settings.relay_max_in_flight,
        batch_size=settings.relay_batch_size,
        ack_timeout_seconds=settings.relay_ack_timeout_seconds,
        max_backoff_seconds=settings.relay_max_backoff_seconds,
    )
