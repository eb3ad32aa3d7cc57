"""The collector's work list: `recoup tasks` shows what waits (open and claimed, oldest first)
with what a person needs to act — the customer and phone, the invoices, the balance, days
overdue, the instructions, how long it has waited — in 80 columns without cutting a value;
`task show` gives everything about one task, `task release` gives a claimed task back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from recoup.cli.common import console as cli_console
from recoup.cli.ops_cmds import TASK_FIELDS
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

CUSTOMERS = """id,name,email,phone,language,country,currency,category,is_company,payment_method,policy,status,excluded
C1,Acme SARL,billing@acme.test,+33 1 23 45 67 89,en,FR,EUR,smb,true,transfer,,active,false
C2,Bolt Incorporated International Holdings,ap@bolt.test,+1 415 555 0100,en,US,USD,smb,true,card,,active,false
"""


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def day(n: int) -> str:
    return str(DUE + timedelta(days=n))


def two_calls(cli: Cli) -> dict[str, dict[str, Any]]:
    """Two plans at the `call` level: C1's since day 15, C2's (a later invoice) since day 18."""
    cli.setup(
        invoices=invoice_csv(
            ("INV-2026-000123", "C1", DUE, "1234567.89", "EUR"),
            ("I2", "C2", DUE + timedelta(days=3), "200.00", "USD"),
        )
    )
    cli("import", "customers", cli.file("customers2.csv", CUSTOMERS))
    cli.run(15)
    cli.run(18)
    return {t["customer_id"]: t for t in cli.json("tasks", "--on", day(18))}


def test_the_list_shows_what_waits_oldest_first_with_what_a_collector_needs(cli: Cli) -> None:
    tasks = two_calls(cli)
    rows = cli.json("tasks", "--on", day(20))
    assert [r["customer_id"] for r in rows] == ["C1", "C2"]  # oldest first
    first = rows[0]
    assert list(first)[: len(TASK_FIELDS)] == TASK_FIELDS  # the SPEC's fields, in order
    assert first["status"] == "open" and first["role"] == "collector"
    assert first["customer_name"] == "Acme SARL" and first["phone"] == "+33 1 23 45 67 89"
    assert first["invoice_ids"] == ["INV-2026-000123"]
    assert first["balance"] == "1234567.89" and first["currency"] == "EUR"
    assert first["days_overdue"] == 20 and rows[1]["days_overdue"] == 17
    assert first["instructions"] == "Call the customer"
    assert first["created_on"] == day(15) and first["created_at"]

    cli("task", "claim", str(tasks["C2"]["id"]), "--user", "alice")
    cli("task", "complete", str(tasks["C1"]["id"]), "--user", "bob")
    [waiting] = cli.json("tasks")
    assert waiting["customer_id"] == "C2" and waiting["status"] == "claimed"
    assert waiting["claimed_by"] == "alice" and waiting["claimed_at"]
    assert {r["status"] for r in cli.json("tasks", "--all")} == {"claimed", "completed"}
    assert [r["status"] for r in cli.json("tasks", "--status", "completed")] == ["completed"]
    assert cli.json("tasks", "--role", "manager") == []
    assert len(cli.json("tasks", "--role", "collector")) == 1
    assert [r["id"] for r in cli.json("tasks", "--mine", "--user", "alice")] == [waiting["id"]]
    assert cli.json("tasks", "--mine", "--user", "bob") == []  # bob's is done
    out = cli("tasks", "--mine", code=1)
    assert "--mine needs to know who you are" in " ".join(out.split())
    out = cli("tasks", "--status", "done", code=1)
    assert "--status 'done'" in out


def test_the_table_fits_80_columns_without_cutting_a_value(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = two_calls(cli)
    cli("task", "claim", str(tasks["C1"]["id"]), "--user", "alice")
    monkeypatch.setattr(cli_console, "_width", 80)
    table = cli("tasks", "--on", day(21))
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in table
    text = " ".join(table.split())
    for whole in ("INV-2026-000123", "1234567.89 EUR", "200.00 USD", "21 d", "18 d", "6 d"):
        assert whole in text  # ids, amounts with their currency, days: each on one line
    [c1] = [line for line in lines if "INV-2026-000123" in line]
    assert c1.split()[:3] == [str(tasks["C1"]["id"]), "claimed", "Acme"]
    assert "1234567.89 EUR" in c1 and "6 d" in c1  # the balance, how long it waited
    assert "21 d" in lines[lines.index(c1) + 1]  # under it, the days overdue
    # the wrapped cells, read again: who to call, their phone, what to do
    assert "alice" in text and "+33 1 23 45" in text and "67 89" in text
    assert "collector:" in text and "Call the" in text
    monkeypatch.setattr(cli_console, "_width", 50)  # narrower than the values: longer lines
    narrow = cli("tasks", "--on", day(21))
    assert "…" not in narrow and "1234567.89 EUR" in narrow and "INV-2026-000123" in narrow
    assert cli("tasks", "--status", "cancelled").strip() == "no tasks waiting"


def test_task_show_gives_the_plan_customer_invoices_and_history(cli: Cli) -> None:
    tasks = two_calls(cli)
    task_id = str(tasks["C1"]["id"])
    cli("task", "claim", task_id, "--user", "alice")
    [shown] = cli.json("task", "show", task_id, "--on", day(20))
    assert shown["customer_name"] == "Acme SARL" and shown["email"] == "billing@acme.test"
    assert shown["phone"] == "+33 1 23 45 67 89" and shown["customer_status"] == "active"
    assert shown["plan_status"] == "active" and shown["plan_level"] == "call"
    assert shown["policy"] == "Standard" and shown["days_overdue"] == 20
    assert shown["waited"] == "5 d" and shown["balance"] == "1234567.89"
    [invoice] = shown["invoices"]
    assert invoice["id"] == "INV-2026-000123" and invoice["amount_due"] == "1234567.89"
    assert invoice["due_date"] == str(DUE)
    events = [e["event"] for e in shown["log"]]
    assert events[0] == "plan_opened" and events[-2:] == ["task_created", "task_claimed"]
    text = " ".join(cli("task", "show", task_id, "--on", day(20)).split())
    assert "Acme SARL (C1), +33 1 23 45 67 89, billing@acme.test" in text
    assert "instructions: Call the customer" in text and "claimed (by alice)" in text
    assert "balance: 1234567.89 EUR" in text and "task_claimed" in text
    out = cli("task", "show", "999", code=1)
    assert "task 999 not found" in out


def test_a_claimed_task_can_be_released_by_anyone_and_the_log_says_who(cli: Cli) -> None:
    tasks = two_calls(cli)
    task_id = str(tasks["C1"]["id"])
    out = cli("task", "release", task_id, "--user", "bob", code=1)
    assert "task 1 is open: only a claimed task can be released" in out
    cli("task", "claim", task_id, "--user", "alice")
    out = cli("task", "release", task_id, code=1)
    assert "releasing a task needs a person" in " ".join(out.split())
    cli("task", "release", task_id, "--user", "bob", "--note", "alice is away", "--on", day(19))
    [row] = [r for r in cli.json("tasks") if r["id"] == int(task_id)]
    assert row["status"] == "open" and row["claimed_by"] is None and row["claimed_at"] is None
    [released] = cli.log("--event", "task_released")
    assert released["actor"] == "bob" and released["on"] == day(19)
    assert released["plan_id"] == tasks["C1"]["plan_id"] and released["customer_id"] == "C1"
    assert released["details"] == {
        "task_id": int(task_id), "claimed_by": "alice", "by_claimer": False,
        "note": "alice is away",
    }  # fmt: skip
    cli("task", "claim", task_id, "--user", "carol")  # anyone can take it now
    cli("task", "complete", task_id, "--user", "carol")
    out = cli("task", "release", task_id, "--user", "carol", code=1)
    assert "is completed: only a claimed task can be released" in out


def test_days_overdue_leave_out_the_paused_days(cli: Cli) -> None:
    tasks = two_calls(cli)
    plan_id = str(tasks["C1"]["plan_id"])
    cli("pause", plan_id, "--reason", "holiday", "--on", day(16), "--user", "bob")
    [row] = [r for r in cli.json("tasks", "--on", day(20)) if r["customer_id"] == "C1"]
    assert row["days_overdue"] == 16  # 20 days, 4 of them paused (R1)
    cli("resume", plan_id, "--on", day(18), "--user", "bob")
    [row] = [r for r in cli.json("tasks", "--on", day(20)) if r["customer_id"] == "C1"]
    assert row["days_overdue"] == 18
