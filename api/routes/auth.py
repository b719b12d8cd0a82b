"""Login (OAuth2 password flow -> JWT bearer token) and who-am-I."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import PUBLIC, SIGNED_IN, CurrentUser, Services
from api.errors import problems
from api.security import Role

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenPublic(BaseModel):
    """A bearer token: send it as `Authorization: Bearer <access_token>`."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    expires_in: int


class UserPublic(BaseModel):
    """The authenticated user."""

    username: str
    role: Role
    region: str | None
    team: str | None


LOGIN_EXAMPLE = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "example": {
                    "username": "admin",
                    "password": "the-password",
                    "grant_type": "password",
                }
            }
        }
    }
}


@router.post(
    "/token",
    response_model=TokenPublic,
    dependencies=[PUBLIC],
    responses=problems(401, 422),
    openapi_extra=LOGIN_EXAMPLE,
)
def login(services: Services, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenPublic:
    """Exchange a username and password for a bearer token."""
    principal = services.users.authenticate(form.username, form.password)
    if principal is None:
        raise HTTPException(
            401, "Unknown user or wrong password", headers={"WWW-Authenticate": "Bearer"}
        )
    issued = services.tokens.issue(principal)
    expires_in = int((issued.expires_at - datetime.now(UTC)).total_seconds())
    return TokenPublic(
        access_token=issued.token, expires_at=issued.expires_at, expires_in=expires_in
    )


@router.get("/me", response_model=UserPublic, responses=problems(401), dependencies=[SIGNED_IN])
def me(user: CurrentUser) -> UserPublic:
    """The user the bearer token belongs to."""
    return UserPublic(username=user.username, role=user.role, region=user.region, team=user.team)
