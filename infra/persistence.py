"""Turns settings into the eventsourcing library's environment, and creates the schema."""

from __future__ import annotations

from typing import Any

import psycopg
from eventsourcing.utils import get_topic
from psycopg.conninfo import conninfo_to_dict

from domain.application import CRM
from infra.api_stores import create_api_schema
from infra.mapper import OrjsonTranscoder, PydanticMapper
from infra.privacy.factory import GROUP_COMMIT, MASTER_KEY, CRMPopoFactory, CRMPostgresFactory
from infra.privacy.keys import create_privacy_schema
from infra.privacy.master import MasterKey, master_key_text, verify_master_key
from infra.recorder import OneTripApplicationRecorder
from infra.relay.tracking import create_relay_schema
from infra.sagas import create_saga_schema
from infra.settings import Settings
from projections.catalog import READ_MODELS
from projections.readmodel import create_registry, install

# What the event store's connection pool can take from a URL; libpq reads the rest of its
# settings (PGSSLMODE, PGSSLROOTCERT, PGOPTIONS, ...) from the environment.
URL_PARAMETERS = frozenset({"host", "port", "dbname", "user", "password", "connect_timeout"})


def libpq_variable(parameter: str) -> str:
    """The environment variable libpq reads for a connection parameter."""
    return {"application_name": "PGAPPNAME"}.get(
        parameter, "PG" + parameter.upper().replace("_", "")
    )


def postgres_env(database_url: str) -> dict[str, str]:
    """The library's POSTGRES_* variables for a libpq URL; other URL options are refused."""
    parts: dict[str, Any] = conninfo_to_dict(database_url)
    unsupported = sorted(set(parts) - URL_PARAMETERS)
    if unsupported:
        hints = ", ".join(f"{key} (set {libpq_variable(key)})" for key in unsupported)
        raise ValueError(
            f"CRM_DATABASE_URL options the event store would ignore: {hints}; "
            "set them as libpq environment variables instead so every connection uses them"
        )
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(parts.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(parts.get("port") or "5432"),
        "POSTGRES_USER": str(parts.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(parts.get("password") or ""),
    }
    if parts.get("connect_timeout"):
        env["POSTGRES_CONNECT_TIMEOUT"] = str(parts["connect_timeout"])
    return env


def event_store_env(
    settings: Settings, database_url: str | None, *, create_table: bool = False
) -> dict[str, str]:
    """Environment for the CRM application; long-running processes never create tables."""
    env = {
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "CUSTOMER_SNAPSHOT_INTERVAL": str(settings.customer_snapshot_interval),
        "IS_SNAPSHOTTING_ENABLED": "y" if settings.customer_snapshot_interval else "n",
    }
    if settings.persistence == "postgres":
        if database_url is None:
            raise ValueError("PostgreSQL persistence needs a database URL")
        env.update(postgres_env(database_url))
        env["POSTGRES_POOL_SIZE"] = str(settings.db_pool_size)
        env["POSTGRES_MAX_OVERFLOW"] = str(settings.db_max_overflow)
        env["CREATE_TABLE"] = "y" if create_table else "n"
        env["APPLICATION_RECORDER_TOPIC"] = get_topic(OneTripApplicationRecorder)
        env[GROUP_COMMIT] = "y" if settings.group_commit else "n"
        env["PERSISTENCE_MODULE"] = get_topic(CRMPostgresFactory)
        env[MASTER_KEY] = master_key_text(settings)
    else:
        env["PERSISTENCE_MODULE"] = get_topic(CRMPopoFactory)
    if settings.cipher_key:
        env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
        env["CIPHER_KEY"] = settings.cipher_key
    if settings.compress:
        env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    return env


MIGRATION_LOCK = 7_262_001  # pg_advisory_lock key: one migrator at a time


def migrate(settings: Settings, database_url: str) -> list[str]:
    """Create the event store's tables if missing (idempotent); returns the tables present."""
    env = event_store_env(settings, database_url, create_table=True)
    env["IS_SNAPSHOTTING_ENABLED"] = "y"  # the table exists even while snapshots are off
    # Concurrent CREATE TABLE IF NOT EXISTS races in the catalog; serialise migrators.
    with psycopg.connect(database_url, autocommit=True) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        app = CRM(env=env)
        try:
            tables = [app.recorder.events_table_name]  # type: ignore[attr-defined]
            if app.snapshots is not None:
                tables.append(app.snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
            datastore = app.recorder.datastore  # type: ignore[attr-defined]
            create_registry(datastore)
            create_privacy_schema(datastore)
            verify_master_key(datastore, MasterKey.from_text(master_key_text(settings)))
            create_api_schema(datastore)
            create_relay_schema(datastore)
            create_saga_schema(datastore)
            for spec in READ_MODELS:
                view = install(spec.view, datastore)
                tables.append(f"{spec.name} v{view.version}")
            return tables
        finally:
            app.close()
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
