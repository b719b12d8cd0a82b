"""The HTTP API on a fresh database, with read models kept live by a real supervisor."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_api
from api.security import Principal, Role
from api.services import ApiServices
from domain.application import CRM
from infra.bootstrap import api_services, build_crm
from infra.projections import ProjectionSupervisor
from infra.settings import Settings

PASSWORD = "correct horse battery"


@dataclass
class Api:
    """A test client plus what is behind it; `as_(role)` logs a fresh user of that role in."""

    client: TestClient
    crm: CRM
    services: ApiServices
    database_url: str = ""
    _tokens: dict[tuple[Any, ...], dict[str, str]] = field(default_factory=dict)

    def as_(
        self,
        role: Role,
        username: str | None = None,
        *,
        region: str | None = "east",
        team: str | None = None,
    ) -> dict[str, str]:
        """Authorization headers of a user with this role.

        The token is minted directly (login itself is tested in test_auth.py), which spares
        every test two argon2 computations per user.
        """
        name = username or role
        cache_key = (name, role, region, team)
        if cache_key not in self._tokens:
            principal = Principal(name, role, region, team)
            token = self.services.tokens.issue(principal).token
            self._tokens[cache_key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[cache_key]

    @property
    def admin(self) -> dict[str, str]:
        return self.as_("admin", region=None)


def settings_in(data_dir: Path) -> Settings:
    return Settings(
        customer_snapshot_interval=0,
        token_secret=secrets.token_urlsafe(32),
        data_dir=data_dir,
    )


@contextmanager
def running_api(database_url: str, settings: Settings) -> Iterator[Api]:
    """The API on a migrated database, its read models kept live by a real supervisor."""
    crm = build_crm(settings, database_url)
    services = api_services(settings, crm)
    try:
        with (
            ProjectionSupervisor(crm, database_url),
            TestClient(create_api(services), raise_server_exceptions=False) as client,
        ):
            yield Api(client, crm, services, database_url)
    finally:
        services.access_log.close()
        crm.close()


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return settings_in(tmp_path / "crm")


@pytest.fixture
def api(migrated_database_url: str, api_settings: Settings) -> Iterator[Api]:
    with running_api(migrated_database_url, api_settings) as running:
        yield running


@pytest.fixture(scope="module")
def module_api(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One API for a whole test module (each test then works on data of its own)."""
    with running_api(module_database_url, settings_in(tmp_path_factory.mktemp("crm"))) as running:
        yield running
