"""Customers, invoices and payments written one at a time over HTTP, an invoice's PDF, disputes:
through the imports' own checks and effects (a payment closes its plan as `recoup import
payments` does), the key's name as the actor; a refused write changes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recoup.core.env import load_env
from recoup.core.files import read_inside
from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import DUE, Cli

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def plan_id(env: dict[str, str], tmp_path: Path) -> int:
    """Customers C1 (EUR) and C2 (USD), invoice I1 of C1 (100.00 EUR), its plan opened."""
    cli = Cli(tmp_path)
    cli.setup()
    cli.run(5)
    (plan,) = cli.plans()
    return int(plan["id"])


def _log(client: TestClient, headers: dict[str, str], **params: str) -> list[dict]:
    return client.get("/api/v1/log", params={"limit": 100, **params}, headers=headers).json()[
        "data"
    ]


def test_customers_are_created_and_changed_like_rows_of_a_file(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    body = {"id": "C9", "name": "Zeta GmbH", "email": "ap@zeta.test", "country": "de"}
    created = client.post(
        "/api/v1/customers", json={**body, "attributes": {"tier": "gold"}}, headers=collector
    )
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["id"] == "C9" and account["country"] == "DE"  # as the import stores it
    assert account["attributes"] == {"tier": "gold"} and account["status"] == "active"

    again = assert_problem(client.post("/api/v1/customers", json=body, headers=collector), 409)
    assert again["errors"][0]["field"] == "id"
    # the service's words name no face: the CLI and the pages share them
    assert again["detail"] == "customer 'C9' exists already; change it instead of creating it"

    bad = assert_problem(
        client.post(
            "/api/v1/customers", json={"id": "C10", "name": "X", "email": "nope"}, headers=collector
        ),
        422,
    )
    assert [e["field"] for e in bad["errors"]] == ["email"]
    assert client.get("/api/v1/customers/C10", headers=collector).status_code == 404

    changed = client.patch(
        "/api/v1/customers/C9",
        json={"name": "Zeta AG", "attributes": {"tier": None}},
        headers=collector,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Zeta AG" and changed.json()["attributes"] == {}
    assert changed.json()["email"] == "ap@zeta.test"  # left out: kept

    refused = client.patch("/api/v1/customers/C9", json={"policy": "Nope"}, headers=collector)
    assert assert_problem(refused, 422)["errors"][0]["field"] == "policy"
    assert client.get("/api/v1/customers/C9", headers=collector).json()["policy"] is None
    assert_problem(
        client.patch("/api/v1/customers/C404", json={"name": "x"}, headers=collector), 404
    )


def test_invoices_are_created_and_changed_and_a_paid_one_closes_its_plan(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    body = {
        "id": "I9",
        "customer_id": "C1",
        "number": "N-9",
        "issue_date": "2026-02-01",
        "due_date": "2026-03-01",
        "currency": "EUR",
        "amount": "40.00",
    }
    created = client.post("/api/v1/invoices", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["amount_due"] == "40.00" and created.json()["status"] == "open"
    again = assert_problem(client.post("/api/v1/invoices", json=body, headers=admin), 409)
    assert again["detail"] == "invoice 'I9' exists already; change it instead of creating it"

    unknown = client.post(
        "/api/v1/invoices", json={**body, "id": "I10", "customer_id": "C404"}, headers=admin
    )
    assert assert_problem(unknown, 422)["errors"][0]["field"] == "customer_id"
    early = client.post(
        "/api/v1/invoices", json={**body, "id": "I10", "due_date": "2026-01-01"}, headers=admin
    )
    assert assert_problem(early, 422)["errors"][0]["field"] == "due_date"
    assert client.get("/api/v1/invoices/I10", headers=admin).status_code == 404

    # the billing system marks I1 paid: its plan closes recovered, as an import would
    paid = client.patch("/api/v1/invoices/I1", json={"status": "paid"}, headers=admin)
    assert paid.status_code == 200, paid.text
    assert paid.json()["amount_due"] == "0.00" and paid.json()["status"] == "paid"
    assert client.get(f"/api/v1/plans/{plan_id}", headers=admin).json()["status"] == "recovered"
    assert_problem(
        client.patch("/api/v1/invoices/I404", json={"status": "paid"}, headers=admin), 404
    )


def test_a_payment_answers_the_plans_it_closed_and_closes_them_like_the_import(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    day = (DUE + timedelta(days=6)).isoformat()
    partial = {
        "id": "P1",
        "customer_id": "C1",
        "invoice_id": "I1",
        "amount": "30",
        "currency": "EUR",
        "date": day,
    }
    first = client.post("/api/v1/payments", json=partial, headers=collector)
    assert first.status_code == 201, first.text
    assert first.json()["allocations"] == [{"invoice_id": "I1", "amount": "30.00"}]
    assert first.json()["plans_closed"] == []
    plan = client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()
    assert plan["status"] == "active" and plan["balance"] == "70.00"

    # no invoice named: the oldest due first; 80 pays the 70 left and 10 is beyond it
    rest = {"id": "P2", "customer_id": "C1", "amount": "80.00", "currency": "EUR", "date": day}
    second = client.post("/api/v1/payments", json=rest, headers=collector)
    assert second.status_code == 201, second.text
    answer = second.json()
    assert answer["amount"] == "80.00" and answer["unallocated"] == "10.00"
    assert answer["plans_closed"] == [{"id": plan_id, "status": "recovered", "closed_on": day}]
    plan = client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()
    assert plan["status"] == "recovered"
    assert all(a["status"] in ("done", "cancelled", "skipped") for a in plan["actions"])
    log = _log(client, collector, plan=str(plan_id))
    assert any(e["event"] == "plan_recovered" and e["actor"] == "collector" for e in log)

    # the same payment again changes nothing (200); the same id with other values is refused
    same = client.post("/api/v1/payments", json=rest, headers=collector)
    assert same.status_code == 200 and same.json()["plans_closed"] == []
    other = client.post("/api/v1/payments", json={**rest, "amount": "81.00"}, headers=collector)
    assert assert_problem(other, 422)["errors"][0]["field"] == "id"
    bad = client.post(
        "/api/v1/payments", json={**rest, "id": "P3", "amount": "1.001"}, headers=collector
    )
    assert assert_problem(bad, 422)["errors"][0]["field"] == "amount"
    recorded = [
        e for e in _log(client, collector, customer="C1") if e["event"] == "payment_recorded"
    ]
    assert {e["details"]["payment_id"] for e in recorded} == {"P1", "P2"}
    assert {e["actor"] for e in recorded} == {"collector"}


def test_a_dispute_pauses_the_plan_and_clearing_it_resumes_it(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    opened = client.post(
        "/api/v1/invoices/I1/dispute", json={"reason": "wrong amount"}, headers=collector
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["disputed"] is True and opened.json()["plans_paused"] == [plan_id]
    plan = client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()
    assert plan["status"] == "paused" and plan["pause_reason"] == "dispute"
    assert client.get("/api/v1/invoices/I1", headers=collector).json()["disputed"] is True
    assert_problem(client.post("/api/v1/invoices/I1/dispute", headers=collector), 409)

    closed = client.post(
        "/api/v1/invoices/I1/undispute", headers={**collector, "Recoup-Reason": "credit note sent"}
    )
    assert closed.status_code == 200 and closed.json()["plans_resumed"] == [plan_id]
    assert client.get(f"/api/v1/plans/{plan_id}", headers=collector).json()["status"] == "active"
    assert_problem(client.post("/api/v1/invoices/I1/undispute", headers=collector), 409)
    assert_problem(client.post("/api/v1/invoices/I404/dispute", headers=collector), 404)

    log = {e["event"]: e for e in _log(client, collector, invoice="I1")}
    assert log["invoice_disputed"]["actor"] == "collector"
    assert log["invoice_disputed"]["details"]["reason"] == "wrong amount"
    assert log["invoice_undisputed"]["details"]["reason"] == "credit note sent"


def test_an_invoice_pdf_is_stored_where_emails_attach_it_from(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    url = "/api/v1/invoices/I1/pdf"
    assert_problem(client.get(url, headers=collector), 404)  # none yet

    put = client.put(url, content=PDF, headers={**collector, "Content-Type": "application/pdf"})
    assert put.status_code == 200, put.text
    stored = put.json()
    assert stored["size"] == len(PDF) and not stored["pdf_path"].startswith("/")
    got = client.get(url, headers=auth(keys["viewer"]))
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    # the email executor reads it from the invoice folder by its pdf_path
    folder = load_env().invoices_dir
    assert read_inside(folder, stored["pdf_path"], max_bytes=1 << 20)[1] == PDF

    second = PDF.replace(b"1.4", b"1.7")
    multipart = client.put(
        url, files={"file": ("i1.pdf", second, "application/pdf")}, headers=collector
    )
    assert multipart.status_code == 200, multipart.text
    assert client.get(url, headers=collector).content == second

    not_pdf = client.put(
        url, content=b"GIF89a...", headers={**collector, "Content-Type": "application/pdf"}
    )
    assert assert_problem(not_pdf, 422)["errors"][0]["field"] == "file"
    no_part = client.put(url, files={"other": ("x.pdf", PDF, "application/pdf")}, headers=collector)
    assert_problem(no_part, 422)
    as_json = client.put(url, json={"pdf": "x"}, headers=collector)
    assert_problem(as_json, 422)
    assert client.get(url, headers=collector).content == second  # the refused ones changed nothing

    unknown = client.put(
        "/api/v1/invoices/I404/pdf",
        content=PDF,
        headers={**collector, "Content-Type": "application/pdf"},
    )
    assert_problem(unknown, 404)
    viewer = client.put(
        url, content=PDF, headers={**auth(keys["viewer"]), "Content-Type": "application/pdf"}
    )
    assert_problem(viewer, 403)


def test_each_write_is_logged_with_the_keys_name_and_the_reason(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    why = {**collector, "Recoup-Reason": "billing sync"}
    body = {"id": "C9", "name": "Zeta GmbH", "email": "ap@zeta.test"}
    assert client.post("/api/v1/customers", json=body, headers=why).status_code == 201
    assert client.patch(
        "/api/v1/customers/C9", json={"name": "Zeta AG"}, headers=collector
    ).is_success
    invoice = {
        "id": "I9",
        "customer_id": "C9",
        "number": "F-9",
        "issue_date": "2026-01-01",
        "due_date": "2026-01-31",
        "currency": "EUR",
        "amount": "10.00",
    }
    assert client.post("/api/v1/invoices", json=invoice, headers=why).status_code == 201
    batch = {"data": [{**invoice, "id": "I10", "number": "F-10"}]}
    assert client.post("/api/v1/invoices/batch", json=batch, headers=why).is_success

    entries = {e["event"]: e for e in _log(client, collector)}
    created = entries["customer_created"]
    assert created["actor"] == "collector" and created["customer_id"] == "C9"
    assert created["details"]["reason"] == "billing sync"
    assert "name" in created["details"]["fields"]
    changed = entries["customer_changed"]
    assert changed["details"]["fields"] == ["name"] and "reason" not in changed["details"]
    assert entries["invoice_created"]["invoice_id"] == "I9"
    imported = entries["book_imported"]["details"]
    assert (imported["kind"], imported["rows"], imported["created"]) == ("invoices", 1, 1)

    # a refused write logs nothing
    before = len(_log(client, collector))
    bad = client.post(
        "/api/v1/customers", json={"id": "C10", "name": "X", "email": "no"}, headers=why
    )
    assert bad.status_code == 422
    assert len(_log(client, collector)) == before
