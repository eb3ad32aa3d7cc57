"""Batches of customers, invoices and payments (POST /{kind}/batch): the imports' bulk path, all
or nothing; a bad batch names every bad row by its index and field and changes nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import DUE, Cli


@pytest.fixture
def plan_id(env: dict[str, str], tmp_path: Path) -> int:
    cli = Cli(tmp_path)
    cli.setup()
    cli.run(5)
    (plan,) = cli.plans()
    return int(plan["id"])


def _invoice(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"B{i}",
        "customer_id": "C1",
        "number": f"N-B{i}",
        "issue_date": "2026-02-01",
        "due_date": "2026-03-01",
        "currency": "EUR",
        "amount": "10.00",
        **extra,
    }


def test_customers_batch_creates_and_updates_by_id(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    rows = [{"id": f"K{i}", "name": f"Kunde {i}", "country": "DE"} for i in range(3)]
    first = client.post("/api/v1/customers/batch", json={"data": rows}, headers=admin)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 3 and first.json()["kind"] == "customers"
    rows[1]["name"] = "Kunde eins"
    again = client.post("/api/v1/customers/batch", json={"data": rows}, headers=admin)
    assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (
        0,
        1,
        2,
    )
    assert client.get("/api/v1/customers/K1", headers=admin).json()["name"] == "Kunde eins"


def test_a_bad_batch_names_every_bad_row_and_changes_nothing(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    day = (DUE + DUE.resolution * 6).isoformat()
    good = {"customer_id": "C1", "invoice_id": "I1", "currency": "EUR", "date": day}
    rows = [
        {"id": "P0", "amount": "100.00", **good},  # would close the plan
        {"id": "P1", "amount": "ten", **good},  # not a decimal
        {"id": "P2", "amount": "5.00", **good, "customer_id": "C404"},  # no such customer
        {"id": "P3", "amount": "5.00", **good, "colour": "red"},  # unknown field
        {"id": "P0", "amount": "1.00", **good},  # twice in the batch
        "not an object",
    ]
    response = client.post("/api/v1/payments/batch", json={"data": rows}, headers=admin)
    body = assert_problem(response, 422)
    found = {(e["index"], e["field"]) for e in body["errors"]}
    assert found >= {
        (1, "data[1].amount"),
        (2, "data[2].customer_id"),
        (3, "data[3].colour"),
        (4, "data[4].id"),
        (5, "data[5]"),
    }, body["errors"]
    assert 0 not in {e["index"] for e in body["errors"]}
    assert body["detail"].startswith("payments not imported: 5 bad rows (nothing was changed)")

    # nothing was written: no payment, the invoice and its plan as they were
    plan = client.get(f"/api/v1/plans/{plan_id}", headers=admin).json()
    assert plan["status"] == "active" and plan["balance"] == "100.00"
    assert client.get("/api/v1/invoices/I1", headers=admin).json()["amount_due"] == "100.00"
    log = client.get("/api/v1/log", params={"event": "payment_recorded"}, headers=admin).json()
    assert log["data"] == []

    # the good row alone is recorded, and closes the plan
    ok = client.post("/api/v1/payments/batch", json={"data": rows[:1]}, headers=admin)
    assert ok.status_code == 200, ok.text
    assert ok.json()["created"] == 1 and ok.json()["plans_recovered"] == [plan_id]
    assert client.get(f"/api/v1/plans/{plan_id}", headers=admin).json()["status"] == "recovered"


def test_a_bad_invoice_batch_changes_no_invoice(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    rows = [
        _invoice(1),
        _invoice(2, due_date="2026-01-01"),
        {**_invoice(3), "id": "I1", "status": "paid"},
        _invoice(4, customer_id="C2", currency="usd", amount="1.5"),
    ]
    rows.append(_invoice(5, customer_id="nobody"))
    body = assert_problem(
        client.post("/api/v1/invoices/batch", json={"data": rows}, headers=admin), 422
    )
    assert {(e["index"], e["field"]) for e in body["errors"]} == {
        (1, "data[1].due_date"),
        (4, "data[4].customer_id"),
    }
    assert client.get("/api/v1/invoices/B1", headers=admin).status_code == 404
    assert client.get("/api/v1/invoices/I1", headers=admin).json()["status"] == "open"
    assert client.get(f"/api/v1/plans/{plan_id}", headers=admin).json()["status"] == "active"


def test_batch_size_is_bounded(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    empty = assert_problem(
        client.post("/api/v1/customers/batch", json={"data": []}, headers=admin), 422
    )
    assert empty["errors"][0]["field"] == "data"
    rows = [{"id": f"K{i}", "name": "k"} for i in range(10_001)]
    many = assert_problem(
        client.post("/api/v1/customers/batch", json={"data": rows}, headers=admin), 422
    )
    assert many["errors"][0]["field"] == "data"
    assert client.get("/api/v1/customers", headers=admin).json()["data"] == []
    viewer = client.post(
        "/api/v1/customers/batch", json={"data": rows[:1]}, headers=auth(keys["viewer"])
    )
    assert_problem(viewer, 403)


def test_ten_thousand_rows_go_through_the_bulk_path(
    env: dict[str, str], client: TestClient, keys: dict[str, str], tmp_path: Path
) -> None:
    cli = Cli(tmp_path)
    cli.setup()
    admin = auth(keys["admin"])
    invoices = [_invoice(i) for i in range(10_000)]
    started = time.monotonic()
    response = client.post("/api/v1/invoices/batch", json={"data": invoices}, headers=admin)
    assert response.status_code == 200, response.text[:2000]
    assert response.json()["created"] == 10_000
    payments = [
        {
            "id": f"PB{i}",
            "customer_id": "C1",
            "invoice_id": f"B{i}",
            "amount": "10.00",
            "currency": "EUR",
            "date": "2026-03-03",
        }
        for i in range(10_000)
    ]
    response = client.post("/api/v1/payments/batch", json={"data": payments}, headers=admin)
    assert response.status_code == 200, response.text[:2000]
    assert response.json()["created"] == 10_000 and response.json()["allocations"] == 10_000
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"20,000 rows took {elapsed:.1f} s"
    paid = client.get("/api/v1/invoices", params={"status": "paid", "limit": 100}, headers=admin)
    assert len(paid.json()["data"]) == 100


def test_a_batch_keeps_what_its_rows_leave_out(
    plan_id: int, client: TestClient, keys: dict[str, str]
) -> None:
    """An invoice sent again without `disputed` or `pdf_path` keeps its dispute and its PDF,
    as a file without those columns would."""
    admin = auth(keys["admin"])
    assert client.post("/api/v1/invoices/I1/dispute", headers=admin).status_code == 200
    pdf = b"%PDF-1.4\n%%EOF\n"
    put = client.put(
        "/api/v1/invoices/I1/pdf", content=pdf, headers={**admin, "Content-Type": "application/pdf"}
    )
    assert put.status_code == 200, put.text
    row = {
        **_invoice(1),
        "id": "I1",
        "number": "N-I1-bis",
        "due_date": DUE.isoformat(),
        "amount": "100.00",
    }
    response = client.post("/api/v1/invoices/batch", json={"data": [row]}, headers=admin)
    assert response.status_code == 200 and response.json()["updated"] == 1, response.text
    invoice = client.get("/api/v1/invoices/I1", headers=admin).json()
    assert invoice["number"] == "N-I1-bis" and invoice["disputed"] is True
    assert client.get("/api/v1/invoices/I1/pdf", headers=admin).content == pdf
    assert client.get(f"/api/v1/plans/{plan_id}", headers=admin).json()["status"] == "paused"
