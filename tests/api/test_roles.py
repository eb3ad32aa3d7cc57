"""The role matrix, generated from the app's routes: every route declares the right it needs
(recoup.api.roles), and every role × every route is allowed or 403; without a key, 401. A new
route without a declared right fails here."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from recoup.api.app import PREFIX, create_app
from recoup.api.deps import Requires
from recoup.api.roles import Right, allowed
from recoup.apikeys.schemas import Role
from tests.api.conftest import auth


def _requires(route: object) -> list[Requires]:
    found: list[Requires] = []
    stack = list(route.dependant.dependencies)  # type: ignore[attr-defined]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, Requires):
            found.append(dependant.call)
        stack.extend(dependant.dependencies)
    return found


def _routes() -> list[tuple[str, str, object]]:
    """Every API route as the app serves it (its full path, the routers' dependencies too)."""
    app = create_app("sqlite:///:memory:")
    return [
        (method, context.path, context)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in sorted(context.methods or ())
    ]


ROUTES = _routes()


def test_every_route_is_under_the_prefix_and_declares_one_right() -> None:
    assert len(ROUTES) >= 15
    for method, path, route in ROUTES:
        assert path.startswith(PREFIX + "/"), path
        rights = {r.right for r in _requires(route)}
        assert len(rights) == 1, f"{method} {path} declares {rights or 'no right'}"
        if method != "GET":
            assert rights != {Right.read}, f"{method} {path} writes with the right to read"


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in ROUTES])
def test_each_role_is_allowed_or_403_and_no_key_is_401(
    client: TestClient, keys: dict[str, str], method: str, path: str
) -> None:
    (route,) = [r for m, p, r in ROUTES if (m, p) == (method, path)]
    (right,) = {r.right for r in _requires(route)}
    body = {"reason": "matrix"} if method == "POST" else None
    no_key = client.request(method, _url(path), json=body)
    assert no_key.status_code == 401, no_key.text
    for role in Role:
        response = client.request(method, _url(path), json=body, headers=auth(keys[role]))
        if allowed(role, right):
            assert response.status_code not in (401, 403, 500), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.headers["content-type"] == "application/problem+json"
