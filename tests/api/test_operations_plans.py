"""Plans over HTTP, beyond pause/resume/stop: the days-overdue filter (R1), a promise to pay
(R10) and the manual actions the current level allows; refused writes change nothing."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv, outbox


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> dict[str, int]:
    """I1 due on DUE, I2 ten days earlier, both C1's in EUR; a run 5 days after DUE opens a
    plan on each at level first_notice (an email and a fee). {invoice id: plan id}."""
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE - timedelta(days=10), "200.00", "EUR"),
        )
    )
    cli.run(5)
    return {plan["invoice_id"]: int(plan["id"]) for plan in cli.plans()}


def _today() -> date:
    return date.today()  # the business date the API counts on (the settings say UTC)


def _log(
    client: TestClient, plan_id: int, event: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    params = {"plan": plan_id, "limit": 100}
    entries = client.get("/api/v1/log", params=params, headers=headers).json()["data"]
    return [e for e in entries if e["event"] == event]


def test_plans_by_days_overdue(book: dict[str, int], admin: TestClient) -> None:
    i1 = (_today() - DUE).days  # I1's days overdue today; I2's are 10 more

    def invoices(**params: Any) -> list[str]:
        response = admin.get("/api/v1/plans", params=params)
        assert response.status_code == 200, response.text
        return sorted(plan["invoice_id"] for plan in response.json()["data"])

    assert invoices(min_days_overdue=i1) == ["I1", "I2"]
    assert invoices(min_days_overdue=i1 + 1) == ["I2"]
    assert invoices(max_days_overdue=i1 + 9) == ["I1"]
    assert invoices(min_days_overdue=i1 + 10, max_days_overdue=i1 + 10) == ["I2"]
    assert invoices(min_days_overdue=i1 + 11) == []
    assert invoices(min_days_overdue=i1, currency="EUR", status="active") == ["I1", "I2"]

    # a plan paused before today stops counting from that day: none here (paused today),
    # but a stopped plan has no days overdue at all
    stop = admin.post(f"/api/v1/plans/{book['I2']}/stop", json={"reason": "settled"})
    assert stop.status_code == 200
    assert invoices(min_days_overdue=0) == ["I1"]
    assert invoices() == ["I1", "I2"]

    body = assert_problem(admin.get("/api/v1/plans", params={"min_days_overdue": "x"}), 422)
    assert [e["field"] for e in body["errors"]] == ["min_days_overdue"]


def test_a_promise_to_pay_pauses_the_plan(
    book: dict[str, int], client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    plan_id = book["I1"]
    url = f"/api/v1/plans/{plan_id}/promise"
    until = _today() + timedelta(days=7)

    refused = [
        ({"until": (_today() - timedelta(days=1)).isoformat()}, "until", 422),
        ({"until": until.isoformat(), "amount": "ten"}, "amount", 422),
        ({"until": until.isoformat(), "amount": "10.001"}, "amount", 422),
        ({"until": until.isoformat(), "amount": "100.01"}, "amount", 422),
        ({"until": "soon"}, "until", 422),
        ({"amount": "10.00"}, "until", 422),
    ]
    for body, field, status in refused:
        problem = assert_problem(client.post(url, json=body, headers=collector), status)
        assert [e["field"] for e in problem["errors"]] == [field], (body, problem)
    assert client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()["status"] == "active"

    response = client.post(
        url,
        json={"until": until.isoformat(), "amount": "60.00"},
        headers={**collector, "Recoup-Reason": "called, will pay part"},
    )
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["status"] == "paused" and plan["pause_reason"] == "promise"
    assert plan["pause_until"] == until.isoformat() and plan["promise_amount"] == "60.00"
    (made,) = _log(client, plan_id, "promise_made", collector)
    assert made["actor"] == "collector" and made["details"]["note"] == "called, will pay part"
    assert made["details"]["amount"] == "60.00"

    whole = client.post(url, json={"until": until.isoformat()}, headers=collector).json()
    assert whole["promise_amount"] == "100.00"  # no amount: the whole balance

    stopped = client.post(f"/api/v1/plans/{plan_id}/stop", json={"reason": "x"}, headers=collector)
    assert stopped.status_code == 200
    problem = assert_problem(client.post(url, json={"until": until.isoformat()}, headers=collector), 409)
    assert "stopped" in problem["detail"]
    assert len(_log(client, plan_id, "promise_made", collector)) == 2
    assert_problem(client.post("/api/v1/plans/999/promise", json={"until": until.isoformat()}, headers=collector), 404)


def test_manual_actions_the_level_allows(
    book: dict[str, int], client: TestClient, keys: dict[str, str], env: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    plan_id = book["I1"]
    options = client.get(f"/api/v1/plans/{plan_id}/actions", headers=auth(keys["viewer"]))
    assert options.status_code == 200, options.text
    by_kind = {o["kind"]: o for o in options.json()["data"]}
    assert list(by_kind) == ["email", "letter", "status"]
    assert by_kind["email"] == {
        "kind": "email", "action": "email_notice", "available": True, "reason": None,
    }  # fmt: skip
    assert by_kind["letter"]["available"] is False and "send_letter" in by_kind["letter"]["reason"]
    assert by_kind["status"]["available"] is False

    before = len(outbox(env))
    sent = client.post(
        f"/api/v1/plans/{plan_id}/actions/email",
        headers={**collector, "Recoup-Reason": "customer asked for a copy"},
    )
    assert sent.status_code == 200, sent.text
    outcome = sent.json()
    assert outcome["status"] == "done" and outcome["action"] == "email_notice"
    assert outcome["result"]["to"] == "billing@acme.test"
    assert len(outbox(env)) == before + 1
    queued = [e for e in _log(client, plan_id, "action_queued", collector) if e["details"].get("manual")]
    assert [(e["actor"], e["details"]["reason"]) for e in queued] == [
        ("collector", "customer asked for a copy")
    ]

    actions = len(client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()["actions"])
    for kind in ("letter", "status"):
        problem = assert_problem(
            client.post(f"/api/v1/plans/{plan_id}/actions/{kind}", headers=collector), 409
        )
        assert "first_notice" in problem["detail"]
    bad_template = client.post(
        f"/api/v1/plans/{plan_id}/actions/email", json={"template": "nope"}, headers=collector
    )
    assert [e["field"] for e in assert_problem(bad_template, 422)["errors"]] == ["template"]
    assert len(client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()["actions"]) == actions
    assert len(outbox(env)) == before + 1

    assert_problem(client.post(f"/api/v1/plans/{plan_id}/actions/fax", headers=collector), 422)
    assert_problem(client.post("/api/v1/plans/999/actions/email", headers=collector), 404)
    assert_problem(client.get("/api/v1/plans/999/actions", headers=collector), 404)
    stopped = client.post(f"/api/v1/plans/{plan_id}/stop", json={"reason": "x"}, headers=collector)
    assert stopped.status_code == 200
    assert_problem(client.post(f"/api/v1/plans/{plan_id}/actions/email", headers=collector), 409)
