"""Role x route matrix, generated from the app's route table: every route has one access rule,
and every role gets exactly the answer its rule says (403 when not permitted, never 401/403 when
permitted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.access import PERMISSIONS, permits
from api.deps import Allow, Public, SignedIn
from api.main import ROUTERS
from api.security import ROLES, Principal
from tests.api.conftest import Api

# Query parameters a permitted request needs to come back at once (streams end early).
QUICK: dict[str, dict[str, Any]] = {"/events/stream": {"max_events": 0, "idle_timeout": 0}}


def api_routes() -> Iterator[APIRoute]:
    for module in ROUTERS:
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                yield route


def guards(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, (Allow, Public, SignedIn)):
            yield dependency.call
        yield from guards(dependency)


def rule_of(route: APIRoute) -> Allow | Public | SignedIn:
    found = {id(g): g for g in guards(route.dependant)}
    assert len(found) == 1, f"{sorted(route.methods)} {route.path} has {len(found)} access rules"
    (guard,) = found.values()
    return guard


ROUTES = [
    pytest.param(route, id=f"{'/'.join(sorted(route.methods))} {route.path}")
    for route in api_routes()
]


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_declares_exactly_one_access_rule(route: APIRoute) -> None:
    rule_of(route)


def test_the_route_table_covers_every_resource_of_the_rules() -> None:
    resources = {r.resource for r in map(rule_of, api_routes()) if isinstance(r, Allow)}
    declared = {resource for rules in PERMISSIONS.values() for resource in rules}

    assert declared <= resources, f"rules for resources without routes: {declared - resources}"


def test_auditors_may_only_read_and_admins_may_do_everything() -> None:
    auditor = Principal("a", "auditor")
    admin = Principal("b", "admin")
    for route in api_routes():
        rule = rule_of(route)
        if isinstance(rule, Allow):
            assert permits(admin, rule.resource, rule.action), route.path
            if rule.action == "write":
                assert not permits(auditor, rule.resource, rule.action), route.path


def concrete_path(route: APIRoute) -> str:
    values = {
        name: "customer" if name == "kind" else "vip" if name == "tag" else str(uuid4())
        for name in route.param_convertors
    }
    return route.path.format(**values)


def test_each_role_gets_the_answer_its_rule_gives_on_every_route(api: Api) -> None:
    headers = {role: api.as_(role, f"matrix-{role}") for role in ROLES}
    wrong: list[str] = []
    for route in api_routes():
        rule = rule_of(route)
        path = concrete_path(route)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            anonymous = api.client.request(method, path, params=QUICK.get(route.path))
            if isinstance(rule, Public):
                if anonymous.status_code in (401, 403):
                    wrong.append(f"{method} {route.path}: public but {anonymous.status_code}")
                continue
            if anonymous.status_code != 401:
                wrong.append(f"{method} {route.path} anonymous: {anonymous.status_code}")
            for role in ROLES:
                allowed = isinstance(rule, SignedIn) or permits(
                    Principal("x", role), rule.resource, rule.action
                )
                response = api.client.request(
                    method,
                    path,
                    headers=headers[role],
                    params=QUICK.get(route.path),
                    json={} if method in ("POST", "PATCH", "PUT") else None,
                )
                status = response.status_code
                if allowed and status in (401, 403, 500):
                    wrong.append(f"{method} {route.path} as {role}: {status}, expected allowed")
                if not allowed and status != 403:
                    wrong.append(f"{method} {route.path} as {role}: {status}, expected 403")
    assert not wrong, "\n".join(wrong)
