"""Responses the hot reads build themselves, already validated and serialised."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_response(model: BaseModel) -> Response:
    """`model` as JSON, serialised once by pydantic.

    A route returning a `Response` skips FastAPI's second validation against `response_model`
    (which still documents the body): the model was just validated when it was built.
    """
    return Response(model.__pydantic_serializer__.to_json(model), media_type="application/json")
