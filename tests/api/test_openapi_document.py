"""The OpenAPI document is complete: every operation described, every request body with an
example, every guarded operation documents its problem responses."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace
from typing import Any

import pytest

from api.main import create_api

PUBLIC_WITHOUT_PROBLEMS = {("get", "/health"), ("get", "/metrics")}


@cache
def document() -> dict[str, Any]:
    # Building the document needs the routes only, not the services behind them.
    stub = SimpleNamespace(idempotency=None, tokens=None, crm=None)
    return create_api(stub).openapi()  # type: ignore[arg-type]


OPERATIONS = [
    pytest.param(method, path, operation, id=f"{method.upper()} {path}")
    for path, item in document()["paths"].items()
    for method, operation in item.items()
]


def test_the_document_is_openapi_3_1() -> None:
    assert document()["openapi"].startswith("3.1")


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_operation_is_described(method: str, path: str, operation: dict[str, Any]) -> None:
    assert operation.get("description") or operation.get("summary")
    assert operation.get("tags"), "operations are grouped by resource"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_request_body_has_an_example(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    body = operation.get("requestBody")
    if body is None:
        return
    schemas = document()["components"]["schemas"]
    for media in body["content"].values():
        ref = media.get("schema", {}).get("$ref", "")
        schema = schemas.get(ref.rsplit("/", 1)[-1], {})
        assert "example" in media or "examples" in media or "examples" in schema, path


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_guarded_operation_documents_its_problems(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    if (method, path) in PUBLIC_WITHOUT_PROBLEMS:
        return
    problems = [code for code in operation["responses"] if code.startswith("4")]
    assert problems
    for code in problems:
        content = operation["responses"][code].get("content", {})
        assert "application/problem+json" in content, f"{code} of {method} {path}"
