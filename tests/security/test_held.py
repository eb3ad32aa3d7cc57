"""Issue 8, "What held, and must keep holding": each defence that held when Recoup was probed
keeps a test here, so the whole list runs on every change. Where a test elsewhere already
proves one, a thin test here calls it (its helpers are imported, not copied).

Covered elsewhere in tests/security/ by their owners: Jinja sandbox escapes and YAML tags,
hostile files and control characters, poison actions."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.email import write_outbox
from recoup.documents.service import letter_path
from recoup.domain import signature
from recoup.domain.signature import signature_header, verify_signature
from recoup.models import ActionInstance, Customer, Invoice
from tests.runs import test_run_exactly_once as exactly_once
from tests.runs.test_run_e2e import DUE, POLICY_YAML, Cli, invoice_csv, outbox

HOSTILE_CUSTOMER = "x'); DROP TABLE customers; --"
HOSTILE_INVOICE = "../../../../tmp/recoup-escape'); DROP TABLE invoices; --"
HOSTILE_NAME = "Robert'); DROP TABLE invoices;--"
SECRET = "whsec_held"


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _configured(cli: Cli) -> None:
    cli("init")
    policy = POLICY_YAML.format(
        mode="invoice", catch_up="latest", transition="days_overdue", second_min=""
    )
    cli("config", "apply", cli.file("policy.yaml", policy))


def _count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- imports -------------------------------------------------------------------------------


def test_a_non_utf8_csv_is_refused_with_its_line(
    cli: Cli, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _configured(cli)
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"id,name,email,language,currency\n"
        b"C1,Acme,a@acme.test,en,EUR\n"
        b"C2,Soci\xe9t\xe9 G\xe9n\xe9rale,b@sg.test,fr,EUR\n"
    )
    said = " ".join(cli("import", "customers", str(path), code=1).split())
    assert "line 3" in said and "not UTF-8" in said
    assert _count(session_factory, Customer) == 0  # nothing imported, not even line 2


def _writer_mid_transaction(db_url: str) -> bool:
    """Whether another connection holds an open write transaction now."""
    if db_url.startswith("sqlite"):
        probe = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # "database is locked": a writer is at work
            return True
        finally:
            probe.close()
    from recoup.core.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            writers = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
                )
            )
            return bool(writers)
    finally:
        engine.dispose()


def test_sigkill_during_an_import_leaves_nothing_half_imported(
    cli: Cli,
    env: dict[str, str],
    db_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    _configured(cli)
    rows = 10_000
    path = tmp_path / "customers.csv"
    path.write_text(
        "id,name,email,language,currency\n"
        + "".join(f"K{i},Customer {i},k{i}@example.test,en,EUR\n" for i in range(rows))
    )
    command = [sys.executable, "-m", "recoup.cli.main", "import", "customers", str(path)]
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not _writer_mid_transaction(db_url):  # killed while it writes, not before
        assert process.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _count(session_factory, Customer) == 0  # all or nothing: nothing
    cli("import", "customers", str(path))  # started again, it imports the whole file
    assert _count(session_factory, Customer) == rows


# --- runs ----------------------------------------------------------------------------------


def test_sigkill_of_a_run_produces_no_duplicate(
    env: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    # the proof lives with R13's tests: a run killed half-way, restarted, everything once
    exactly_once.test_run_killed_half_way_and_restarted_does_everything_once(env, tmp_path, db_url)


def test_a_run_imports_and_payments_at_once_stay_consistent(
    cli: Cli, env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A run (small chunks, executing), an invoice import and a payment import started
    together: every payment applied once, every paid plan recovered with nothing pending, one
    plan per invoice, each email written once."""
    _configured(cli)
    as_of = DUE + timedelta(days=10)
    customers = "id,name,email,language,currency\n" + "".join(
        f"C{c},Customer {c},c{c}@example.test,en,EUR\n" for c in range(20)
    )
    cli("import", "customers", cli.file("customers.csv", customers))
    old = [(f"I{i}", f"C{i % 20}", DUE - timedelta(days=i % 5), "100.00", "EUR") for i in range(60)]
    cli("import", "invoices", cli.file("invoices.csv", invoice_csv(*old)))
    new = [(f"N{i}", f"C{i % 20}", DUE, "80.00", "EUR") for i in range(20)]
    paid = range(0, 60, 2)
    payments = "id,customer_id,invoice_id,amount,currency,date\n" + "".join(
        f"P{i},C{i % 20},I{i},100.00,EUR,{as_of}\n" for i in paid
    )
    child_env = {**os.environ, **env, "RECOUP_RUN_CHUNK": "6"}
    commands = [
        ["run", "--as-of", as_of.isoformat(), "--quiet"],
        ["import", "invoices", cli.file("new.csv", invoice_csv(*new))],
        ["import", "payments", cli.file("payments.csv", payments)],
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "recoup.cli.main", *command],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    for process in processes:
        _out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    cli.run(as_of)  # the same day again settles what the first run saw before the payments
    with session_factory() as s:
        rows = s.execute(
            text(
                "SELECT i.id, i.amount_due, i.status, p.status, p.balance, "
                "(SELECT count(*) FROM action_instances a WHERE a.plan_id = p.id "
                " AND a.status IN ('pending', 'running')) "
                "FROM invoices i LEFT JOIN plans p ON p.invoice_id = i.id"
            )
        ).all()
        payments_logged = s.scalar(
            text("SELECT count(*) FROM log_entries WHERE event = 'payment_recorded'")
        )
        allocated = s.scalar(text("SELECT count(*) FROM payment_allocations"))
        emails_done = s.scalar(
            text(
                "SELECT count(*) FROM action_instances WHERE type = 'send_email' AND status = 'done'"
            )
        )
    by_invoice: dict[str, list[tuple[object, ...]]] = {}
    for row in rows:
        by_invoice.setdefault(row[0], []).append(tuple(row))
    assert len(by_invoice) == 80  # every new invoice imported
    assert all(len(plans) == 1 for plans in by_invoice.values())  # one plan per invoice
    for i in paid:
        [(_, amount_due, status, plan_status, _, pending)] = by_invoice[f"I{i}"]
        assert (amount_due, status) == (0, "paid")  # each payment applied, once
        assert plan_status in (None, "recovered") and pending == 0, _story(session_factory, f"I{i}")
    for [(_, amount_due, _, plan_status, balance, _)] in by_invoice.values():
        if plan_status == "active":
            assert balance == amount_due > 0
    assert payments_logged == allocated == len(paid)
    assert len(outbox(env)) == emails_done  # each email written once, by its instance


def _story(factory: sessionmaker[Session], invoice_id: str) -> str:
    with factory() as s:
        rows = s.execute(
            text(
                "SELECT id, at, event, plan_id, details FROM log_entries WHERE invoice_id = :i "
                "OR plan_id IN (SELECT id FROM plans WHERE invoice_id = :i) ORDER BY id"
            ),
            {"i": invoice_id},
        ).all()
        plans = s.execute(
            text("SELECT * FROM plans WHERE invoice_id = :i"), {"i": invoice_id}
        ).all()
    return "\n".join(map(repr, rows + plans))


# --- SQL and file names --------------------------------------------------------------------


def test_hostile_ids_are_bound_as_data_and_flattened_in_file_names(
    cli: Cli, env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _configured(cli)
    customers = (
        "id,name,email,language,currency\n"
        f'"{HOSTILE_CUSTOMER}","{HOSTILE_NAME}",billing@acme.test,en,EUR\n'
    )
    cli("import", "customers", cli.file("customers.csv", customers))
    invoices = invoice_csv((HOSTILE_INVOICE, HOSTILE_CUSTOMER, DUE, "100.00", "EUR"))
    cli("import", "invoices", cli.file("invoices.csv", invoices))
    assert cli.run(-3)["reminders"] == 1  # the reminder's key holds the invoice id
    assert cli.run(5)["plans_opened"] == 1
    [plan] = cli.plans()
    assert (plan["customer_id"], plan["invoice_id"]) == (HOSTILE_CUSTOMER, HOSTILE_INVOICE)
    assert HOSTILE_INVOICE in " ".join(cli("explain", HOSTILE_INVOICE).split())
    with session_factory() as s:
        customer = s.get(Customer, HOSTILE_CUSTOMER)
        assert customer is not None and customer.name == HOSTILE_NAME
        assert s.get(Invoice, HOSTILE_INVOICE) is not None
        tables = set(inspect(s.get_bind()).get_table_names())
    assert {"customers", "invoices"} <= tables
    folder = (Path(env["RECOUP_DATA_DIR"]) / "outbox").resolve()
    emails = outbox(env)
    assert len(emails) == 2
    for path in emails:
        assert path.resolve().parent == folder  # flattened: no "/" left in the name
    assert not Path("/tmp/recoup-escape").exists()


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "..", "/abs/path", "a/../../b", "..\\x"])
def test_letter_and_outbox_names_stay_in_their_folder(tmp_path: Path, hostile: str) -> None:
    documents = tmp_path / "documents"
    instance = ActionInstance(id=7, plan_id=None, invoice_id=hostile, level=hostile, action=hostile)
    path = letter_path(documents, instance)
    assert path.resolve().parent.parent == documents.resolve()
    assert "/" not in path.name and "/" not in path.parent.name
    written = write_outbox(EmailMessage(), tmp_path / "outbox", instance_id=7, key=hostile)
    assert written.resolve().parent == (tmp_path / "outbox").resolve()


# --- webhook signatures --------------------------------------------------------------------


def test_webhook_signatures_verified_in_constant_time_within_300_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = b'{"id":"evt_1","balance":"100.00"}'
    sent = 1_700_000_000
    header = signature_header(SECRET, sent, body)
    expected = hmac.new(SECRET.encode(), f"{sent}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={sent},v1={expected}"  # what a receiver recomputes
    tolerance = int(timedelta(minutes=5).total_seconds())
    assert verify_signature(SECRET, header, body, now=sent + tolerance)
    assert verify_signature(SECRET, header, body, now=sent - tolerance)  # a clock ahead
    assert not verify_signature(SECRET, header, body, now=sent + tolerance + 1)  # a replay
    assert not verify_signature(SECRET, header, body, now=sent - tolerance - 1)
    assert not verify_signature(SECRET, header, body.replace(b"100", b"900"), now=sent)
    assert not verify_signature("another secret", header, body, now=sent)
    moved = header.replace(f"t={sent}", f"t={sent + 60}")  # a timestamp moved: no longer signed
    assert not verify_signature(SECRET, moved, body, now=sent + 60)
    assert not verify_signature(SECRET, f"t={sent},v1=", body, now=sent)
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    assert verify_signature(SECRET, f"t={sent},v1=0000,v1={expected}", body, now=sent)
    assert compared and all(a == expected for a, _ in compared)  # never `==` on the secret
