"""Hostile values in CSV imports (issue 8, items 1, 8 and 9), on SQLite and PostgreSQL.

A NUL byte once gave a PostgreSQL traceback printing the row's personal data (and went raw into
an email header on SQLite); an ANSI escape in an invoice id was replayed by every terminal
printing plans and the log; a name with CR/LF was accepted and then failed every email, retried
as if the failure were transient; a pdf_path could name any file. Each is now refused at import
with its line and field, and the whole file imports nothing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.book.customers import import_customers
from recoup.cli.main import app
from recoup.core.db import unit_of_work
from recoup.core.errors import InvalidInput
from recoup.documents.service import letter_path
from recoup.messages.email import safe_filename
from recoup.models import ActionInstance, Customer, Invoice, LogEntry, Payment
from tests.actions.test_actions_email import SmtpServer, _setup, smtp_server  # noqa: F401
from tests.factories import execute, make_customer, make_env, make_invoice

runner = CliRunner()


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _import(kind: str, path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["import", kind, str(path)])
    return result.exit_code, " ".join(result.output.split())  # rich's wrapping undone


CUSTOMERS = ["id", "name", "email", "address", "segment"]
INVOICES = ["id", "customer_id", "number", "issue_date", "due_date", "currency", "amount"]
PAYMENTS = ["id", "customer_id", "invoice_id", "amount", "currency", "date"]


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("name", "Dupont\x00SA", "U+0000"),  # NUL
        ("name", "Dupont SA\r\nBcc: everyone@example.com", "U+000D"),
        ("name", "Dupont\nSA", "U+000A"),
        ("name", "Dupont\tSA", "U+0009"),  # a tab is not part of a one-line name
        ("name", "Dupont\x1b[2J SA", "U+001B"),  # an ANSI escape
        ("name", "Dupont\x7fSA", "U+007F"),  # DEL
        ("name", "Dupont\x85SA", "U+0085"),  # C1: NEL
        ("name", "Dupont\x9b2JSA", "U+009B"),  # C1: CSI
        ("name", "Dupont\u2028SA", "U+2028"),  # Unicode line separator
        ("id", "C\x1b[31m1", "U+001B"),
        ("email", "a\x00@example.com", "U+0000"),
        ("segment", "gold\x00", "U+0000"),  # an attribute
        ("address", "4 place du Marché\x0069001 Lyon", "U+0000"),
    ],
)
def test_customer_control_characters_are_refused(
    env: dict[str, str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    column: str,
    value: str,
    code: str,
) -> None:
    row = {
        "id": "C1",
        "name": "Dupont SA",
        "email": "compta@dupont.example",
        "address": "4 place du Marché\n69001 Lyon",
        "segment": "gold",
    }
    good = dict(row, id="C2")
    row[column] = value
    path = _csv(tmp_path / "c.csv", CUSTOMERS, [list(good.values()), list(row.values())])

    exit_code, output = _import("customers", path)

    assert exit_code == 1, output
    # line 4: the good row's address spans lines 2 and 3 of the file
    assert f"line 4, {column}: contains" in output and code in output
    assert "Traceback" not in output and "compta@dupont.example" not in output
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_multi_line_address_is_accepted(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    address = "Boulangerie Dupont\r\n4 place du Marché\n\t69001 Lyon"
    path = _csv(tmp_path / "c.csv", CUSTOMERS, [["C1", "Dupont SA", "", address, ""]])
    assert _import("customers", path)[0] == 0
    with session_factory() as session:
        customer = session.get(Customer, "C1")
        assert customer is not None and customer.address == address


def test_a_control_character_in_a_column_name_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = _csv(tmp_path / "c.csv", ["id", "name", "seg\x1bment"], [["C1", "Dupont SA", "x"]])
    exit_code, output = _import("customers", path)
    assert exit_code == 1 and "line 1, header: a column name contains" in output


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("id", "I\x1b[31m1"),
        ("id", "I1\x00"),
        ("number", "F-2024\r\n-001"),
        ("customer_id", "C1\x00"),
        ("amount", "100\x00"),
        ("due_date", "2026-01-31\x00"),
    ],
)
def test_invoice_control_characters_are_refused(
    env: dict[str, str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    column: str,
    value: str,
) -> None:
    with unit_of_work(session_factory) as session:
        make_customer(session, id="C1")
    row = dict(
        zip(INVOICES, ["I1", "C1", "F-1", "2026-01-01", "2026-01-31", "EUR", "100"], strict=True)
    )
    row[column] = value
    path = _csv(tmp_path / "i.csv", INVOICES, [list(row.values())])

    exit_code, output = _import("invoices", path)

    assert exit_code == 1, output
    assert f"line 2, {column}: contains" in output
    assert output.count("line 2") == 1  # one error for the cell, not one per check
    assert "\x1b" not in output and "\x00" not in output and "Traceback" not in output
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 0


@pytest.mark.parametrize("column", ["id", "customer_id", "invoice_id"])
def test_payment_control_characters_are_refused(
    env: dict[str, str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    column: str,
) -> None:
    with unit_of_work(session_factory) as session:
        make_invoice(session, make_customer(session, id="C1"), id="I1")
    row = dict(zip(PAYMENTS, ["P1", "C1", "I1", "10.00", "EUR", "2026-02-01"], strict=True))
    row[column] += "\x00"
    path = _csv(tmp_path / "p.csv", PAYMENTS, [list(row.values())])

    exit_code, output = _import("payments", path)

    assert exit_code == 1, output
    assert f"line 2, {column}: contains a control character (U+0000)" in output
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_rows_given_as_data_are_checked_the_same(session_factory: sessionmaker[Session]) -> None:
    """The API's path into the same importer (rows as dicts)."""
    with unit_of_work(session_factory) as session, pytest.raises(InvalidInput) as caught:
        import_customers(session, [{"id": "C1", "name": "Dupont\r\nSA"}])
    assert caught.value.details == [
        "line 2, name: contains a line break (U+000D), not allowed in this field"
    ]


@pytest.mark.parametrize(
    ("pdf_path", "reason"),
    [
        ("/etc/passwd", "must be a path relative to the invoice folder"),
        ("/proc/self/environ", "must be a path relative to the invoice folder"),
        ("../../../../etc/shadow", "must not contain '..'"),
        ("2024/../../recoup.db", "must not contain '..'"),
        ("..\\..\\recoup.db", "must not contain '..'"),
        ("C:\\invoices\\F-1.pdf", "must be a path relative to the invoice folder"),
    ],
)
def test_pdf_path_leaving_the_invoice_folder_is_refused(
    env: dict[str, str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    pdf_path: str,
    reason: str,
) -> None:
    with unit_of_work(session_factory) as session:
        make_customer(session, id="C1")
    row = ["I1", "C1", "F-1", "2026-01-01", "2026-01-31", "EUR", "100"]
    path = _csv(
        tmp_path / "i.csv",
        [*INVOICES, "pdf_path"],
        [[*row[:1], *row[1:], pdf_path], ["I2", *row[1:], "2024/F-2.pdf"]],
    )

    exit_code, output = _import("invoices", path)

    assert exit_code == 1, output
    assert f"line 2, pdf_path: {pdf_path!r} {reason}" in output
    assert "line 3" not in output  # a path inside the folder is fine
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 0


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Dupont SA\r\nBcc: everyone@example.com", "U+000D"),
        ("Dupont\x00SA", "U+0000"),  # went raw into the To header
        ("Dupont \x1b[31mSA", "U+001B"),
    ],
)
def test_a_stored_name_with_a_line_break_fails_the_email_once_not_five_times(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
    name: str,
    code: str,
) -> None:
    """Stored before imports refused it: a header injection is a permanent failure."""
    instance_id = _setup(session_factory, language="en")
    if "\x00" in name and not db_url.startswith("sqlite"):
        # only SQLite ever stored one: PostgreSQL refuses the value itself
        with pytest.raises(DataError), session_factory() as session, session.begin():
            customer = session.get(Customer, "C1")
            assert customer is not None
            customer.name = name
        return
    with session_factory() as session, session.begin():
        customer = session.get(Customer, "C1")
        assert customer is not None
        customer.name = name

    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp_server.url))

    assert (stats.failed, stats.retried) == (1, 0)
    assert smtp_server.collector.envelopes == []
    with session_factory() as session:
        instance = session.get(ActionInstance, instance_id)
        assert instance is not None and instance.status == "failed" and instance.attempts == 1
        assert instance.error is not None and "To header" in instance.error
        assert f"control character ({code})" in instance.error
        events = session.scalars(select(LogEntry.event)).all()
        assert "action_retry" not in events and "action_failed" in events


# --- what held, and must keep holding ------------------------------------------------------


def test_a_file_that_is_not_utf8_is_refused_with_its_line(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,name\nC1,Dupont\nC2,Müller\n".encode("latin-1"))
    exit_code, output = _import("customers", path)
    assert exit_code == 1
    assert "line 3, file: is not UTF-8 text" in output
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_ids_with_path_parts_are_flattened_in_file_names(tmp_path: Path) -> None:
    documents = tmp_path / "documents"
    instance = ActionInstance(
        id=7, plan_id=None, invoice_id="../../../etc/cron.d/x", level="../..", action="a/../b"
    )
    path = letter_path(documents, instance)
    assert path.parent.parent == documents
    assert path.resolve().is_relative_to(documents)
    assert all(not part.startswith(".") for part in path.relative_to(documents).parts)
    assert "/" not in safe_filename("../../etc/passwd")
