"""API keys: created from the CLI and shown once, stored as a SHA-256 only, listed without the
key, revoked (refused once the server's cache of checked keys lets it go); `Authorization:
Bearer` — no key, an unknown or a revoked one is a 401 problem+json with WWW-Authenticate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recoup.apikeys import repository
from recoup.apikeys.service import KeyCache
from recoup.cli.main import app as cli_app
from recoup.core.sessions import transaction
from tests.api.conftest import assert_problem, auth


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False)
    output = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, output
    return output


def test_a_key_is_shown_once_stored_hashed_listed_without_it_and_revoked(
    env: dict[str, str], db_url: str, client: TestClient, tmp_path: Path
) -> None:
    out = _cli("apikey", "create", "--name", "billing", "--role", "collector")
    key = out.strip().splitlines()[-1]
    assert key.startswith("rk_") and len(key) > 40
    with transaction(db_url) as session:
        (row,) = repository.list_keys(session)
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert row.prefix == key[:9] and row.role == "collector"
    listed = json.loads(_cli("apikey", "list", "--json"))
    assert [(k["name"], k["role"], k["prefix"]) for k in listed] == [
        ("billing", "collector", key[:9])
    ]
    assert key not in json.dumps(listed) and key not in _cli("apikey", "list")
    assert listed[0]["last_used_at"] is None and listed[0]["revoked_at"] is None

    clock = [1000.0]
    client.app.state.key_cache = KeyCache(5, clock=lambda: clock[0])  # type: ignore[attr-defined]
    assert client.get("/api/v1/plans", headers=auth(key)).status_code == 200
    assert json.loads(_cli("apikey", "list", "--json"))[0]["last_used_at"] is not None

    assert "revoked" in _cli("apikey", "revoke", "billing")
    # the server trusts a key it checked for RECOUP_API_KEY_CACHE_SECONDS, no longer
    clock[0] += 4.9
    assert client.get("/api/v1/plans", headers=auth(key)).status_code == 200
    clock[0] += 0.1
    body = assert_problem(client.get("/api/v1/plans", headers=auth(key)), 401)
    assert body["detail"] == "the API key is unknown or revoked"
    assert json.loads(_cli("apikey", "list", "--json"))[0]["revoked_at"] is not None


def test_the_cli_refuses_a_taken_name_an_unknown_role_and_an_unknown_key(
    env: dict[str, str],
) -> None:
    _cli("apikey", "create", "--name", "ops", "--role", "admin")
    assert "exists already" in _cli("apikey", "create", "--name", "ops", "--role", "admin", code=1)
    out = _cli("apikey", "create", "--name", "x", "--role", "boss", code=1)
    assert "--role 'boss': a role is admin, collector, viewer" in out
    assert "API key 'nobody' not found" in _cli("apikey", "revoke", "nobody", code=1)


def test_no_key_or_an_unknown_one_is_401_with_www_authenticate(
    client: TestClient, keys: dict[str, str]
) -> None:
    for headers in ({}, auth("rk_not-a-key"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = client.get("/api/v1/settings", headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert body["code"] == "unauthorized"
    assert client.get("/api/v1/settings", headers=auth(keys["viewer"])).status_code == 200


def test_a_role_without_the_right_is_403(client: TestClient, keys: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/plans/1/pause", json={"reason": "x"}, headers=auth(keys["viewer"])
    )
    body = assert_problem(response, 403)
    assert body["title"] == "Forbidden" and body["detail"] == "the role viewer may not operate"
