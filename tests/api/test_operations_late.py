"""The late-invoice list over HTTP: every open invoice past its due date, oldest due first,
with its dunning status ("payment in plan"), its filters and its cursor pages."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from recoup.plans import repository
from recoup.plans.repository import LateFilter
from recoup.core.sessions import transaction
from tests.api.conftest import assert_problem
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

URL = "/api/v1/late-invoices"
LATER = date.today() + timedelta(days=30)


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Cli:
    """Late: I2 (ten days before DUE), I1, I3 (C2, USD) and I6 (20 EUR: below the policy's 50
    EUR minimum, never in a plan). Not late: I4 (due in a month), I5 (nothing left due). A
    run 5 days after DUE opens plans on I1 and I3 at first_notice, I2 at call."""
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE - timedelta(days=10), "200.00", "EUR"),
            ("I3", "C2", DUE, "80.00", "USD"),
            ("I4", "C1", LATER, "300.00", "EUR"),
            ("I5", "C1", DUE, "400.00", "EUR", "0.00"),
            ("I6", "C1", DUE, "20.00", "EUR"),
        )
    )
    cli.run(5)
    return cli


def _ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get(URL, params=params)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


def test_late_invoices_oldest_due_first_with_their_dunning_status(
    book: Cli, admin: TestClient
) -> None:
    page = admin.get(URL).json()
    assert page["object"] == "list" and page["has_more"] is False
    rows = {row["id"]: row for row in page["data"]}
    assert list(rows) == ["I2", "I1", "I3", "I6"]
    plans = {plan["invoice_id"]: plan for plan in book.plans()}
    assert rows["I1"] == {
        "id": "I1",
        "customer_id": "C1",
        "customer_name": "Acme SARL",
        "number": "N-I1",
        "type": "commercial",
        "due_date": DUE.isoformat(),
        "days_overdue": (date.today() - DUE).days,
        "amount": "100.00",
        "amount_due": "100.00",
        "currency": "EUR",
        "status": "open",
        "disputed": False,
        "plan_id": plans["I1"]["id"],
        "plan_status": "active",
        "level": "first_notice",
        "policy": "Standard",
        "next_step_on": rows["I1"]["next_step_on"],
    }
    assert rows["I1"]["next_step_on"] is not None
    assert rows["I6"]["plan_status"] == "none" and rows["I6"]["plan_id"] is None
    assert rows["I6"]["level"] is None and rows["I6"]["policy"] is None

    # a stopped plan stays the invoice's dunning status while the invoice is still owed
    stopped = admin.post(f"/api/v1/plans/{plans['I3']['id']}/stop", json={"reason": "called"})
    assert stopped.status_code == 200
    (i3,) = [row for row in admin.get(URL).json()["data"] if row["id"] == "I3"]
    assert i3["plan_status"] == "stopped" and i3["next_step_on"] is None


def test_late_invoice_filters(book: Cli, admin: TestClient) -> None:
    overdue = (date.today() - DUE).days
    assert _ids(admin, status="none") == ["I6"]
    assert _ids(admin, status="active") == ["I2", "I1", "I3"]
    assert _ids(admin, status="stopped") == []
    assert _ids(admin, level="first_notice", policy="Standard") == ["I1", "I3"]
    assert _ids(admin, level="call") == ["I2"]  # 15 days overdue at the run
    assert _ids(admin, policy="Standard") == ["I2", "I1", "I3"]
    assert _ids(admin, policy="Other") == []
    assert _ids(admin, currency="usd") == ["I3"]
    assert _ids(admin, customer="C2") == ["I3"]
    assert _ids(admin, search="BOLT") == ["I3"]
    assert _ids(admin, search="n-i2") == ["I2"]
    assert _ids(admin, search="%") == []  # a LIKE wildcard is text here
    assert _ids(admin, min_days_overdue=overdue + 1) == ["I2"]
    assert _ids(admin, max_days_overdue=overdue) == ["I1", "I3", "I6"]
    assert _ids(admin, on=(DUE + timedelta(days=1)).isoformat()) == ["I2", "I1", "I3", "I6"]
    assert _ids(admin, on=DUE.isoformat()) == ["I2"]  # I1 falls due that day: not late yet

    body = assert_problem(
        admin.get(URL, params={"status": "asleep", "min_days_overdue": 0, "on": "x"}), 422
    )
    assert sorted(e["field"] for e in body["errors"]) == ["min_days_overdue", "on", "status"]


def test_late_invoice_pages(book: Cli, admin: TestClient) -> None:
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 1, **({"starting_after": after} if after else {})}
        page = admin.get(URL, params=params).json()
        seen += [row["id"] for row in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == ["I2", "I1", "I3", "I6"]
    assert _ids(admin, starting_after="I1", limit=1) == ["I3"]
    body = assert_problem(admin.get(URL, params={"starting_after": "NOPE"}), 422)
    assert [e["field"] for e in body["errors"]] == ["starting_after"]
    assert [e["field"] for e in assert_problem(admin.get(URL, params={"limit": 0}), 422)["errors"]] == [
        "limit"
    ]


def test_the_late_list_reads_the_partial_index(db_url: str, book: Cli) -> None:
    """The query PostgreSQL runs walks ix_invoices_late in due-date order (no sort of the
    whole book): seq scans off, as a large table would make them unattractive."""
    if not db_url.startswith("postgresql"):
        pytest.skip("EXPLAIN of PostgreSQL's plan")
    with transaction(db_url) as session:
        query = repository.late_query(LateFilter(today=date.today()), limit=20)
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(session.execute(text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_invoices_late" in plan, plan
