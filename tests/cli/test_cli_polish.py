"""CLI polish (issue 9.15): --version, output for pipes and cron logs, outbox names that sort,
the demo's suspended accounts, `explain` on a paid invoice, --json help that says what it
prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.demo.summary import collect
from recoup.messages.email import outbox_name
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv, payment_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"recoup {version('recoup')}"


def _piped(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as cron or `| grep` runs it: stdout and stderr are pipes, no COLUMNS."""
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environ.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "recoup.cli.main", *args],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )


def test_piped_output_is_not_wrapped_and_a_cron_log_gets_no_progress_bar(
    cli: Cli, env: dict[str, str]
) -> None:
    cli.setup()
    run = _piped(env, "run", "--as-of", str(DUE + timedelta(days=5)))
    assert "Evaluating" not in run.stderr and "Executing" not in run.stderr
    assert "━" not in run.stderr
    assert "plans opened" in run.stdout  # the summary alone

    log = _piped(env, "log").stdout.splitlines()
    assert log[0].strip() == "Log" and set(log[2]) == {"─"}
    rows = log[3:]  # under the title, the headers and their rule
    # one line per entry: nothing folded at 80 columns, nothing cut
    assert len(rows) == len(cli.log())
    assert any(len(line.rstrip()) > 80 for line in rows)
    assert "…" not in "\n".join(rows)
    assert "first_notice / email_notice" in "\n".join(rows)


def test_outbox_names_sort_in_queue_order() -> None:
    ids = [1, 2, 9, 10, 11, 99, 100, 12345]
    names = [outbox_name(i, f"plan_{i}_notice") for i in ids]
    assert sorted(names) == names
    assert outbox_name(7, "inv/INV 1") == "0000000007-inv_INV_1.eml"


def test_demo_summary_counts_suspended_accounts_not_actions(
    cli: Cli, env: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    # one customer, two invoices in invoice mode: two plans suspend the same account
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C1", DUE, "80.00", "EUR"))
    )
    cli.run(25)
    done = [e for e in cli.log() if e["event"] == "action_done" and e["action"] == "suspend"]
    assert len(done) == 2
    with session_factory() as session:
        summary = collect(session, as_of=DUE + timedelta(days=25), outbox=Path("nowhere"))
    assert summary.suspensions == 1


def test_explain_a_paid_invoice_says_it_is_paid(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    assert "Days overdue: 5" in cli("explain", "I1", "--as-of", str(DUE + timedelta(days=5)))
    paid = payment_csv("I1", "100.00", DUE + timedelta(days=6))
    cli("import", "payments", cli.file("pay.csv", paid))
    later = str(DUE + timedelta(days=90))
    text = cli("explain", "I1", "--as-of", later)
    assert "Paid: nothing is owed on this invoice" in text
    assert "Days overdue" not in text
    [shown] = cli.json("explain", "I1", "--as-of", later)
    assert shown["invoice_status"] == "paid" and shown["days_overdue"] is None


@pytest.mark.parametrize(
    "command",
    [["plan", "show"], ["explain"], ["document", "show"], ["plan", "email"], ["events", "deliver"]],
)
def test_json_help_says_one_object_where_one_is_printed(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "an array holding one object" in result.stdout
    assert "JSON array instead of a table" not in result.stdout


def test_show_commands_print_an_array_of_one_object(cli: Cli) -> None:
    cli.setup()
    cli.run(5)
    [plan] = cli.plans()
    shown = cli.json("plan", "show", str(plan["id"]))
    assert isinstance(shown, list) and len(shown) == 1 and shown[0]["id"] == plan["id"]
    assert json.loads(json.dumps(shown))  # plain JSON
