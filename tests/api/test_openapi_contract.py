"""schemathesis against the live OpenAPI document: no 5xx for any generated request, and every
response matches the schema the route declares (status, content type, body)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import PASSWORD, Api
from tests.api.test_access_matrix import QUICK

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def shared_api(module_api: Api) -> Api:
    """One API for the whole module: the generated requests do not depend on each other."""
    return module_api


def check_operation(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        if case.operation.path in QUICK:  # a stream ends at once instead of idling
            case.query = {**(case.query or {}), **QUICK[case.operation.path]}
        response = case.call(headers=headers)
        assert response.status_code < 500, f"{case.operation.label}: {response.text}"
        case.validate_response(
            response,
            checks=[
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    run()


def test_generated_requests_get_no_server_error_and_conform_to_the_schema(
    shared_api: Api,
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", shared_api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 3
    for operation in operations:
        headers = {} if operation.path == "/auth/token" else dict(shared_api.admin)
        check_operation(operation, headers)


def test_the_login_form_accepts_the_documented_fields(shared_api: Api) -> None:
    shared_api.services.users.create("schema-user", PASSWORD, "auditor")  # type: ignore[attr-defined]
    response = shared_api.client.post(
        "/auth/token", data={"username": "schema-user", "password": PASSWORD}
    )
    assert response.status_code == 200
