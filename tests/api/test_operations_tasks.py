"""Tasks over HTTP: one task, claim, release, complete with a note or a promise to pay; a key
works on the tasks of its role (an admin's on any); a task someone else holds is a 409."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from recoup.core.sessions import transaction
from recoup.models import Task
from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import Cli


@pytest.fixture
def task_id(env: dict[str, str], tmp_path: Path) -> int:
    """I1 (100 EUR) at level call after runs on days 5 and 15: a task for a collector."""
    cli = Cli(tmp_path)
    cli.setup()
    cli.run(5)
    cli.run(15)
    (task,) = cli.json("tasks")
    assert task["role"] == "collector"
    return int(task["id"])


def test_one_task(task_id: int, client: TestClient, keys: dict[str, str]) -> None:
    response = client.get(f"/api/v1/tasks/{task_id}", headers=auth(keys["viewer"]))
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["id"] == task_id and task["status"] == "open" and task["action"] == "call"
    assert task["customer_name"] == "Acme SARL" and task["invoice_ids"] == ["I1"]
    assert task["instructions"] == "Call the customer" and task["plan_level"] == "call"
    assert [i["id"] for i in task["invoices"]] == ["I1"]
    body = assert_problem(client.get("/api/v1/tasks/999", headers=auth(keys["viewer"])), 404)
    assert body["detail"] == "task 999 not found"
    assert_problem(client.get("/api/v1/tasks/x", headers=auth(keys["viewer"])), 422)


def test_claim_release_complete(task_id: int, client: TestClient, keys: dict[str, str]) -> None:
    collector, admin = auth(keys["collector"]), auth(keys["admin"])
    url = f"/api/v1/tasks/{task_id}"
    claimed = client.post(f"{url}/claim", headers={**collector, "Recoup-Reason": "mine"})
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["status"] == "claimed" and claimed.json()["claimed_by"] == "collector"

    again = assert_problem(client.post(f"{url}/claim", headers=admin), 409)
    assert again["detail"] == f"task {task_id} is claimed by collector: only an open task can be claimed"
    taken = assert_problem(client.post(f"{url}/complete", json={"note": "x"}, headers=admin), 409)
    assert taken["detail"] == f"task {task_id} is claimed by collector, not admin"
    assert client.get(url, headers=admin).json()["claimed_by"] == "collector"

    released = client.post(f"{url}/release", headers={**admin, "Recoup-Reason": "reassigned"})
    assert released.status_code == 200 and released.json()["status"] == "open"
    assert_problem(client.post(f"{url}/release", headers=admin), 409)  # not claimed

    done = client.post(f"{url}/complete", json={"note": "called, no answer"}, headers=collector)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["outcome"] == "called, no answer"
    assert_problem(client.post(f"{url}/complete", json={}, headers=collector), 409)
    assert_problem(client.post(f"{url}/claim", headers=collector), 409)

    log = client.get("/api/v1/log", params={"limit": 100}, headers=admin).json()["data"]
    events = [(e["event"], e["actor"]) for e in log if e["event"].startswith("task_")]
    assert events[-4:] == [
        ("task_created", "system"),
        ("task_claimed", "collector"),
        ("task_released", "admin"),
        ("task_completed", "collector"),
    ]
    claim = next(e for e in log if e["event"] == "task_claimed")
    release = next(e for e in log if e["event"] == "task_released")
    assert claim["details"]["reason"] == "mine" and release["details"]["note"] == "reassigned"
    assert release["details"]["claimed_by"] == "collector"


def test_complete_with_a_promise_to_pay(
    task_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    url = f"/api/v1/tasks/{task_id}/complete"
    until = date.today() + timedelta(days=10)
    bad = [
        ({"amount": "50.00"}, ["amount"]),
        ({"promise": "soon"}, ["promise"]),
        ({"promise": until.isoformat(), "amount": "abc"}, ["amount"]),
        ({"note": "x", "extra": 1}, ["extra"]),
    ]
    for body, fields in bad:
        problem = assert_problem(client.post(url, json=body, headers=collector), 422)
        assert [e["field"] for e in problem["errors"]] == fields, body
    assert client.get(f"/api/v1/tasks/{task_id}", headers=collector).json()["status"] == "open"

    response = client.post(
        url, json={"note": "will pay", "promise": until.isoformat(), "amount": "40.00"},
        headers=collector,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "completed" and task["plan_status"] == "paused"
    assert task["pause_reason"] == "promise" and task["pause_until"] == until.isoformat()
    assert task["promise_amount"] == "40.00"


def test_a_key_works_on_the_tasks_of_its_role(
    task_id: int, db_url: str, client: TestClient, keys: dict[str, str]
) -> None:
    with transaction(db_url) as session:
        session.execute(update(Task).where(Task.id == task_id).values(role="account_manager"))
    url = f"/api/v1/tasks/{task_id}"
    for verb, body in (("claim", None), ("complete", {"note": "x"})):
        problem = assert_problem(
            client.post(f"{url}/{verb}", json=body, headers=auth(keys["collector"])), 403
        )
        assert problem["detail"] == (
            f"task {task_id} is for the role account_manager: the key's role is collector"
        )
    assert client.get(url, headers=auth(keys["collector"])).json()["status"] == "open"
    claimed = client.post(f"{url}/claim", headers=auth(keys["admin"]))
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "admin"
    assert_problem(client.post(f"{url}/release", headers=auth(keys["collector"])), 403)
    assert_problem(client.post(f"{url}/claim", headers=auth(keys["viewer"])), 403)
    assert_problem(client.post("/api/v1/tasks/999/claim", headers=auth(keys["admin"])), 404)
