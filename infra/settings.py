"""Every knob of the CRM, read from `CRM_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.opportunity import DEFAULT_STAGE_PROBABILITIES


class Settings(BaseSettings):
    """Configuration of the CRM; see README.md for what each variable does."""

    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore")

    # Services: external URLs win; without them embedded servers are started under data_dir.
    database_url: str | None = None
    nats_url: str | None = None
    data_dir: Path = Path(".crm")

    # Event store.
    persistence: Literal["postgres", "memory"] = "postgres"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    cipher_key: str | None = None
    # Wraps every person's data key (docs/privacy.md); without one, a key is generated once and
    # kept in data_dir/master-key. Base64 of 32 bytes.
    master_key: SecretStr | None = None
    compress: bool = False
    customer_snapshot_interval: int = Field(default=50, ge=0)
    command_retries: int = Field(default=5, ge=0)
    # Concurrent saves share one transaction (docs/adr/0014-group-commit.md); off: one each.
    group_commit: bool = True

    # Domain defaults.
    phone_region: str = "CN"
    sla_timezone: str = "Asia/Shanghai"
    stage_probabilities: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_STAGE_PROBABILITIES)
    )

    # Event relay to NATS JetStream (docs/integrators.md, docs/adr/0008-*).
    relay_enabled: bool = True  # `crm run` starts the relay in-process
    relay_stream: str = Field(default="CRM", pattern=r"^[A-Za-z0-9_-]+$")
    relay_subject_prefix: str = Field(default="crm", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    relay_retention: Literal["limits", "interest"] = "limits"
    relay_max_age_days: float = Field(default=0, ge=0)  # 0: keep every message
    relay_max_bytes: int = Field(default=-1, ge=-1)  # -1: no size limit
    relay_duplicate_window_seconds: float = Field(default=120, ge=120)
    relay_replicas: int = Field(default=1, ge=1, le=5)
    relay_max_in_flight: int = Field(default=1000, ge=1)
    relay_batch_size: int = Field(default=500, ge=1)
    relay_ack_timeout_seconds: float = Field(default=5, gt=0)
    relay_max_backoff_seconds: float = Field(default=10, gt=0)

    # HTTP API.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # uvicorn's line per request: off, since URLs may carry personal data (`?q=<email>`).
    http_access_log: bool = False
    # Signs bearer tokens; without one, a random secret is kept in data_dir/token-secret.
    token_secret: str | None = Field(default=None, min_length=32)
    token_lifetime_minutes: int = Field(default=480, ge=1)
    # `crm run` makes sure this admin exists (and prints the credentials) when both are set.
    demo_admin_username: str | None = "admin"
    demo_admin_password: str | None = None


@lru_cache
def get_settings() -> Settings:
    """The process's settings (tests override by clearing the cache or passing their own)."""
    return Settings()
