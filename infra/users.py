"""The CRM's users: argon2-hashed passwords, a role, and the region/team access depends on."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.postgres import PostgresDatastore

from api.security import ROLES, Principal, Role

SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_users (
    username text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9._@-]{1,64}$'),
    password_hash text NOT NULL,
    role text NOT NULL,
    region text,
    team text,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""

USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")  # as the table's CHECK says
_hasher = PasswordHasher()
# Verifying against a fixed hash for unknown users keeps their timing like a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserExists(Exception):
    """A user of that name exists already."""


@dataclass
class UserStore:
    """Users in PostgreSQL (table `crm_users`, created by `crm migrate`)."""

    datastore: PostgresDatastore

    def create(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        region: str | None = None,
        team: str | None = None,
        replace: bool = False,
    ) -> Principal:
        """Add a user (or, with `replace`, reset their password, role, region and team)."""
        if not USERNAME.fullmatch(username):
            raise ValueError("a username has 1-64 letters, digits or . _ @ -")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if role == "manager" and not region:
            raise ValueError("a manager needs a region")
        if len(password) < 8:
            raise ValueError("a password has at least 8 characters")
        conflict = (
            "DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, "
            "region = EXCLUDED.region, team = EXCLUDED.team, active = true, updated_at = now()"
            if replace
            else "DO NOTHING"
        )
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO crm_users (username, password_hash, role, region, team) "
                f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) {conflict} "
                "RETURNING username",
                (username, _hasher.hash(password), role, region, team),
            )
            if curs.fetchone() is None:
                raise UserExists(username)
        return Principal(username, role, region, team)

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user, when the password matches and the account is active."""
        if not USERNAME.fullmatch(username):
            return None  # no such user can exist (the table's CHECK); nothing to look up
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT username, password_hash, role, region, team FROM crm_users "
                "WHERE username = %s AND active",
                (username,),
            )
            row = curs.fetchone()
        try:
            _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(row["password_hash"]):
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(
                    "UPDATE crm_users SET password_hash = %s WHERE username = %s",
                    (_hasher.hash(password), username),
                )
        return Principal(row["username"], row["role"], row["region"], row["team"])

    def list(self) -> list[Principal]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT username, role, region, team FROM crm_users WHERE active ORDER BY username"
            )
            return [Principal(r["username"], r["role"], r["region"], r["team"]) for r in curs]

    def deactivate(self, username: str) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE crm_users SET active = false, updated_at = now() WHERE username = %s",
                (username,),
            )
            return curs.rowcount == 1


def ensure_demo_admin(store: UserStore, data_dir: Path, username: str, password: str | None) -> str:
    """Make sure the demo admin exists; returns its password (generated once, kept in data_dir).

    With a configured password the account is (re)set to it on every start; without one a
    random password is generated on first start and kept in `data_dir/demo-admin-password`.
    """
    if password:
        store.create(username, password, "admin", replace=True)
        return password
    path = data_dir / "demo-admin-password"
    if path.exists():
        kept = path.read_text().strip()
        store.create(username, kept, "admin", replace=True)
        return kept
    generated = secrets.token_urlsafe(12)
    store.create(username, generated, "admin", replace=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(generated)
    return generated
