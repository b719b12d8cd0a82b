"""RFC 9457 problem details: the only place that maps domain errors to HTTP status codes."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Send

from domain.shared import ConcurrencyConflict, DomainError, InvalidValue, NotFound
from projections.pagination import InvalidCursor
from projections.readmodel import ReadModelNotCaughtUp

PROBLEM_TYPE_BASE = "https://crm.example/problems/"
PROBLEM_JSON = "application/problem+json"
PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})

logger = logging.getLogger(__name__)


def status_for(error: DomainError) -> int:
    """HTTP status of a domain error: unknown id 404, bad value 422, any refused rule 409."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidValue):
        return 422
    if isinstance(error, ConcurrencyConflict) and error.expected_version is not None:
        return 412  # the caller's If-Match no longer holds
    return 409


class FieldError(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem: `type` names the rule or error, `detail` explains this occurrence."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_TYPE_BASE + "lead-already-converted",
                    "title": "The lead was converted already.",
                    "status": 409,
                    "detail": "Lead 0f8fad5b-d9cb-469f-a165-70867728950e was converted already",
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


PROBLEM_DESCRIPTIONS = {
    400: "The request is malformed",
    401: "No valid bearer token",
    403: "The caller's role may not do this",
    404: "No such record, or one the caller may not see",
    409: "A business rule refused the command (`type` names the rule)",
    412: "`If-Match` does not match the record's current version",
    422: "The request is not valid (`errors` lists the fields)",
    503: "A read model did not catch up with `min_position` in time",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these problem statuses."""
    return {
        status: {
            "description": PROBLEM_DESCRIPTIONS[status],
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


QUERY_PROBLEMS = problems(401, 403, 404, 422, 503)
COMMAND_PROBLEMS = problems(401, 403, 404, 409, 412, 422)


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
    # Context may not overwrite the problem's own members (a lead's `status`, say).
    extra = {k: v for k, v in error.context.items() if v is not None and k not in PROBLEM_MEMBERS}
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
    code = {
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        409: "conflict",
        422: "invalid-request",
    }
    response = problem(
        error.status_code,
        code.get(error.status_code, "http-error"),
        str(error.detail),
        str(error.detail),
    )
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


async def _invalid_cursor(_: Request, error: Exception) -> ProblemResponse:
    return problem(
        422,
        "invalid-cursor",
        "Invalid cursor",
        "The cursor was not issued by this listing; start again without one.",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}],
    )


async def _not_caught_up(_: Request, error: Exception) -> ProblemResponse:
    response = problem(
        503,
        "read-model-not-caught-up",
        "The read model has not caught up yet",
        f"{error}; retry shortly.",
    )
    response.headers["Retry-After"] = "1"
    return response


async def _unexpected_error(_: Request, error: Exception) -> ProblemResponse:
    logger.exception("unhandled error", exc_info=error)
    return problem(
        500,
        "internal-error",
        "Internal server error",
        "The server failed; the error has been logged.",
    )


async def send_problem(response: ProblemResponse, send: Send) -> None:
    """Answer with `response` from ASGI middleware (a response is an ASGI app of its own)."""

    async def no_request() -> Message:
        return {"type": "http.disconnect"}

    await response({"type": "http"}, no_request, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(ReadModelNotCaughtUp, _not_caught_up)
    app.add_exception_handler(Exception, _unexpected_error)
