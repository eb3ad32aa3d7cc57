"""The read endpoints over a real book (imported and run through the CLI): the same fields as
the CLI's --json (SPEC §5 names), filters, SPEC §6 lists (`{object, data, has_more}`, limit
1–100, `starting_after`) that give every row once, 404 and 422 as problem+json."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

PLAN_FIELDS = [
    "id", "customer_id", "invoice_id", "currency", "status", "level", "balance", "opened_on",
    "closed_on",
]  # fmt: skip


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Cli:
    """C1 owes I1..I4 (EUR), C2 owes I5 (USD); a run on day 5 opens a plan on each invoice
    over the policy's 50 EUR minimum."""
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE, "200.00", "EUR"),
            ("I3", "C1", DUE, "300.00", "EUR"),
            ("I4", "C1", DUE, "400.00", "EUR"),
            ("I5", "C2", DUE, "80.00", "USD"),
        )
    )
    cli.run(5)
    return cli


def _all(client: TestClient, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page (`starting_after` the last object's id; the log,
    whose entries have no id, the page's Recoup-Next-Cursor); each page at most `limit` long,
    full while `has_more`."""
    items: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, "limit": limit, **({"starting_after": after} if after else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert list(page) == ["object", "data", "has_more"] and page["object"] == "list"
        items += page["data"]
        if not page["has_more"]:
            assert len(page["data"]) <= limit and "Recoup-Next-Cursor" not in response.headers
            return items
        assert len(page["data"]) == limit
        last = page["data"][-1]
        after = response.headers["Recoup-Next-Cursor"] if path.endswith("/log") else last["id"]


def test_plans_are_the_clis_plans_with_the_specs_fields(book: Cli, admin: TestClient) -> None:
    response = admin.get("/api/v1/plans")
    assert response.status_code == 200
    page = response.json()
    assert page["has_more"] is False
    assert all(list(plan) == PLAN_FIELDS for plan in page["data"])
    by_invoice = {plan["invoice_id"]: plan for plan in page["data"]}
    assert by_invoice["I2"]["balance"] == "200.00" and by_invoice["I2"]["status"] == "active"
    assert by_invoice["I2"]["level"] == "first_notice"
    assert by_invoice["I2"]["opened_on"] == (DUE + timedelta(days=5)).isoformat()
    assert sorted(page["data"], key=lambda p: p["id"]) == book.plans()


def test_plan_filters(book: Cli, admin: TestClient) -> None:
    def invoices(**params: str) -> list[str]:
        response = admin.get("/api/v1/plans", params=params)
        assert response.status_code == 200, response.text
        return sorted(plan["invoice_id"] for plan in response.json()["data"])

    assert invoices(customer="C1") == ["I1", "I2", "I3", "I4"]
    assert invoices(currency="usd") == ["I5"]
    assert invoices(status="active", level="first_notice", policy="Standard") == [
        "I1", "I2", "I3", "I4", "I5",
    ]  # fmt: skip
    assert invoices(status="stopped") == [] and invoices(policy="Other") == []
    body = assert_problem(admin.get("/api/v1/plans", params={"status": "sleeping"}), 422)
    assert [e["field"] for e in body["errors"]] == ["status"]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/v1/plans", "id"),
        ("/api/v1/customers", "id"),
        ("/api/v1/invoices", "id"),
        ("/api/v1/log", None),
        ("/api/v1/tasks", "id"),
        ("/api/v1/charges", "id"),
        ("/api/v1/runs", "id"),
        ("/api/v1/documents", "id"),
    ],
)
def test_cursor_pages_give_every_row_once(
    book: Cli, admin: TestClient, path: str, key: str | None
) -> None:
    whole = admin.get(path, params={"limit": 100}).json()
    assert whole["has_more"] is False
    whole = whole["data"]
    assert _all(admin, path, limit=2) == whole
    assert _all(admin, path, limit=1) == whole
    if key is not None:
        ids = [row[key] for row in whole]
        assert len(ids) == len(set(ids))


def test_the_lists_hold_the_book(book: Cli, admin: TestClient) -> None:
    customers = {c["id"]: c for c in admin.get("/api/v1/customers").json()["data"]}
    assert customers["C1"]["balance"] == "1000.00" and customers["C1"]["open_plans"] == 4
    assert customers["C2"]["balances"] == {"USD": "80.00"}
    assert [i["id"] for i in _all(admin, "/api/v1/invoices", 2, customer="C1")] == [
        "I1", "I2", "I3", "I4",
    ]  # fmt: skip
    assert admin.get("/api/v1/invoices/I5").json()["amount_due"] == "80.00"
    log = _all(admin, "/api/v1/log", 3, customer="C1", event="plan_opened")
    assert [e["invoice_id"] for e in log] == ["I1", "I2", "I3", "I4"]
    assert list(log[0])[:3] == ["at", "on", "event"]
    assert log == [e for e in book.log("--customer", "C1") if e["event"] == "plan_opened"]
    fees = admin.get("/api/v1/charges", params={"customer": "C2"}).json()["data"]
    assert [(c["amount"], c["currency"], c["service"]) for c in fees] == [
        ("15.00", "USD", "LATE_FEE")
    ]
    (run,) = admin.get("/api/v1/runs").json()["data"]
    assert run["as_of"] == (DUE + timedelta(days=5)).isoformat()
    assert admin.get("/api/v1/settings").json()["timezone"] == "UTC"


def test_one_plan_and_one_customer(book: Cli, admin: TestClient) -> None:
    plans = book.plans()
    detail = admin.get(f"/api/v1/plans/{plans[0]['id']}").json()
    assert detail["invoices"] == [plans[0]["invoice_id"]] and detail["policy"] == "Standard"
    assert [e["event"] for e in detail["log"]][:1] == ["plan_opened"]
    assert {k: detail[k] for k in PLAN_FIELDS} == plans[0]
    account = admin.get("/api/v1/customers/C2").json()
    assert [i["id"] for i in account["invoices"]] == ["I5"]
    assert [p["invoice_id"] for p in account["plans"]] == ["I5"]
    assert [c["service"] for c in account["charges"]] == ["LATE_FEE"]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/v1/plans/999", "plan 999 not found"),
        ("/api/v1/customers/NOPE", "customer 'NOPE' not found"),
        ("/api/v1/invoices/NOPE", "invoice 'NOPE' not found"),
        ("/api/v1/nowhere", "Not Found"),
    ],
)
def test_unknown_ids_are_404_problems(admin: TestClient, path: str, detail: str) -> None:
    body = assert_problem(admin.get(path), 404)
    assert body["detail"] == detail and body["title"] == "Not found"


def test_malformed_parameters_are_422_listing_every_field(admin: TestClient) -> None:
    body = assert_problem(admin.get("/api/v1/log", params={"plan": "x", "since": "yesterday"}), 422)
    assert sorted(e["field"] for e in body["errors"]) == ["plan", "since"]
    assert all(e["message"] for e in body["errors"])
    body = assert_problem(admin.get("/api/v1/log", params={"starting_after": "%%%"}), 422)
    assert body["errors"][0]["field"] == "starting_after"
    assert body["detail"] == "starting_after: not a cursor this list gave out"


@pytest.mark.parametrize("path", ["/api/v1/plans", "/api/v1/log", "/api/v1/runs"])
@pytest.mark.parametrize("limit", [0, 101])
def test_limit_is_1_to_100(admin: TestClient, path: str, limit: int) -> None:
    body = assert_problem(admin.get(path, params={"limit": limit}), 422)
    assert body["errors"] == [
        {"field": "limit", "message": "limit must be between 1 and 100", "index": None}
    ]


def test_the_default_page_is_20(admin: TestClient, env: dict[str, str], tmp_path: Path) -> None:
    ids = [f"I{n:02}" for n in range(21)]
    Cli(tmp_path).setup(invoices=invoice_csv(*((i, "C1", DUE, "10.00", "EUR") for i in ids)))
    page = admin.get("/api/v1/invoices").json()
    assert [i["id"] for i in page["data"]] == ids[:20] and page["has_more"] is True
    rest = admin.get("/api/v1/invoices", params={"starting_after": ids[19]}).json()
    assert [i["id"] for i in rest["data"]] == ids[20:] and rest["has_more"] is False


@pytest.mark.parametrize(
    ("path", "after"),
    [
        ("/api/v1/plans", "999"),
        ("/api/v1/plans", "x"),
        ("/api/v1/customers", "NOPE"),
        ("/api/v1/invoices", "NOPE"),
        ("/api/v1/tasks", "999"),
        ("/api/v1/charges", "999"),
        ("/api/v1/runs", "999"),
        ("/api/v1/documents", "999"),
    ],
)
def test_an_unknown_starting_after_is_422(admin: TestClient, path: str, after: str) -> None:
    body = assert_problem(admin.get(path, params={"starting_after": after}), 422)
    assert [e["field"] for e in body["errors"]] == ["starting_after"]
    assert body["detail"] == f"starting_after: no object {after!r} in this list"
