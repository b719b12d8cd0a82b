"""Settings become the library's environment; URL options it would drop are refused."""

from __future__ import annotations

import pytest

from infra.persistence import event_store_env, postgres_env
from infra.settings import Settings


def test_a_database_url_becomes_the_librarys_postgres_variables() -> None:
    env = postgres_env("postgresql://crm:s3cret@db.internal:6543/crm?connect_timeout=7")

    assert env["POSTGRES_HOST"] == "db.internal"
    assert env["POSTGRES_PORT"] == "6543"
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("crm", "s3cret")
    assert env["POSTGRES_DBNAME"] == "crm"
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "7"


def test_url_options_the_event_store_would_ignore_are_refused_with_the_variable_to_use() -> None:
    with pytest.raises(ValueError, match="PGSSLMODE"):
        postgres_env("postgresql://crm@db.internal/crm?sslmode=verify-full")


def test_workers_never_create_tables_and_never_enable_db_functions() -> None:
    env = event_store_env(Settings(), "postgresql://crm@db/crm")

    assert env["CREATE_TABLE"] == "n"
    assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in env


def test_cipher_and_compression_are_configured_from_settings() -> None:
    env = event_store_env(Settings(cipher_key="k" * 44, compress=True), "postgresql://crm@db/crm")

    assert env["CIPHER_TOPIC"].endswith("AESCipher")
    assert env["COMPRESSOR_TOPIC"].endswith("ZlibCompressor")
