"""Who is calling: roles, the authenticated principal, and signed bearer tokens (JWT)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import jwt

Role = Literal["admin", "manager", "sales", "marketing", "service", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """An authenticated user: what every access rule is decided on."""

    username: str
    role: Role
    region: str | None = None
    team: str | None = None

    @property
    def actor(self) -> str:
        """How events recorded on this user's behalf name them."""
        return f"user:{self.username}"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class InvalidToken(Exception):
    """A bearer token that is malformed, forged or expired."""


class TokenService:
    """Issues and checks HS256-signed JWTs carrying the principal's role, region and team."""

    def __init__(self, secret: str, lifetime: timedelta = timedelta(hours=8)) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        self.lifetime = lifetime

    def issue(self, principal: Principal, now: datetime | None = None) -> IssuedToken:
        issued_at = now or datetime.now(UTC)
        expires_at = issued_at + self.lifetime
        claims = {
            "sub": principal.username,
            "role": principal.role,
            "region": principal.region,
            "team": principal.team,
            "iat": issued_at,
            "exp": expires_at,
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires_at)

    def read(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from error
        role = claims.get("role")
        if role not in ROLES:
            raise InvalidToken(f"unknown role {role!r}")
        return Principal(
            username=str(claims["sub"]),
            role=role,
            region=claims.get("region"),
            team=claims.get("team"),
        )
