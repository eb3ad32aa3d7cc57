"""A run in many small chunks decides exactly what a run in one chunk decides.

On PostgreSQL small chunks also exercise the pipeline (chunk N+1 decided while a writer
thread writes chunk N); on SQLite they are written one after the other."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.db import unit_of_work
from recoup.core.env import load_env
from recoup.domain.evaluator import Outcome, Unit
from recoup.models import (
    ActionInstance,
    Invoice,
    InvoiceCheck,
    LogEntry,
    Plan,
    PlanInvoice,
    Run,
    Task,
)
from recoup.runs import units as run_module
from recoup.runs.service import run_dunning
from recoup.schedule.service import CHECK_NOW, recheck_everything
from tests.runs.test_run_e2e import CUSTOMERS, DUE, Cli, invoice_csv

DAYS = (-3, 0, 5, 6, 12, 16, 30)  # reminders, openings, steps, a manual task, the end


def _book() -> str:
    rows = []
    for i in range(40):
        due = DUE + timedelta(days=(i * 7) % 45 - 25)
        currency = "USD" if i % 5 == 0 else "EUR"
        amount = "30.00" if i % 9 == 0 else f"{100 + i}.00"  # some below the EUR minimum
        rows.append((f"I{i:02d}", f"C{1 + i % 8}", due, amount, currency))
    return invoice_csv(*rows)


def _snapshot(factory: sessionmaker[Session]) -> dict[str, Any]:
    """What the runs decided, keyed by business identity instead of generated ids."""
    with factory() as session:
        plans = session.scalars(select(Plan)).all()
        key = {p.id: (p.customer_id, p.invoice_id, p.currency) for p in plans}
        return {
            "plans": sorted(
                (
                    *key[p.id],
                    p.status,
                    p.level,
                    str(p.balance),
                    p.anchor_date,
                    p.opened_on,
                    p.closed_on,
                    p.next_step_on,
                )
                for p in plans
            ),
            "instances": sorted(
                (str(key.get(i.plan_id)), i.invoice_id, i.level, i.action, i.status, i.due_on)
                for i in session.scalars(select(ActionInstance))
            ),
            "tasks": sorted(
                (key[t.plan_id], t.level, t.action, t.status)
                for t in session.scalars(select(Task))
                if t.plan_id is not None
            ),
            "log": sorted(
                (
                    e.on,
                    e.event,
                    str(key.get(e.plan_id)),
                    e.customer_id or "",
                    e.invoice_id or "",
                    e.level or "",
                    e.action or "",
                    repr(sorted((e.details or {}).items())),
                )
                for e in session.scalars(select(LogEntry).where(LogEntry.run_id.is_not(None)))
            ),
            "checks": sorted(
                (c.invoice_id, c.check_on) for c in session.scalars(select(InvoiceCheck))
            ),
        }


def _forget_runs(factory: sessionmaker[Session]) -> None:
    """Back to the book as imported: no runs, no plans, every open invoice to be looked at."""
    with unit_of_work(factory) as session:
        for model in (Task, ActionInstance, PlanInvoice, Plan):
            session.execute(delete(model))
        session.execute(delete(LogEntry).where(LogEntry.run_id.is_not(None)))
        session.execute(delete(Run))
        recheck_everything(session)


def _setup_book(cli: Cli, mode: str) -> None:
    cli.setup(mode=mode)
    more = "".join(
        f"C{n},Customer {n},c{n}@example.test,,en,FR,EUR,smb,true,,,active,false\n"
        for n in range(3, 9)
    )
    cli("import", "customers", cli.file("more.csv", CUSTOMERS.splitlines()[0] + "\n" + more))
    cli("import", "invoices", cli.file("book.csv", _book()))


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.mark.parametrize("mode", ["invoice", "customer"])
def test_small_chunks_decide_what_one_chunk_decides(
    cli: Cli,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    _setup_book(cli, mode)
    results = []
    for chunk in ("3", "100000"):
        monkeypatch.setenv("RECOUP_RUN_CHUNK", chunk)
        days = []
        for day in DAYS:  # compared day by day
            cli.run(day, "--no-execute")
            days.append(_snapshot(session_factory))
        results.append(days)
        _forget_runs(session_factory)
    small, whole = results
    assert len(whole[-1]["plans"]) >= (20 if mode == "invoice" else 10)
    assert whole[-1]["tasks"] and whole[-1]["instances"] and whole[0]["checks"]
    assert any(row[1] == "plan_opened" for row in whole[-1]["log"])
    assert small == whole


def test_a_failure_while_deciding_stops_the_run_after_the_chunks_already_written(
    cli: Cli,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setup_book(cli, "invoice")
    real = run_module.evaluate

    def evaluate_failing_on_i20(unit: Unit) -> Outcome:
        if unit.invoices[0].id == "I20":
            raise ValueError("cannot decide I20")
        return real(unit)

    monkeypatch.setattr(run_module, "evaluate", evaluate_failing_on_i20)
    monkeypatch.setenv("RECOUP_RUN_CHUNK", "3")
    with pytest.raises(RuntimeError, match="cannot decide I20"):
        run_dunning(session_factory, as_of=DUE + timedelta(days=30), env=load_env(), execute=False)
    assert multiprocessing.active_children() == []  # the deciding process is gone
    with session_factory() as session:
        ids = sorted(session.scalars(select(Invoice.id)))
        planned = set(session.scalars(select(Plan.invoice_id)))
        checks = dict(session.execute(select(InvoiceCheck.invoice_id, InvoiceCheck.check_on)).all())
    # the run decides invoices in id order, 3 a chunk: the chunks before I20's were written,
    # the rest was not touched and waits for the next run
    first = ids.index("I20") // 3 * 3
    written, untouched = ids[:first], ids[first:]
    assert planned and planned <= set(written)
    assert all(checks.get(i) == CHECK_NOW and i not in planned for i in untouched)
    # the run's row says it failed, why, and what it had done
    [run] = cli.json("runs")
    assert run["status"] == "failed" and "cannot decide I20" in run["error"]
    assert run["finished_at"] is not None and run["plans_opened"] == len(planned)
    table = cli("runs")  # the table has an error column now, its text wrapped in it
    assert "error" in table.splitlines()[2] and "I20" in table and "failed" in table
