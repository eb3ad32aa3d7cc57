"""R13, issue 9.2: a run or a worker killed (SIGKILL) while it executes actions, started again
straight away, finishes the dead process's work at once — its leases are not waited out —
and every action is done exactly once: counted by a real SMTP server that answers slowly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.clock import utc_now
from recoup.core.db import make_engine
from recoup.core.locks import holding
from recoup.models import ActionInstance
from tests.actions.test_actions_email import _free_port
from tests.runs.test_run_e2e import DUE
from tests.runs.test_run_exactly_once import configured_cli

AS_OF = DUE + timedelta(days=5)  # first_notice: an email and a fee per plan


class SlowSmtp:
    """Answers each RCPT after `delay` seconds (forever for the addresses in `hang`) and
    records the recipient of every message it receives in full."""

    def __init__(self, delay: float, hang: frozenset[str] = frozenset()) -> None:
        self.delay = delay
        self.hang = hang
        self.received: list[str] = []
        self.rcpts: list[str] = []
        self.lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self.lock:
            self.rcpts.append(address)
        await asyncio.sleep(3600 if address in self.hang else self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.received.extend(envelope.rcpt_tos)
        return "250 OK"

    def seen(self, address: str | None = None) -> int:
        with self.lock:
            return sum(1 for a in self.rcpts if address is None or a == address)


def serve(handler: SlowSmtp) -> Iterator[str]:
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def make_book(tmp: Path, emails: list[str]) -> None:
    """One customer per address, each with one invoice 5 days overdue."""
    cli = configured_cli(tmp)
    customers = tmp / "customers.csv"
    customers.write_text(
        "id,name,email,language,currency\n"
        + "".join(f"C{i},Customer {i},{address},en,EUR\n" for i, address in enumerate(emails))
    )
    cli("import", "customers", str(customers))
    invoices = tmp / "invoices.csv"
    invoices.write_text(
        "id,customer_id,number,type,issue_date,due_date,currency,amount,amount_due,status,"
        "disputed\n"
        + "".join(
            f"I{i},C{i},N{i},commercial,{DUE - timedelta(days=30)},{DUE},EUR,100.00,100.00,"
            "open,false\n"
            for i in range(len(emails))
        )
    )
    cli("import", "invoices", str(invoices))


def spawn(env: dict[str, str], smtp_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recoup.cli.main", *args],
        env={**os.environ, **env, "RECOUP_SMTP_URL": smtp_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_args() -> list[str]:
    return ["run", "--as-of", AS_OF.isoformat(), "--quiet", "--json"]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def statuses(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(ActionInstance.status, func.count()).group_by(ActionInstance.status)
            ).all()
    finally:
        engine.dispose()
    return {status: count for status, count in rows}


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


N = 8
EMAILS = [f"c{i}@example.test" for i in range(N)]


@pytest.fixture
def slow() -> Iterator[tuple[SlowSmtp, str]]:
    handler = SlowSmtp(delay=0.3)
    for url in serve(handler):
        yield handler, url


@pytest.mark.parametrize("command", ["run", "worker"])
def test_killed_mid_execution_and_restarted_at_once_does_everything_once(
    env: dict[str, str],
    tmp_path: Path,
    db_url: str,
    slow: tuple[SlowSmtp, str],
    command: str,
) -> None:
    handler, url = slow
    make_book(tmp_path, EMAILS)
    if command == "worker":  # decide only; the worker executes
        queued = spawn(env, url, "run", "--as-of", AS_OF.isoformat(), "--no-execute", "-q")
        assert queued.wait(timeout=60) == 0, queued.communicate()[1]
    args = run_args() if command == "run" else ["worker", "--once", "--json"]
    first = spawn(env, url, *args)
    try:
        # killed while the third email is being sent: two went out, the third is in flight
        wait_for(lambda: handler.seen() >= 3, 60, "the third email")
    finally:
        kill(first)
    assert len(handler.received) == 2
    assert statuses(db_url).get("running", 0) > 0, "it should have died holding leases"

    started = time.monotonic()
    second = spawn(env, url, *args)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    # not a five-minute lease wait
    assert time.monotonic() - started < 30
    assert sorted(handler.received) == sorted(EMAILS)  # each email exactly once
    counts = statuses(db_url)
    assert "running" not in counts
    assert counts.get("failed", 0) == 0 and counts.get("pending", 0) == 0
    summary = json.loads(out)[0]
    assert summary.get("actions_held", 0) == 0


def test_the_summary_says_what_another_live_worker_still_holds(
    env: dict[str, str], tmp_path: Path, db_url: str, slow: tuple[SlowSmtp, str]
) -> None:
    _, url = slow
    make_book(tmp_path, EMAILS[:2])
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--as-of", AS_OF.isoformat(), "--no-execute", "-q"])
    assert result.exit_code == 0, result.output
    engine = make_engine(db_url)
    try:
        with holding(engine, "other-worker#1"):  # a live worker executing one of them
            with Session(engine) as session, session.begin():
                held = session.scalars(select(ActionInstance).order_by(ActionInstance.id)).first()
                assert held is not None
                held.status, held.leased_by = "running", "other-worker#1"
                held.lease_until = utc_now() + timedelta(minutes=5)
            result = runner.invoke(
                app, ["run", "--as-of", AS_OF.isoformat(), "-q"], env={"RECOUP_SMTP_URL": url}
            )
            assert result.exit_code == 0, result.output
            text = " ".join(result.output.split())
            assert "1 action(s) are still being executed by another worker" in text
            assert statuses(db_url)["running"] == 1  # left to its live holder
    finally:
        engine.dispose()
