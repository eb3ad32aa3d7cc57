"""`recoup customers` and `recoup customer show ID`: an account's status (and which plan set it,
from what), what it owes, its plans, open invoices, charges and recent log — without sqlite3."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from recoup.cli.common import console as cli_console
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def words(table: str) -> str:
    """The text of a table or panel, wrapped lines joined again."""
    return " ".join(table.replace("│", " ").split())


def suspended_book(cli: Cli) -> None:
    """C1 owes 100 + 200 EUR, its plans reach the end level: the account is suspended and
    the plans close unrecovered. C2 owes 80 USD, not yet due."""
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE, "200.00", "EUR"),
            ("I3", "C2", DUE + timedelta(days=60), "80.00", "USD"),
        )
    )
    cli.run(5)
    cli.run(15)
    for task in cli.json("tasks"):
        cli("task", "complete", str(task["id"]), "--user", "alice")
    cli.run(20)


def test_the_list_gives_status_balance_and_open_plans_with_filters(cli: Cli) -> None:
    cli.setup(
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE, "200.00", "EUR", "150.00"),
            ("I3", "C2", DUE + timedelta(days=60), "80.00", "USD"),
        )
    )
    cli.run(5)
    rows = cli.json("customers")
    assert [list(r)[:6] for r in rows][0] == [
        "id", "name", "status", "currency", "balance", "open_plans",
    ]  # fmt: skip
    by_id = {r["id"]: r for r in rows}
    assert by_id["C1"]["balance"] == "250.00" and by_id["C1"]["currency"] == "EUR"
    assert by_id["C1"]["open_plans"] == 2 and by_id["C1"]["status"] == "active"
    assert by_id["C2"]["balance"] == "80.00" and by_id["C2"]["open_plans"] == 0
    assert by_id["C2"]["balances"] == {"USD": "80.00"}
    assert [r["id"] for r in cli.json("customers", "--search", "ACME")] == ["C1"]
    assert [r["id"] for r in cli.json("customers", "--search", "bolt.test")] == ["C2"]
    assert cli.json("customers", "--search", "%") == []  # a value, not a pattern
    assert cli.json("customers", "--search", "_") == []
    assert cli.json("customers", "--status", "suspended") == []
    assert len(cli.json("customers", "--status", "active")) == 2
    table = cli("customers")
    assert "250.00 EUR" in table and "80.00 USD" in table and "Acme SARL" in table


def test_customer_show_says_which_plan_suspended_the_account_and_what_it_was(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    suspended_book(cli)
    [c1] = cli.json("customer", "show", "C1")
    assert c1["status"] == "suspended" and c1["email"] == "billing@acme.test"
    held = [c for c in c1["status_changes"] if c["restored_at"] is None]
    assert held and all(c["new_status"] == "suspended" for c in held)
    assert held[-1]["previous_status"] == "active"
    assert {p["status"] for p in c1["plans"]} == {"unrecovered"}
    assert [i["id"] for i in c1["invoices"]] == ["I1", "I2"]
    assert [i["amount_due"] for i in c1["invoices"]] == ["100.00", "200.00"]
    assert {(c["amount"], c["currency"]) for c in c1["charges"]} == {("15.00", "EUR")}
    assert len(c1["charges"]) == 2  # a fee on each invoice's plan
    events = [e["event"] for e in c1["log"]]
    assert len(events) <= 20 and "status_changed" in events
    assert c1["log"] == sorted(c1["log"], key=lambda e: e["at"])  # oldest first
    monkeypatch.setattr(cli_console, "_width", 80)
    text = words(cli("customer", "show", "C1"))
    plan_ids = sorted(str(c["plan_id"]) for c in held)
    assert f"status: suspended (set by plan {', '.join(plan_ids)} on {DUE + timedelta(20)}" in text
    assert "was active, restored when paid)" in text
    assert "owed on open invoices: 300.00 EUR" in text and "unrecovered" in text


def test_an_unknown_customer_is_a_clear_error(cli: Cli) -> None:
    cli.setup()
    out = cli("customer", "show", "NOPE", code=1)
    assert "customer 'NOPE' not found" in out
    [c2] = cli.json("customer", "show", "C2")
    assert c2["plans"] == [] and c2["invoices"] == [] and c2["balance"] == "0.00"
    assert c2["status_changes"] == []
    text = words(cli("customer", "show", "C2"))
    assert "status: active " in text and "set by plan" not in text
