"""RFC 9457 problem details: the only place that maps domain errors to HTTP status codes."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.shared import DomainError, InvalidValue, NotFound

PROBLEM_TYPE_BASE = "https://crm.example/problems/"
PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger(__name__)


def status_for(error: DomainError) -> int:
    """HTTP status of a domain error: unknown id 404, bad value 422, any refused rule 409."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidValue):
        return 422
    return 409


class ProblemResponse(Response):
    """application/problem+json rendered with orjson."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> ProblemResponse:
    """A problem+json response."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return ProblemResponse(body, status_code=status)


async def _domain_error(_: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, DomainError)
    title = (type(error).__doc__ or type(error).__name__).strip().splitlines()[0]
    extra = {k: v for k, v in error.context.items() if v is not None}
    return problem(status_for(error), error.code(), title, error.detail, **extra)


async def _validation_error(_: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in error.errors()
    ]
    return problem(
        422,
        "validation-error",
        "Request is not valid",
        f"{len(errors)} field(s) failed validation",
        errors=errors,
    )


async def _http_error(_: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, StarletteHTTPException)
    code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}
    return problem(
        error.status_code,
        code.get(error.status_code, "http-error"),
        str(error.detail),
        str(error.detail),
    )


async def _unexpected_error(_: Request, error: Exception) -> ProblemResponse:
    logger.exception("unhandled error", exc_info=error)
    return problem(
        500,
        "internal-error",
        "Internal server error",
        "The server failed; the error has been logged.",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
