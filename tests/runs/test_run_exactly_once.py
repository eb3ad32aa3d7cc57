"""R13 with real processes: a run killed half-way and restarted, and two runs at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.db import make_engine
from recoup.core.locks import run_lock
from recoup.models import ActionInstance, LogEntry, Plan, Run
from tests.runs.test_run_e2e import POLICY_YAML

N = 1200
AS_OF = date(2026, 6, 1)


def configured_cli(tmp: Path) -> Callable[..., None]:
    """A migrated database with the e2e policy applied; returns an in-process `recoup` that
    must succeed."""
    runner = CliRunner()

    def cli(*args: str) -> None:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output

    cli("init")
    policy = tmp / "policy.yaml"
    policy.write_text(
        POLICY_YAML.format(
            mode="invoice", catch_up="latest", transition="days_overdue", second_min=""
        )
    )
    cli("config", "apply", str(policy))
    return cli


def _book(tmp: Path, env: dict[str, str]) -> None:
    cli = configured_cli(tmp)
    customers = tmp / "customers.csv"
    customers.write_text(
        "id,name,email,language,currency\n"
        + "".join(f"C{i},Customer {i},c{i}@example.test,en,EUR\n" for i in range(N // 3))
    )
    cli("import", "customers", str(customers))
    invoices = tmp / "invoices.csv"
    lines = [
        "id,customer_id,number,type,issue_date,due_date,currency,amount,amount_due,status,disputed"
    ]
    for i in range(N):
        due = AS_OF - timedelta(days=6 + i % 10)  # all overdue: every invoice opens a plan
        lines.append(
            f"I{i},C{i % (N // 3)},N{i},commercial,{due - timedelta(days=30)},{due},EUR,100.00,100.00,open,false"
        )
    invoices.write_text("\n".join(lines) + "\n")
    cli("import", "invoices", str(invoices))


def _start_run(env: dict[str, str], chunk: int) -> subprocess.Popen[bytes]:
    child_env = {**os.environ, **env, "RECOUP_RUN_CHUNK": str(chunk)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recoup.cli.main",
            "run",
            "--as-of",
            AS_OF.isoformat(),
            "--no-execute",
            "--quiet",
        ],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _runs() -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["runs", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


def _counts(url: str) -> tuple[int, int, int, int, int]:
    """Plans, action instances, level steps logged, distinct level steps logged, `plan_opened`
    log entries. Instances are unique by key in the database; the log is what a half-done
    chunk replayed twice would duplicate."""
    engine = make_engine(url)
    with engine.connect() as conn:
        plans = conn.scalar(select(func.count()).select_from(Plan))
        instances = conn.scalar(select(func.count()).select_from(ActionInstance))
        steps = (
            select(LogEntry.plan_id, LogEntry.level, LogEntry.event)
            .where(LogEntry.event.in_(["level_reached", "level_skipped"]))
            .where(LogEntry.plan_id.is_not(None))
        )
        logged = conn.scalar(select(func.count()).select_from(steps.subquery()))
        distinct = conn.scalar(select(func.count()).select_from(steps.distinct().subquery()))
        opened = conn.scalar(
            select(func.count()).select_from(LogEntry).where(LogEntry.event == "plan_opened")
        )
    engine.dispose()
    return plans or 0, instances or 0, logged or 0, distinct or 0, opened or 0


def test_run_killed_half_way_and_restarted_does_everything_once(
    env: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    _book(tmp_path, env)
    process = _start_run(env, chunk=40)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        plans = _counts(db_url)[0]
        if plans > 0:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    plans_at_kill = _counts(db_url)[0]
    assert 0 < plans_at_kill < N, "the run must be killed half-way"
    # it could not record its end; no run holds the lock: `recoup runs` says interrupted
    [killed] = _runs()
    assert killed["status"] == "interrupted" and killed["finished_at"] is None

    restarted = _start_run(env, chunk=500)
    out, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err.decode()
    assert [r["status"] for r in _runs()] == ["finished", "interrupted"]
    plans, instances, logged, distinct, opened = _counts(db_url)
    assert plans == N
    assert opened == N  # each plan opened (and logged) once
    assert logged == distinct >= N  # each level step logged once
    assert instances >= N  # at least one action per plan
    # the same day again adds nothing
    again = _start_run(env, chunk=500)
    again.communicate(timeout=120)
    assert _counts(db_url) == (plans, instances, logged, distinct, opened)


def test_two_runs_at_once_only_one_works(env: dict[str, str], tmp_path: Path, db_url: str) -> None:
    _book(tmp_path, env)
    first = _start_run(env, chunk=20)
    second = _start_run(env, chunk=20)
    results = [p.communicate(timeout=120) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    # either the second was refused while the first worked, or it came after and found the
    # day already done; never do both work
    refused = [
        err.decode()
        for (_out, err), p in zip(results, (first, second), strict=True)
        if p.returncode
    ]
    assert codes in ([0, 1], [0, 0])
    assert all("another run is in progress" in err for err in refused)
    plans, instances, logged, distinct, opened = _counts(db_url)
    assert plans == opened == N and logged == distinct >= N


def test_a_run_is_refused_while_another_holds_the_lock(
    env: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    _book(tmp_path, env)
    engine = make_engine(db_url)
    try:
        with run_lock(engine):
            with Session(engine) as session, session.begin():  # the lock holder's run
                session.add(Run(as_of=date(2026, 3, 1), status="running", actor="other"))
            assert [r["status"] for r in _runs()] == ["running"]
            blocked = _start_run(env, chunk=500)
            _, err = blocked.communicate(timeout=120)
            assert blocked.returncode == 1
            assert "another run is in progress" in err.decode()
            assert _counts(db_url)[0] == 0
        # once the lock is released (or its holder dies) the run goes ahead
        free = _start_run(env, chunk=500)
        free.communicate(timeout=120)
        assert free.returncode == 0
        assert _counts(db_url)[0] == N
        # the row left running by the holder that went away reads interrupted
        assert [r["status"] for r in _runs()] == ["finished", "interrupted"]
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _no_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOUP_SMTP_URL", raising=False)
