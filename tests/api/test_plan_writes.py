"""Pause, resume and stop over HTTP: through recoup.plans.service, logged with the key's name as
the actor; a refused change is a 409, a malformed body a 422, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import Cli


@pytest.fixture
def plan_id(env: dict[str, str], tmp_path: Path) -> int:
    cli = Cli(tmp_path)
    cli.setup()
    cli.run(5)
    (plan,) = cli.plans()
    return int(plan["id"])


def test_pause_resume_stop_log_the_key_as_actor(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    url = f"/api/v1/plans/{plan_id}"
    paused = client.post(f"{url}/pause", json={"reason": "disputed"}, headers=collector)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["pause_reason"] == "disputed"

    again = client.post(f"{url}/pause", json={"reason": "twice"}, headers=collector)
    body = assert_problem(again, 409)
    assert body["detail"] == f"plan {plan_id} is paused: only an active plan can be paused"

    resumed = client.post(f"{url}/resume", headers={**collector, "Recoup-Reason": "paid soon"})
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    stopped = client.post(f"{url}/stop", json={"reason": "settled"}, headers=auth(keys["admin"]))
    assert stopped.json()["status"] == "stopped" and stopped.json()["stop_reason"] == "settled"

    log = client.get("/api/v1/log", params={"plan": plan_id}, headers=collector).json()["data"]
    actors = {e["event"]: e["actor"] for e in log}
    assert actors["plan_paused"] == "collector" and actors["plan_resumed"] == "collector"
    assert actors["plan_stopped"] == "admin"
    assert [e["event"] for e in log].count("plan_paused") == 1  # the refused one wrote nothing
    (resume,) = [e for e in log if e["event"] == "plan_resumed"]
    assert resume["details"]["reason"] == "paid soon"


def test_a_bad_body_is_422_naming_the_field(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    url = f"/api/v1/plans/{plan_id}/pause"
    body = assert_problem(client.post(url, json={"until": "soon"}, headers=admin), 422)
    assert sorted(e["field"] for e in body["errors"]) == ["reason", "until"]
    body = assert_problem(client.post(url, json={"reason": " "}, headers=admin), 422)
    assert body["errors"] == [
        {"field": "reason", "message": "reason must not be empty", "index": None}
    ]
    body = assert_problem(
        client.post(url, json={"reason": "x", "until": "2000-01-01"}, headers=admin), 422
    )
    assert body["errors"][0]["field"] == "until" and body["detail"].startswith("until 2000-01-01")
    plan = client.get(f"/api/v1/plans/{plan_id}", headers=admin).json()
    assert plan["status"] == "active"
