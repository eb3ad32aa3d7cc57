"""`recoup worker`: batches, graceful stop, one worker per SQLite database, and on PostgreSQL
real worker processes in parallel executing every instance exactly once — including when one
of them is killed while it holds leases (R13)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.actions.runner import execute_pending
from recoup.cli.main import app
from recoup.core.env import EnvConfig
from recoup.models import ActionInstance, Charge, LogEntry
from recoup.worker import StopFlag, WorkerOptions, run_worker, worker_lock
from tests.worker_book import seed_queue

TODAY = date(2024, 3, 1)
# 4 worker processes drain 10,000 actions (about a minute here); lower it for a quick local
# run: RECOUP_WORKER_TEST_N=1000 .venv/bin/pytest tests/worker/test_worker.py -k four_worker
PARALLEL_N = int(os.environ.get("RECOUP_WORKER_TEST_N", "10000"))


def _env(db_url: str, tmp_path: Path) -> EnvConfig:
    return EnvConfig(database_url=db_url, data_dir=tmp_path / "data", smtp_url=None, user=None)


def _pg_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers share a database on PostgreSQL only")


def _counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as s:
        rows = s.execute(
            select(ActionInstance.status, func.count()).group_by(ActionInstance.status)
        ).all()
        return {status: count for status, count in rows}


def _assert_exactly_once(factory: sessionmaker[Session], n: int, crashed: int = 0) -> None:
    """Every instance done once; the `crashed` ones a dead worker was executing on their
    second attempt (the first was counted when it claimed them), each logged as a retry; the
    others it had claimed but not started on their first (that claim was given back)."""
    with factory() as s:
        charges, distinct = s.execute(
            select(func.count(), func.count(func.distinct(Charge.action_instance_id)))
        ).one()
        assert (charges, distinct) == (n, n)
        attempts = s.execute(
            select(ActionInstance.status, ActionInstance.attempts, func.count())
            .group_by(ActionInstance.status, ActionInstance.attempts)
            .order_by(ActionInstance.attempts)
        ).all()
        expected = [("done", 1, n - crashed)] + [("done", 2, crashed)] * bool(crashed)
        assert [tuple(row) for row in attempts] == expected
        done_logs = s.scalar(
            select(func.count()).select_from(LogEntry).where(LogEntry.event == "action_done")
        )
        assert done_logs == n
        others = s.scalar(
            select(func.count())
            .select_from(LogEntry)
            .where(LogEntry.event.in_(["action_failed", "action_skipped"]))
        )
        assert others == 0
        retries = (
            s.execute(select(LogEntry.details).where(LogEntry.event == "action_retry"))
            .scalars()
            .all()
        )
        assert len(retries) == crashed
        assert all(r["kind"] == "crashed" and "died" in r["error"] for r in retries)


def _spawn(
    db_url: str, tmp_path: Path, *args: str, lease: float | None = None
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        RECOUP_DATABASE_URL=db_url,
        RECOUP_DATA_DIR=str(tmp_path / "data"),
        RECOUP_USER="",
    )
    env.pop("RECOUP_SMTP_URL", None)
    if lease is not None:
        env["RECOUP_LEASE_SECONDS"] = str(lease)
    return subprocess.Popen(
        [sys.executable, "-m", "recoup.cli.main", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# --- in process ----------------------------------------------------------------------------


def test_stop_releases_claimed_instances_not_started(
    engine: Engine, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    seed_queue(engine, 10)
    seen: list[int] = []
    stats = execute_pending(
        session_factory,
        env=_env(db_url, tmp_path),
        today=TODAY,
        batch_size=10,
        on_progress=seen.append,
        stop=lambda: len(seen) >= 3,
    )
    assert (stats.done, stats.released) == (3, 7)
    with session_factory() as s:
        rows = s.execute(
            select(ActionInstance.status, ActionInstance.leased_by, ActionInstance.lease_until)
        ).all()
    assert sorted(r.status for r in rows) == ["done"] * 3 + ["pending"] * 7
    assert all(r.leased_by is None and r.lease_until is None for r in rows)
    # released means due again at once, for anyone
    assert execute_pending(session_factory, env=_env(db_url, tmp_path), today=TODAY).done == 7


def test_worker_drains_in_batches_and_reports(
    engine: Engine, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    seed_queue(engine, 20)
    reports = []
    totals = run_worker(
        session_factory,
        env=_env(db_url, tmp_path),
        options=WorkerOptions(once=True, batch=7, worker_id="w1"),
        on_batch=reports.append,
    )
    assert (totals.done, totals.batches, totals.reason) == (20, 3, "drained")
    assert [r.stats.done for r in reports] == [7, 7, 6]
    assert _counts(session_factory) == {"done": 20}


def test_worker_stops_on_max_seconds_and_on_request(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    totals = run_worker(
        session_factory,
        env=_env(db_url, tmp_path),
        options=WorkerOptions(poll=0.05, max_seconds=0.3, worker_id="w1"),
    )
    assert totals.reason == "max-seconds" and time.monotonic() - started < 5
    flag = StopFlag()
    threading.Timer(0.2, flag.set, args=("test",)).start()
    totals = run_worker(
        session_factory,
        env=_env(db_url, tmp_path),
        options=WorkerOptions(poll=30, worker_id="w2"),
        stop=flag,
    )
    assert totals.reason == "stopped (test)"  # woke up from its 30 s sleep


def test_a_second_worker_is_refused_on_sqlite(
    engine: Engine, env: dict[str, str], db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        with worker_lock(engine), worker_lock(engine):  # PostgreSQL: no lock at all
            return
    with worker_lock(engine):
        result = CliRunner().invoke(app, ["worker", "--once"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "another worker is already running on this SQLite database" in message
    assert "use PostgreSQL to run several workers" in message
    result = CliRunner().invoke(app, ["worker", "--once", "--json"])  # free again
    assert result.exit_code == 0, result.output
    assert '"reason": "drained"' in result.output


# --- real processes ------------------------------------------------------------------------


def test_sigterm_finishes_the_instance_under_way_and_hands_back_the_rest(
    engine: Engine, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    seed_queue(engine, 400)
    worker = _spawn(db_url, tmp_path, "--batch", "400", "--poll", "0.2", "--id", "solo")
    try:
        _wait_for(lambda: _counts(session_factory).get("done", 0) >= 1, 60, "a first instance")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "ended (stopped (SIGTERM))" in out
    counts = _counts(session_factory)
    assert "running" not in counts  # nothing left leased
    assert counts.get("done", 0) + counts.get("pending", 0) == 400
    assert counts.get("pending", 0) > 0, "the worker finished everything before the signal"
    assert f"released {counts['pending']}" in out
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Charge)) == counts["done"]


@pytest.mark.slow
def test_four_worker_processes_execute_each_instance_exactly_once(
    engine: Engine, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    _pg_only(db_url)
    seed_queue(engine, PARALLEL_N)
    workers = [
        _spawn(db_url, tmp_path, "--once", "--batch", "100", "--id", f"w{i}", "--json")
        for i in range(4)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    _assert_exactly_once(session_factory, PARALLEL_N)
    # each did a share of the work (SKIP LOCKED: no worker waited for another's rows)
    shares = [json.loads(out)[0]["done"] for out, _ in outputs]
    assert sum(shares) == PARALLEL_N
    assert all(share > 0 for share in shares), shares


def test_a_killed_workers_leases_are_taken_over_at_once(
    engine: Engine, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    _pg_only(db_url)
    n = 600
    seed_queue(engine, n)
    # the default five-minute lease: only the dead worker's free liveness lock lets the
    # survivor take its leases over before the test times out (R13)
    doomed = _spawn(db_url, tmp_path, "--batch", "250", "--poll", "0.2", "--id", "doomed")

    def doomed_leases() -> list[int]:
        with session_factory() as s:
            return list(
                s.scalars(
                    select(ActionInstance.id).where(
                        ActionInstance.status == "running",
                        ActionInstance.leased_by.like("doomed#%"),
                    )
                )
            )

    survivor = None
    try:
        _wait_for(lambda: len(doomed_leases()) > 0, 60, "the doomed worker's first claim")
        _wait_for(lambda: _counts(session_factory).get("done", 0) >= 5, 60, "some work done")
        doomed.kill()  # SIGKILL: no chance to hand anything back
        doomed.wait(timeout=10)
        held = doomed_leases()
        assert held, "the worker should have died holding leases"
        survivor = _spawn(db_url, tmp_path, "--poll", "0.2", "--id", "survivor")
        _wait_for(lambda: _counts(session_factory) == {"done": n}, 120, "everything done")
        survivor.send_signal(signal.SIGTERM)
        out, err = survivor.communicate(timeout=30)
        assert survivor.returncode == 0, err
        assert "ended (stopped (SIGTERM))" in out
    finally:
        for process in (doomed, survivor):
            if process is not None and process.poll() is None:
                process.kill()
    _assert_exactly_once(session_factory, n, crashed=1)  # it died executing one
    with session_factory() as s:
        taken_over = s.scalars(
            select(ActionInstance.status).where(ActionInstance.id.in_(held))
        ).all()
        assert set(taken_over) == {"done"}
        # nothing ran twice: one charge per instance, and the connection of the dead worker
        # left no transaction behind
        assert (
            s.execute(
                text(
                    "select count(*) from pg_stat_activity where datname = current_database() "
                    "and state = 'idle in transaction'"
                )
            ).scalar_one()
            == 0
        )
