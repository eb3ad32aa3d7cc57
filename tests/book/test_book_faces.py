"""What the faces use of the book: read schemas, write schemas validated like CSV rows,
the repository's pages, batch errors by field and row, and the import's conflict message."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.book import repository, rows
from recoup.book.customers import customer_detail, import_customers, list_customers
from recoup.book.invoices import import_invoices
from recoup.book.payments import import_payments
from recoup.book.schemas import (
    CustomerCreate,
    CustomerDetailRead,
    CustomerRead,
    CustomerUpdate,
    InvoiceCreate,
    InvoiceRead,
    InvoiceUpdate,
    PaymentCreate,
)
from recoup.cli.main import app
from recoup.core.db import unit_of_work
from recoup.core.errors import FieldError, InvalidInput, NotFound
from recoup.core.schemas import decode_cursor
from tests.factories import make_customer, make_invoice, write_csv

runner = CliRunner()


def messages(exc: ValidationError) -> list[tuple[tuple[Any, ...], str]]:
    return [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]


def row_messages(parse: Any, values: dict[str, str]) -> list[tuple[str, str]]:
    result = parse(rows.SourceRow(2, values))
    assert isinstance(result, list)
    return [(e.field, e.message) for e in result]


# --- write schemas: the CSV row's checks, not a second set -----------------------------------


def test_customer_create_is_checked_like_a_row() -> None:
    values = {"id": "C1", "name": "Acme", "email": "not-an-email", "country": "XX"}
    with pytest.raises(ValidationError) as caught:
        CustomerCreate(id="C1", name="Acme", email="not-an-email", country="XX")
    assert [(loc[0], msg) for loc, msg in messages(caught.value)] == row_messages(
        rows.parse_customer, values
    )
    ok = CustomerCreate(id="C1", name="Acme", is_company=True, attributes={"tier": "gold"})
    assert ok.row() == {"id": "C1", "name": "Acme", "is_company": "true", "tier": "gold"}


def test_customer_attributes_and_update() -> None:
    with pytest.raises(ValidationError) as caught:
        CustomerCreate(id="C1", name="Acme", attributes={"email": "x@example.com"})
    assert messages(caught.value)[0][0] == ("attributes", "email")
    with pytest.raises(ValidationError) as caught:
        CustomerUpdate(name="")
    assert messages(caught.value) == [(("name",), "is required")]
    change = CustomerUpdate(excluded=True, attributes={"tier": None})
    assert change.row("C9") == {"id": "C9", "excluded": "true", "tier": ""}


def test_invoice_create_and_update_are_checked_like_rows() -> None:
    with pytest.raises(ValidationError) as caught:
        InvoiceCreate(
            id="I1",
            customer_id="C1",
            number="N1",
            issue_date=date(2026, 2, 1),
            due_date=date(2026, 1, 1),
            currency="EUR",
            amount=Decimal("1.234"),
        )
    assert messages(caught.value) == [
        (("amount",), "1.234 has more decimal places than EUR allows (2)"),
        (("due_date",), "2026-01-01 is before the issue date 2026-02-01"),
    ]
    with pytest.raises(ValidationError) as caught:
        InvoiceCreate(
            id="I1",
            customer_id="C1",
            number="N1",
            issue_date=date(2026, 1, 1),
            due_date=date(2026, 1, 31),
            currency="EUR",
            amount=Decimal("100"),
            amount_due=Decimal("120"),
        )
    assert messages(caught.value) == [
        (("amount_due",), "120 is not between 0 and the amount 100"),
    ]
    with pytest.raises(ValidationError) as caught:
        InvoiceCreate(
            id="I1",
            customer_id="C1",
            number="N1",
            issue_date=date(2026, 1, 1),
            due_date=date(2026, 1, 31),
            currency="EUR",
            amount="1e3",
        )
    assert "exponent notation" in messages(caught.value)[0][1]
    with pytest.raises(ValidationError) as caught:
        InvoiceUpdate(status="settled")
    assert messages(caught.value) == [
        (("status",), "'settled' is not one of open, partially_paid, paid, cancelled")
    ]
    InvoiceUpdate(due_date=date(2026, 3, 1))  # one field alone: fine


def test_payment_create() -> None:
    with pytest.raises(ValidationError) as caught:
        PaymentCreate(
            id="P1", customer_id="C1", amount=Decimal(0), currency="EUR", date="2026-01-01"
        )
    assert messages(caught.value) == [(("amount",), "0 must be greater than 0")]
    payment = PaymentCreate(
        id="P1", customer_id="C1", amount="12.50", currency="eur", date="2026-01-01"
    )
    assert payment.row() == {
        "id": "P1",
        "customer_id": "C1",
        "invoice_id": "",
        "amount": "12.50",
        "currency": "eur",
        "date": "2026-01-01",
    }


# --- the services take the write schemas' rows; the reads show what the CLI prints ------------


def test_write_schemas_feed_the_imports(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        import_customers(session, [CustomerCreate(id="C1", name="Acme", currency="EUR").row()])
        import_invoices(
            session,
            [
                InvoiceCreate(
                    id="I1",
                    customer_id="C1",
                    number="N1",
                    issue_date=date(2026, 1, 1),
                    due_date=date(2026, 1, 31),
                    currency="EUR",
                    amount=Decimal("100.00"),
                ).row()
            ],
            on=date(2026, 1, 1),
        )
        import_payments(
            session,
            [
                PaymentCreate(
                    id="P1", customer_id="C1", amount="30", currency="EUR", date="2026-02-01"
                ).row()
            ],
        )
    with unit_of_work(session_factory) as session:
        invoice = repository.get_invoice_or_not_found(session, "I1")
        assert (invoice.amount_due, invoice.status) == (Decimal("70.00"), "partially_paid")
        change = InvoiceUpdate(number="N1-bis")
        report = import_invoices(session, [change.row(invoice)], on=date(2026, 2, 2))
        assert (report.updated, invoice.number, invoice.amount_due) == (1, "N1-bis", Decimal(70))
        summaries, next_cursor = list_customers(session)
        assert next_cursor is None
        assert CustomerRead.model_validate(summaries[0]).model_dump(mode="json") == {
            "id": "C1",
            "name": "Acme",
            "status": "active",
            "currency": "EUR",
            "balance": "70.00",
            "open_plans": 0,
            "balances": {"EUR": "70.00"},
            "email": None,
            "phone": None,
            "excluded": False,
        }
        detail = CustomerDetailRead.of(customer_detail(session, "C1")).model_dump(mode="json")
        assert detail["invoices"] == [
            InvoiceRead.model_validate(invoice).model_dump(mode="json"),
        ]
        assert detail["invoices"][0] == {
            "id": "I1",
            "number": "N1-bis",
            "type": "commercial",
            "due_date": "2026-01-31",
            "amount_due": "70.00",
            "currency": "EUR",
            "status": "partially_paid",
            "disputed": False,
        }


# --- repository --------------------------------------------------------------------------------


def test_pages_and_not_found(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        for n in range(5):
            customer = make_customer(session, id=f"C{n}")
            make_invoice(session, customer, f"I{n}", due_date=date(2026, 1, 5 - n))
        make_invoice(session, "C0", "I9", status="paid", amount_due="0")
    with unit_of_work(session_factory) as session:
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = repository.list_customers(session, cursor=cursor, limit=2)
            seen.extend(c.id for c in page)
            if cursor is None:
                break
            assert decode_cursor(cursor)
        assert seen == ["C0", "C1", "C2", "C3", "C4"]
        first, cursor = repository.list_invoices(session, open_only=True, limit=3)
        assert [i.id for i in first] == ["I4", "I3", "I2"]
        rest, end = repository.list_invoices(session, open_only=True, cursor=cursor, limit=3)
        assert ([i.id for i in rest], end) == (["I1", "I0"], None)
        mine, _ = repository.list_invoices(session, customer_id="C0", status="paid")
        assert [i.id for i in mine] == ["I9"]
        with pytest.raises(InvalidInput):
            repository.list_invoices(session, cursor="bm90LWEtY3Vyc29y")
        with pytest.raises(NotFound, match="customer 'NOPE' not found"):
            repository.get_customer_or_not_found(session, "NOPE")
        with pytest.raises(NotFound, match="invoice 'NOPE' not found"):
            repository.get_invoice_or_not_found(session, "NOPE")


# --- errors ------------------------------------------------------------------------------------


def test_a_refused_batch_names_each_row_by_index(session_factory: sessionmaker[Session]) -> None:
    batch = [
        {"id": "C1", "name": "Good"},
        {"id": "C2", "name": "Bad", "email": "nope"},
        {"id": "C3", "name": ""},
    ]
    with unit_of_work(session_factory) as session, pytest.raises(InvalidInput) as caught:
        import_customers(session, batch)
    assert caught.value.status_code == 422
    assert caught.value.details == [
        "line 3, email: 'nope' is not a valid email address",
        "line 4, name: is required",
    ]
    assert caught.value.errors == [
        FieldError("email", "'nope' is not a valid email address", 1),
        FieldError("name", "is required", 2),
    ]


def test_two_imports_of_the_same_new_rows_at_once(
    env: dict[str, str],
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database refuses the second writer of a new row; the CLI says so in its words."""
    with unit_of_work(session_factory) as session:
        make_customer(session, id="C1")
    # as if another import had created C1 after this one looked
    monkeypatch.setattr(repository, "customers_by_id", lambda session, ids: {})
    path = write_csv(tmp_path / "customers.csv", ["id", "name"], [["C1", "Acme"]])
    result = runner.invoke(app, ["import", "customers", str(path)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert (
        f"error: {path}: the same rows were changed at the same time by someone else; "
        "nothing was imported, run the import again" in out
    )
