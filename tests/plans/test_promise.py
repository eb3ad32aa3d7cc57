"""A promise to pay (R10): recorded when completing the collector's call (or on a plan), it
pauses the plan until its date. Paid in time, the plan closes recovered; the promised amount
paid, it was kept; not paid, the run on the date resumes the plan, logs `promise_broken` and
escalates from the level where it stood, the paused days not counted (R1). SQLite and
PostgreSQL, through the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.runs.test_run_e2e import DUE, Cli, invoice_csv


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def day(n: int) -> str:
    return str(DUE + timedelta(days=n))


def pay(cli: Cli, *rows: tuple[str, str, str, str, int], name: str = "payments.csv") -> None:
    """rows: (payment id, customer, invoice, amount, day)"""
    lines = ["id,customer_id,invoice_id,amount,currency,date"]
    for pid, customer, invoice, amount, n in rows:
        currency = "USD" if customer == "C2" else "EUR"
        lines.append(f"{pid},{customer},{invoice},{amount},{currency},{day(n)}")
    cli("import", "payments", cli.file(name, "\n".join(lines) + "\n"))


def call_task(cli: Cli, **setup: Any) -> dict[str, Any]:
    """The plan at its `call` level (day 15) and the collector's open task."""
    cli.setup(**setup)
    cli.run(15)
    [task] = cli.json("tasks")
    assert task["action"] == "call" and task["status"] == "open"
    return task


def promise_on_call(cli: Cli, until: int, *extra: str, on: int = 16) -> dict[str, Any]:
    task = call_task(cli)
    out = cli(
        "task", "complete", str(task["id"]), "--user", "alice", "--note", "will pay",
        "--promise", day(until), "--on", day(on), *extra,
    )  # fmt: skip
    assert f"paused until {day(until)}" in " ".join(out.split())
    return task


def test_a_broken_promise_resumes_on_its_date_and_escalates_from_where_it_stood(
    cli: Cli,
) -> None:
    task = promise_on_call(cli, until=22)
    [plan] = cli.plans()
    assert plan["status"] == "paused" and plan["level"] == "call"
    [made] = cli.log("--event", "promise_made")
    assert made["actor"] == "alice" and made["on"] == day(16)
    assert made["details"] == {
        "until": day(22), "amount": "100.00", "currency": "EUR", "whole_balance": True,
        "task_id": task["id"],
    }  # fmt: skip
    [shown] = cli.json("plan", "show", str(plan["id"]))
    assert shown["pause_reason"] == "promise" and shown["pause_until"] == day(22)
    assert shown["promise_amount"] == "100.00" and shown["promise_made_on"] == day(16)

    cli.run(21)  # before the date: still paused, no step
    assert cli.plans()[0]["status"] == "paused"
    assert cli.log("--event", "promise_broken") == []

    cli.run(22)  # the date, nothing paid: resumed, broken, still at `call`
    [plan] = cli.plans()
    assert plan["status"] == "active" and plan["level"] == "call"
    [broken] = cli.log("--event", "promise_broken")
    assert broken["on"] == day(22) and broken["level"] == "call"
    assert broken["details"]["amount"] == "100.00" and broken["details"]["paid"] == "0.00"
    assert broken["details"]["kept"] is False
    [resumed] = cli.log("--event", "plan_resumed")
    assert resumed["details"]["paused_days"] == 6
    assert resumed["details"]["promise"]["kept"] is False
    [shown] = cli.json("plan", "show", str(plan["id"]))
    assert shown["promise_amount"] is None and shown["paused_days"] == 6

    # R1: six paused days do not count: `final` (day 20) comes on day 26, not 22
    cli.run(25)
    assert cli.plans()[0]["level"] == "call"
    cli.run(26)
    [reached] = [e for e in cli.log("--event", "level_reached") if e["level"] == "final"]
    assert reached["on"] == day(26) and reached["details"]["days_overdue"] == 20


def test_paid_in_time_the_plan_closes_recovered_and_no_promise_is_broken(cli: Cli) -> None:
    promise_on_call(cli, until=22)
    pay(cli, ("P1", "C1", "I1", "100.00", 20))
    [plan] = cli.plans()
    assert plan["status"] == "recovered"
    cli.run(22)
    assert cli.log("--event", "promise_broken") == []
    assert cli.plans()[0]["status"] == "recovered"


def test_a_promised_amount_paid_by_the_date_is_kept_and_the_plan_carries_on(cli: Cli) -> None:
    promise_on_call(cli, 22, "--amount", "40")
    pay(cli, ("P1", "C1", "I1", "25.00", 17), ("P2", "C1", "I1", "15.00", 22))
    cli.run(22)
    assert cli.log("--event", "promise_broken") == []
    [resumed] = cli.log("--event", "plan_resumed")
    assert resumed["details"]["promise"] == {
        "promised_on": day(16), "until": day(22), "amount": "40.00", "paid": "40.00",
        "currency": "EUR", "kept": True,
    }  # fmt: skip
    [plan] = cli.plans()
    assert plan["status"] == "active" and plan["balance"] == "60.00"


def test_money_before_the_promise_or_after_its_date_does_not_keep_it(cli: Cli) -> None:
    cli.setup()
    cli.run(15)
    [task] = cli.json("tasks")
    pay(cli, ("P0", "C1", "I1", "10.00", 15))  # before the promise
    cli(
        "task", "complete", str(task["id"]), "--user", "alice", "--promise", day(22),
        "--amount", "40", "--on", day(16),
    )  # fmt: skip
    pay(cli, ("P1", "C1", "I1", "30.00", 22), name="p1.csv")  # in time, but short
    cli.run(22)
    [broken] = cli.log("--event", "promise_broken")
    assert broken["details"]["paid"] == "30.00" and broken["details"]["amount"] == "40.00"
    pay(cli, ("P2", "C1", "I1", "10.00", 23), name="p2.csv")  # too late to keep it
    assert cli.plans()[0]["status"] == "active"


def test_promises_in_customer_mode_count_the_plans_invoices(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two customers, one chunk each (the run's two-process pipeline): one keeps a promise of
    part of the balance, the other breaks one."""
    monkeypatch.setenv("RECOUP_RUN_CHUNK", "1")
    cli.setup(
        mode="customer",
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE, "80.00", "EUR"),
            ("I3", "C2", DUE, "80.00", "USD"),
        ),
    )
    cli.run(15)
    tasks = {t["customer_id"]: t for t in cli.json("tasks")}
    assert tasks["C1"]["invoice_ids"] == ["I1", "I2"] and tasks["C1"]["balance"] == "180.00"
    for customer, amount in (("C1", "120"), ("C2", "80.00")):
        cli(
            "task", "complete", str(tasks[customer]["id"]), "--user", "alice", "--promise",
            day(22), "--amount", amount, "--on", day(16),
        )  # fmt: skip
    pay(cli, ("P1", "C1", "", "120.00", 18))  # spread over C1's oldest invoices
    cli.run(22)
    broken = cli.log("--event", "promise_broken")
    assert [e["customer_id"] for e in broken] == ["C2"]
    kept = {e["customer_id"]: e["details"]["promise"] for e in cli.log("--event", "plan_resumed")}
    assert kept["C1"]["kept"] is True and kept["C1"]["paid"] == "120.00"
    assert kept["C2"]["kept"] is False
    plans = {p["customer_id"]: p for p in cli.plans()}
    assert plans["C1"]["status"] == "active" and plans["C1"]["balance"] == "60.00"
    assert plans["C2"]["status"] == "active"


def test_plan_promise_records_one_without_a_task(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    [plan] = cli.plans()
    pid = str(plan["id"])
    out = cli("plan", "promise", pid, day(9), "--amount", "50", "--on", day(6), code=1)
    assert "a promise to pay is recorded by a person" in out
    out = cli("plan", "promise", pid, day(9), "--amount", "50", "--on", day(6), "--user", "bob")
    assert "paused until" in out and "50.00 EUR promised" in out
    [made] = cli.log("--event", "promise_made")
    assert made["actor"] == "bob" and made["details"]["whole_balance"] is False
    # a new promise replaces it; the pause goes on from the day it began
    cli("plan", "promise", pid, day(12), "--on", day(8), "--user", "bob")
    [_, again] = cli.log("--event", "promise_made")
    assert again["details"]["replaces"] == {"reason": "promise", "until": day(9)}
    cli("resume", pid, "--on", day(10), "--user", "bob")  # by hand: the promise ends with it
    [shown] = cli.json("plan", "show", pid)
    assert shown["status"] == "active" and shown["promise_amount"] is None
    assert shown["paused_days"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--promise", day(16)], f"the promise date {day(16)} must be after {day(16)}"),
        (["--promise", day(10)], "must be after"),
        (["--promise", "2026-02-30"], "--promise: '2026-02-30' is not a date"),
        (["--promise", day(22), "--amount", "0"], "a promised amount must be positive"),
        (["--promise", day(22), "--amount", "-5"], "a promised amount must be positive"),
        (["--promise", day(22), "--amount", "10.005"], "EUR amounts have 2 decimal(s)"),
        (["--promise", day(22), "--amount", "1e1"], "write the amount in full"),
        (["--promise", day(22), "--amount", "ten"], "not a decimal amount"),
        (["--promise", day(22), "--amount", "100.01"], "more than the plan's balance 100.00"),
        (["--amount", "10"], "--amount goes with --promise DATE"),
    ],
)
def test_a_bad_promise_is_refused_and_the_task_stays_open(
    cli: Cli, args: list[str], message: str
) -> None:
    task = call_task(cli)
    out = cli(
        "task", "complete", str(task["id"]), "--user", "alice", "--on", day(16), *args, code=1
    )
    assert message in " ".join(out.split())
    assert cli.json("tasks")[0]["status"] == "open"  # nothing was done
    assert cli.plans()[0]["status"] == "active"
    assert cli.log("--event", "promise_made") == []


def test_a_promise_needs_an_open_plan_that_is_not_disputed(cli: Cli) -> None:
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C1", DUE, "70.00", "EUR"))
    )
    cli.run(5)
    plans = {p["invoice_id"]: str(p["id"]) for p in cli.plans()}
    cli("stop", plans["I1"], "--reason", "written off", "--user", "bob")
    out = cli("plan", "promise", plans["I1"], day(9), "--user", "bob", "--on", day(6), code=1)
    assert "is stopped: a promise to pay is for an active or paused plan" in out
    cli("invoice", "dispute", "I2", "--reason", "wrong amount", "--user", "bob")
    out = cli("plan", "promise", plans["I2"], "2099-01-01", "--user", "bob", code=1)
    assert "paused for a dispute" in " ".join(out.split())


def test_the_business_date_defaults_to_today(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    [plan] = cli.plans()
    today = datetime.now(UTC).date()  # the settings' time zone is UTC
    out = cli("plan", "promise", str(plan["id"]), str(today), "--user", "bob", code=1)
    assert f"must be after {today}" in " ".join(out.split())
