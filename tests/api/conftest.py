"""The API over HTTP (FastAPI's TestClient) on the test database, and one key per role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from recoup.api.app import create_app
from recoup.apikeys.schemas import Role
from recoup.apikeys.service import create_key
from recoup.core.sessions import transaction


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def keys(db_url: str) -> dict[str, str]:
    """A live key per role, named after it: {"admin": "rk_…", …}."""
    made: dict[str, str] = {}
    with transaction(db_url) as session:
        for role in Role:
            made[role.value] = create_key(session, name=role.value, role=role.value).key
    return made


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin(client: TestClient, keys: dict[str, str]) -> TestClient:
    """The client, calling as the admin key."""
    client.headers.update(auth(keys["admin"]))
    return client


PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "errors"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    return body
