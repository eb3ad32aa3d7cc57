"""`recoup documents`, `document show` and `template preview` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from babel.numbers import format_currency
from click.testing import Result
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.env import load_env
from tests.documents.test_letters import AMOUNT_1, AMOUNT_2, letter_book, normalise, pdf_text
from tests.factories import execute, make_acme_customer, make_acme_invoice, make_template

runner = CliRunner()


def recoup(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_documents_listing_and_show(
    session_factory: sessionmaker[Session], env: dict[str, str]
) -> None:
    book = letter_book(session_factory)
    execute(session_factory, load_env())

    result = recoup("documents", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert set(row) == {"id", "plan_id", "kind", "path", "invoice_ids", "created_at"}
    assert row["plan_id"] == book.plan_id and row["kind"] == "letter"
    assert sorted(row["invoice_ids"]) == ["I1", "I2"]
    assert Path(row["path"]).is_file()

    assert json.loads(recoup("documents", "--plan", str(book.plan_id), "--json").output) == [row]
    assert json.loads(recoup("documents", "--invoice", "I2", "--json").output) == [row]
    assert json.loads(recoup("documents", "--invoice", "NOPE", "--json").output) == []
    assert json.loads(recoup("documents", "--plan", "999", "--json").output) == []

    table = recoup("documents")
    assert table.exit_code == 0 and "letter" in table.output

    shown = recoup("document", "show", str(row["id"]), "--path")
    assert shown.exit_code == 0 and shown.output.strip() == row["path"]
    detail = json.loads(recoup("document", "show", str(row["id"]), "--json").output)
    assert detail[0]["exists"] is True

    missing = recoup("document", "show", "999")
    assert missing.exit_code == 1 and "no document 999" in missing.output


def test_template_preview_of_an_email_prints_the_rendered_subject(
    session_factory: sessionmaker[Session], env: dict[str, str]
) -> None:
    with session_factory() as session, session.begin():
        customer = make_acme_customer(session, "C1", language="fr")
        make_acme_invoice(session, customer, "I1", number="F-77", amount=AMOUNT_1)
        make_template(
            session, "notice", subject="Facture {{ invoice.number }} : {{ balance|money }}"
        )
        make_template(
            session,
            "notice",
            language="fr",
            subject="Facture {{ invoice.number }} : {{ balance|money }}",
            body="Bonjour {{ customer.name }}, échéance {{ invoice.due_date|date }}.",
        )
    result = recoup("template", "preview", "notice", "--invoice", "I1")
    assert result.exit_code == 0, result.output
    amount = format_currency(AMOUNT_1, "EUR", locale="fr")
    assert f"subject: Facture F-77 : {amount}" in result.output
    assert "Bonjour Acme SARL, échéance 1 janv. 2024." in normalise(result.output)

    english = recoup("template", "preview", "notice", "--invoice", "I1", "--language", "en")
    assert "template: notice (email, en)" in english.output
    assert "Dear Acme SARL" in english.output
    assert f"subject: Facture F-77 : {format_currency(AMOUNT_1, 'EUR', locale='en')}" in (
        english.output
    )

    again = recoup("template", "preview", "notice", "--invoice", "I1")
    assert "template: notice (email, fr)" in again.output  # the customer was not changed

    unknown = recoup("template", "preview", "nope", "--invoice", "I1")
    assert unknown.exit_code == 1 and "no template nope" in unknown.output
    wrong = recoup("template", "preview", "notice", "--invoice", "I1", "--channel", "letter")
    assert wrong.exit_code == 1 and "no active template notice (letter)" in wrong.output
    no_invoice = recoup("template", "preview", "notice", "--invoice", "X")
    assert no_invoice.exit_code == 1 and "no invoice X" in no_invoice.output


def test_template_preview_of_a_letter_writes_the_pdf(
    session_factory: sessionmaker[Session], env: dict[str, str], tmp_path: Path
) -> None:
    letter_book(session_factory)
    out = tmp_path / "preview.pdf"
    result = recoup(
        "template",
        "preview",
        "final_letter",
        "--invoice",
        "I2",
        "--as-of",
        str(date(2024, 3, 1)),
        "--output",
        str(out),
    )
    assert result.exit_code == 0, result.output
    amount = format_currency(AMOUNT_1 + AMOUNT_2, "EUR", locale="fr")
    assert f"subject: Mise en demeure : {amount}" in result.output
    assert f"pdf: {out.resolve()}" in result.output
    text = pdf_text(out)
    assert "F-2024-0012" in text and "F-2024-0031" in text
    assert normalise(amount) in text
    # a preview stores nothing
    assert json.loads(recoup("documents", "--json").output) == []
