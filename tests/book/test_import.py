"""CSV import (SPEC §5) and payments (R8), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.book import rows as book_rows
from recoup.book.customers import import_customers
from recoup.book.invoices import import_invoices
from recoup.book.payments import import_payments
from recoup.cli.main import app
from recoup.core.db import unit_of_work
from recoup.core.errors import InvalidInput
from recoup.models import (
    ActionInstance,
    Customer,
    Invoice,
    InvoiceCheck,
    LogEntry,
    Payment,
    PaymentAllocation,
    Plan,
    Task,
)
from recoup.schedule.service import CHECK_NOW, check_on
from tests.factories import (
    make_action_instance,
    make_customer,
    make_customer_plan,
    make_invoice,
    make_plan,
    make_policy,
    make_settings,
    write_csv,
)

runner = CliRunner()

CUSTOMER_HEADER = [
    "id",
    "name",
    "email",
    "phone",
    "language",
    "country",
    "currency",
    "category",
    "is_company",
    "payment_method",
    "policy",
    "status",
    "excluded",
]
INVOICE_HEADER = [
    "id",
    "customer_id",
    "number",
    "type",
    "issue_date",
    "due_date",
    "currency",
    "amount",
    "amount_due",
    "status",
    "disputed",
]
PAYMENT_HEADER = ["id", "customer_id", "invoice_id", "amount", "currency", "date"]


def flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, flat(result.output)


def customer_row(cid: str, **kw: str) -> list[str]:
    values = {
        "id": cid,
        "name": f"Customer {cid}",
        "email": f"{cid.lower()}@example.com",
        "phone": "+33 1 23 45 67 89",
        "language": "fr",
        "country": "FR",
        "currency": "EUR",
        "category": "smb",
        "is_company": "yes",
        "payment_method": "card",
        "policy": "",
        "status": "active",
        "excluded": "no",
    }
    values.update(kw)
    return [values[c] for c in CUSTOMER_HEADER]


def invoice_row(iid: str, cid: str = "C1", **kw: str) -> list[str]:
    values = {
        "id": iid,
        "customer_id": cid,
        "number": f"N-{iid}",
        "type": "commercial",
        "issue_date": "2026-01-01",
        "due_date": "2026-01-31",
        "currency": "EUR",
        "amount": "100.00",
        "amount_due": "100.00",
        "status": "open",
        "disputed": "false",
    }
    values.update(kw)
    return [values[c] for c in INVOICE_HEADER]


def seed(session_factory: sessionmaker[Session], fn) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(session_factory) as session:
        fn(session)


# --- pure parsing (no database) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("amount", "12,50", "is not a decimal amount"),
        ("amount", "1.23456", "more than 4 decimal places"),
        ("amount", "1.234", "more decimal places than EUR allows (2)"),
        ("amount", "-5", "is negative"),
        ("amount", "", "is required"),
        ("amount_due", "150.00", "is not between 0 and the amount 100.00"),
        ("due_date", "31/01/2026", "is not a date"),
        ("due_date", "2025-12-01", "is before the issue date"),
        ("currency", "EURO", "is not an ISO 4217 currency code"),
        ("status", "overdue", "is not one of open, partially_paid, paid, cancelled"),
        ("disputed", "maybe", "is not a boolean"),
    ],
)
def test_invoice_row_errors(column: str, value: str, message: str) -> None:
    values = dict(zip(INVOICE_HEADER, invoice_row("I1"), strict=True))
    values[column] = value
    result = book_rows.parse_invoice(book_rows.SourceRow(7, values))
    if isinstance(result, book_rows.InvoiceIn):
        result = book_rows.resolve_balance(result, None, None)
    assert isinstance(result, list), result
    assert any(e.line == 7 and e.field == column and message in e.message for e in result), result


@pytest.mark.parametrize(
    ("currency", "amount", "ok"),
    [("JPY", "100", True), ("JPY", "100.5", False), ("KWD", "1.234", True), ("EUR", "1.500", True)],
)
def test_amount_respects_the_currency_minor_unit(currency: str, amount: str, ok: bool) -> None:
    cells = ["P1", "C1", "", amount, currency, "2026-02-01"]
    values = dict(zip(PAYMENT_HEADER, cells, strict=True))
    result = book_rows.parse_payment(book_rows.SourceRow(2, values))
    assert isinstance(result, book_rows.PaymentIn) is ok
    if ok:
        assert isinstance(result, book_rows.PaymentIn)
        assert result.amount == Decimal(amount)


@pytest.mark.parametrize(
    ("status", "amount_due", "existing", "expected"),
    [
        ("", "", None, ("open", Decimal("100.00"))),
        ("paid", "", None, ("paid", Decimal(0))),
        ("cancelled", "", None, ("cancelled", Decimal(0))),
        ("", "", ("partially_paid", Decimal("40")), ("partially_paid", Decimal("40"))),
        ("paid", "", ("partially_paid", Decimal("40")), ("paid", Decimal(0))),
        ("partially_paid", "", None, "is required when status is partially_paid"),
        ("paid", "10.00", None, "is still due on a paid invoice"),
    ],
)
def test_status_and_amount_due_resolution(
    status: str, amount_due: str, existing: tuple[str, Decimal] | None, expected: object
) -> None:
    values = dict(zip(INVOICE_HEADER, invoice_row("I1"), strict=True))
    values.update(status=status, amount_due=amount_due)
    parsed = book_rows.parse_invoice(book_rows.SourceRow(2, values))
    assert isinstance(parsed, book_rows.InvoiceIn)
    result = book_rows.resolve_balance(parsed, *(existing or (None, None)))
    if isinstance(expected, str):
        assert isinstance(result, list) and expected in result[0].message
    else:
        assert result == expected


def test_customer_row_checks_email_country_booleans() -> None:
    values = dict(zip(CUSTOMER_HEADER, customer_row("C1"), strict=True))
    values.update(email="not-an-email", country="France", is_company="si", segment="gold")
    result = book_rows.parse_customer(book_rows.SourceRow(3, values))
    assert isinstance(result, list)
    assert {e.field for e in result} == {"email", "country", "is_company"}
    values.update(email="a.b+c@example.co.uk", country="fr", is_company="1")
    parsed = book_rows.parse_customer(book_rows.SourceRow(3, values))
    assert isinstance(parsed, book_rows.CustomerIn)
    assert parsed.fields["country"] == "FR" and parsed.fields["is_company"] is True
    assert parsed.attributes == {"segment": "gold"}


@pytest.mark.parametrize(
    ("language", "country", "bad"),
    [
        ("xx", "FR", {"language"}),  # the right shape, but no such language
        ("en_XX", "GB", {"language"}),
        ("fr", "ZZ", {"country"}),  # CLDR's "unknown region"
        ("en", "UK", {"country"}),  # the ISO code is GB
        ("en", "EU", {"country"}),  # a region, not a country
        ("xx", "QQ", {"language", "country"}),
        ("pt-BR", "br", set()),
        ("de_CH", "CH", set()),
    ],
)
def test_customer_language_and_country_must_be_known(
    language: str, country: str, bad: set[str]
) -> None:
    values = dict(zip(CUSTOMER_HEADER, customer_row("C1"), strict=True))
    values.update(language=language, country=country)
    result = book_rows.parse_customer(book_rows.SourceRow(7, values))
    if not bad:
        assert isinstance(result, book_rows.CustomerIn)
        assert result.fields["country"] == country.upper()
        return
    assert isinstance(result, list)
    assert {e.field for e in result} == bad
    assert all(e.line == 7 for e in result)
    by_field = {e.field: e.message for e in result}
    if "language" in bad:
        assert repr(language) in by_field["language"] and "known language" in by_field["language"]
    if "country" in bad:
        assert repr(country) in by_field["country"] and "ISO 3166" in by_field["country"]


def test_physical_line_numbers_bom_and_semicolons() -> None:
    text = '\ufeffid;name;address\nC1;One;"1 rue X\nParis"\n\nC2;Two\nC3;Three;here\n'
    table = book_rows.read_csv_text(text)
    assert table.header == ["id", "name", "address"]
    assert [r.line for r in table.rows] == [2, 6]
    assert table.rows[0].values["address"] == "1 rue X\nParis"
    assert [str(e) for e in table.errors] == ["line 5, row: has 2 fields, the header has 3"]


def test_missing_required_columns_is_one_clear_error() -> None:
    errors = book_rows.check_header("invoices", ["id", "customer_id", "amount"])
    assert len(errors) == 1
    assert "missing required columns number, issue_date, due_date, currency" in str(errors[0])


def test_duplicate_ids_in_a_file() -> None:
    table = book_rows.table_from_dicts(
        [{"id": "C1", "name": "A"}, {"id": "C2", "name": "B"}, {"id": "C1", "name": "C"}]
    )
    values, errors = book_rows.parse_rows(table.rows, book_rows.parse_customer)
    assert [v.id for v in values] == ["C1", "C2"]
    assert [str(e) for e in errors] == [
        "line 4, id: 'C1' appears twice in the file (first on line 2)"
    ]


# --- customers ---------------------------------------------------------------------------------


def test_import_customers_then_upsert(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "customers.csv",
        [*CUSTOMER_HEADER, "segment", "seats"],
        [
            [*customer_row("C1"), "gold", "12"],
            [*customer_row("C2", is_company="false", excluded="1", email=""), "silver", ""],
        ],
    )
    code, out = invoke("import", "customers", str(path))
    assert code == 0, out
    assert "customers: 2 created, 0 updated, 0 unchanged" in out
    with session_factory() as session:
        c1 = session.get(Customer, "C1")
        c2 = session.get(Customer, "C2")
        assert c1 is not None and c2 is not None
        assert c1.attributes == {"segment": "gold", "seats": "12"}
        assert c1.is_company is True and c1.excluded is False and c1.language == "fr"
        assert c2.attributes == {"segment": "silver"}
        assert c2.is_company is False and c2.excluded is True and c2.email is None

    code, out = invoke("import", "customers", str(path))
    assert code == 0 and "0 created, 0 updated, 2 unchanged" in out

    # change C1's category, drop an attribute; a file without most columns keeps them
    path = write_csv(
        tmp_path / "customers2.csv",
        ["id", "name", "category", "seats"],
        [["C1", "Customer C1", "enterprise", ""], ["C3", "New", "", "3"]],
    )
    code, out = invoke("import", "customers", str(path), "--user", "alice")
    assert code == 0, out
    assert "1 created, 1 updated, 0 unchanged" in out
    with session_factory() as session:
        c1 = session.get(Customer, "C1")
        c3 = session.get(Customer, "C3")
        assert c1 is not None and c3 is not None
        assert c1.category == "enterprise" and c1.email == "c1@example.com"
        assert c1.attributes == {"segment": "gold"}
        assert c3.status == "active" and c3.attributes == {"seats": "3"}


def test_customer_change_that_matters_rechecks_open_invoices(
    session_factory: sessionmaker[Session],
) -> None:
    def setup(session: Session) -> None:
        customer = make_customer(session, id="C1", excluded=False)
        make_invoice(session, customer, id="I1")
        make_invoice(session, customer, id="I2", status="paid")

    seed(session_factory, setup)
    with unit_of_work(session_factory) as session:
        report = import_customers(session, [{"id": "C1", "name": "Customer C1", "excluded": "1"}])
        assert report.updated == 1 and report.rechecked == 1
    with session_factory() as session:
        assert check_on(session, "I1") == CHECK_NOW
        assert check_on(session, "I2") is None


# --- invoices ----------------------------------------------------------------------------------


def test_import_invoices_and_reimport_is_unchanged(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seed(session_factory, lambda s: make_customer(s, id="C1"))
    path = write_csv(
        tmp_path / "invoices.csv",
        [*INVOICE_HEADER, "pdf_path"],
        [
            [*invoice_row("I1"), "pdf/I1.pdf"],
            [*invoice_row("I2", amount="250.5", amount_due="", status="", type=""), ""],
            [*invoice_row("I3", amount_due="40.00", status="partially_paid"), ""],
            [*invoice_row("I4", currency="JPY", amount="12000", amount_due="12000"), ""],
        ],
    )
    code, out = invoke("import", "invoices", str(path))
    assert code == 0, out
    assert "invoices: 4 created, 0 updated, 0 unchanged" in out
    with session_factory() as session:
        i1, i2, i3, i4 = (session.get(Invoice, f"I{n}") for n in range(1, 5))
        assert i1 and i2 and i3 and i4
        assert i1.pdf_path == "pdf/I1.pdf" and check_on(session, "I1") == CHECK_NOW
        assert i2.amount_due == Decimal("250.5") and i2.status == "open"
        assert i2.type == "commercial"
        assert i3.status == "partially_paid" and i3.amount_due == Decimal("40")
        assert i4.amount == Decimal(12000) and i4.due_date == date(2026, 1, 31)
        session.execute(delete(InvoiceCheck))  # as if a run had looked at them
        session.commit()

    code, out = invoke("import", "invoices", str(path))
    assert code == 0 and "0 created, 0 updated, 4 unchanged" in out
    with session_factory() as session:  # nothing that matters changed: no recheck
        assert check_on(session, "I1") is None


def test_a_file_with_bad_rows_imports_nothing_and_lists_every_one(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seed(session_factory, lambda s: make_customer(s, id="C1"))
    path = write_csv(
        tmp_path / "invoices.csv",
        INVOICE_HEADER,
        [
            invoice_row("I1"),  # good
            invoice_row("I2", amount="ten"),
            invoice_row("I3", cid="NOPE"),
            invoice_row("I4", due_date="2026-02-30", currency="XYZ"),
            invoice_row("I1"),  # duplicate
            invoice_row("I6", amount_due="120.00"),
            invoice_row("I7"),  # good
        ],
    )
    code, out = invoke("import", "invoices", str(path))
    assert code == 1
    assert "invoices file not imported: 5 bad rows (nothing was changed)" in out
    for expected in (
        "line 3, amount: 'ten' is not a decimal amount",
        "line 4, customer_id: customer 'NOPE' not found",
        "line 5, due_date: '2026-02-30' is not a date",
        "line 5, currency: 'XYZ' is not an ISO 4217 currency code",
        "line 6, id: 'I1' appears twice in the file (first on line 2)",
        "line 7, amount_due: 120.00 is not between 0 and the amount 100.00",
    ):
        assert expected in out, (expected, out)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 0
        assert session.scalar(select(func.count()).select_from(LogEntry)) == 0


def test_header_missing_columns(env: dict[str, str], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", ["id", "customer_id", "amount"], [["P1", "C1", "5"]])
    code, out = invoke("import", "payments", str(path))
    assert code == 1
    assert "line 1, header: missing required columns currency, date" in out


def test_missing_file_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    code, out = invoke("import", "customers", str(tmp_path / "nope.csv"))
    assert code == 1 and "no such file" in out


def test_invoice_update_paid_closes_its_plan(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    def setup(session: Session) -> None:
        customer = make_customer(session, id="C1")
        invoice = make_invoice(session, customer, id="I1")
        plan = make_plan(session, invoice)
        make_action_instance(session, plan)

    seed(session_factory, setup)
    path = write_csv(
        tmp_path / "invoices.csv",
        INVOICE_HEADER,
        [invoice_row("I1", amount_due="0", status="paid")],
    )
    code, out = invoke("import", "invoices", str(path))
    assert code == 0, out
    assert "0 created, 1 updated" in out and "plans recovered: 1" in out
    with session_factory() as session:
        plan = session.scalars(select(Plan)).one()
        assert f"plans recovered: 1 (plan {plan.id})" in out
        assert plan.status == "recovered" and plan.open_key is None
        assert session.scalars(select(ActionInstance.status)).all() == ["cancelled"]


def test_invoice_import_changing_disputed_pauses_and_resumes_plan(
    session_factory: sessionmaker[Session],
) -> None:
    def setup(session: Session) -> None:
        make_invoice(session, make_customer(session, id="C1"), id="I1")
        make_plan(session, session.get(Invoice, "I1"))  # type: ignore[arg-type]

    seed(session_factory, setup)
    row = dict(zip(INVOICE_HEADER, invoice_row("I1", disputed="yes"), strict=True))
    with unit_of_work(session_factory) as session:
        report = import_invoices(session, [row], actor="ops", on=date(2026, 2, 20))
        assert report.updated == 1 and len(report.plans_paused) == 1
    with session_factory() as session:
        plan = session.scalars(select(Plan)).one()
        assert plan.status == "paused" and plan.pause_reason == "dispute"
        events = session.scalars(select(LogEntry.event).order_by(LogEntry.id)).all()
        assert events == ["invoice_disputed", "plan_paused"]
    row["disputed"] = "no"
    with unit_of_work(session_factory) as session:
        report = import_invoices(session, [row], actor="ops", on=date(2026, 2, 25))
        assert len(report.plans_resumed) == 1
    with session_factory() as session:
        plan = session.scalars(select(Plan)).one()
        assert plan.status == "active" and plan.paused_days == 5


def test_invoice_currency_cannot_change_once_paid_into(
    session_factory: sessionmaker[Session],
) -> None:
    def setup(session: Session) -> None:
        make_invoice(session, make_customer(session, id="C1"), id="I1")

    seed(session_factory, setup)
    with unit_of_work(session_factory) as session:
        import_payments(
            session,
            [
                {
                    "id": "P1",
                    "customer_id": "C1",
                    "invoice_id": "I1",
                    "amount": "10",
                    "currency": "EUR",
                    "date": "2026-02-01",
                }
            ],
        )
    with unit_of_work(session_factory) as session, pytest.raises(InvalidInput) as caught:
        row = dict(zip(INVOICE_HEADER, invoice_row("I1", currency="USD"), strict=True))
        row["amount_due"] = "90.00"
        import_invoices(session, [row])
    assert "line 2, currency: cannot change from EUR to USD" in str(caught.value)


# --- payments (R8) -----------------------------------------------------------------------------


def payment(
    pid: str,
    amount: str,
    *,
    invoice: str = "",
    customer: str = "C1",
    currency: str = "EUR",
    day: str = "2026-02-15",
) -> dict[str, str]:
    return {
        "id": pid,
        "customer_id": customer,
        "invoice_id": invoice,
        "amount": amount,
        "currency": currency,
        "date": day,
    }


def test_partial_payment_on_named_invoice(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, lambda s: make_invoice(s, make_customer(s, id="C1"), id="I1"))
    with unit_of_work(session_factory) as session:
        report = import_payments(session, [payment("P1", "30.00", invoice="I1")], actor="bank")
        assert report.created == 1 and report.allocations == 1 and not report.unallocated
    with session_factory() as session:
        invoice = session.get(Invoice, "I1")
        assert invoice is not None
        assert invoice.amount_due == Decimal("70.00") and invoice.status == "partially_paid"
        assert check_on(session, "I1") == CHECK_NOW
        entry = session.scalars(select(LogEntry)).one()
        assert entry.event == "payment_recorded" and entry.on == date(2026, 2, 15)
        assert entry.invoice_id == "I1" and entry.actor == "bank"
        assert entry.details["amount"] == "30.00" and entry.details["currency"] == "EUR"
        alloc = session.scalars(select(PaymentAllocation)).one()
        assert (alloc.payment_id, alloc.invoice_id, alloc.amount) == ("P1", "I1", Decimal(30))


def test_payment_without_invoice_pays_oldest_due_first(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    def setup(session: Session) -> None:
        customer = make_customer(session, id="C1")
        make_invoice(session, customer, id="NEW", due_date=date(2026, 3, 1), amount="80")
        make_invoice(session, customer, id="OLD", due_date=date(2026, 1, 1), amount="50")
        make_invoice(session, customer, id="USD", due_date=date(2025, 1, 1), currency="USD")
        make_invoice(session, customer, id="PAID", due_date=date(2025, 6, 1), status="paid")

    seed(session_factory, setup)
    path = write_csv(
        tmp_path / "payments.csv",
        PAYMENT_HEADER,
        [["P1", "C1", "", "70.00", "EUR", "2026-02-15"]],
    )
    code, out = invoke("import", "payments", str(path))
    assert code == 0, out
    assert "payments: 1 recorded, 0 unchanged (already recorded); 2 invoice allocations" in out
    with session_factory() as session:
        amounts = {i.id: (i.amount_due, i.status) for i in session.scalars(select(Invoice))}
        assert amounts["OLD"] == (Decimal(0), "paid")
        assert amounts["NEW"] == (Decimal(60), "partially_paid")
        assert amounts["USD"] == (Decimal(100), "open")
        allocations = session.scalars(select(PaymentAllocation).order_by(PaymentAllocation.id))
        assert [(a.invoice_id, a.amount) for a in allocations] == [
            ("OLD", Decimal(50)),
            ("NEW", Decimal(20)),
        ]
        logged = session.scalars(
            select(LogEntry).where(LogEntry.event == "payment_recorded").order_by(LogEntry.id)
        ).all()
        assert [(e.invoice_id, e.details["amount"]) for e in logged] == [
            ("OLD", "50.00"),
            ("NEW", "20.00"),
        ]


def test_overpayment_is_kept_unallocated(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, lambda s: make_invoice(s, make_customer(s, id="C1"), id="I1"))
    with unit_of_work(session_factory) as session:
        report = import_payments(session, [payment("P1", "130.00", invoice="I1")])
        assert [(u.payment_id, u.amount) for u in report.unallocated] == [("P1", Decimal(30))]
    with session_factory() as session:
        invoice = session.get(Invoice, "I1")
        assert invoice is not None and invoice.amount_due == 0 and invoice.status == "paid"
        assert session.get(Payment, "P1").amount == Decimal(130)  # type: ignore[union-attr]
        details = session.scalars(
            select(LogEntry.details).where(LogEntry.invoice_id.is_(None))
        ).one()
        assert details["unallocated"] is True and details["amount"] == "30.00"


def test_payments_are_immutable(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, lambda s: make_invoice(s, make_customer(s, id="C1"), id="I1"))
    with unit_of_work(session_factory) as session:
        import_payments(session, [payment("P1", "30.00", invoice="I1")])
    with unit_of_work(session_factory) as session:
        report = import_payments(session, [payment("P1", "30", invoice="I1")])
        assert report.unchanged == 1 and report.created == 0
    with unit_of_work(session_factory) as session, pytest.raises(InvalidInput) as caught:
        import_payments(session, [payment("P1", "35.00", invoice="I1")])
    assert "line 2, id: payment 'P1' was already recorded with other values" in str(caught.value)
    assert "payments are immutable" in str(caught.value)
    with session_factory() as session:
        assert session.get(Invoice, "I1").amount_due == Decimal(70)  # type: ignore[union-attr]


def test_payment_reference_errors_listed_together(session_factory: sessionmaker[Session]) -> None:
    def setup(session: Session) -> None:
        make_invoice(session, make_customer(session, id="C1"), id="I1")
        make_customer(session, id="C2")

    seed(session_factory, setup)
    rows = [
        payment("P1", "10", invoice="I1"),
        payment("P2", "10", invoice="I1", customer="C2"),
        payment("P3", "10", invoice="I1", currency="USD"),
        payment("P4", "10", customer="GHOST"),
        payment("P5", "10", invoice="NOPE"),
        payment("P6", "0"),
    ]
    with unit_of_work(session_factory) as session, pytest.raises(InvalidInput) as caught:
        import_payments(session, rows)
    assert caught.value.details == [
        "line 3, invoice_id: invoice 'I1' belongs to customer 'C1', not 'C2'",
        "line 4, currency: USD differs from invoice 'I1''s currency EUR",
        "line 5, customer_id: customer 'GHOST' not found",
        "line 6, invoice_id: invoice 'NOPE' not found",
        "line 7, amount: 0 must be greater than 0",
    ]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 0
        assert session.get(Invoice, "I1").amount_due == Decimal(100)  # type: ignore[union-attr]


def test_payment_paying_off_invoice_recovers_its_plan(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    def setup(session: Session) -> None:
        customer = make_customer(session, id="C1")
        policy = make_policy(session, name="Standard")
        paid = make_invoice(session, customer, id="I1", due_date=date(2026, 1, 5))
        partly = make_invoice(session, customer, id="I2", due_date=date(2026, 1, 10))
        plan1 = make_plan(session, paid, policy=policy)
        make_action_instance(session, plan1)
        make_action_instance(session, plan1, action="fee", type="late_fee_fixed", status="done")
        session.add(Task(plan_id=plan1.id, role="collector", created_on=date(2026, 1, 20)))
        plan2 = make_plan(session, partly, policy=policy)
        make_action_instance(session, plan2)

    seed(session_factory, setup)
    path = write_csv(
        tmp_path / "payments.csv",
        PAYMENT_HEADER,
        [
            ["P1", "C1", "I1", "100.00", "EUR", "2026-02-03"],
            ["P2", "C1", "I2", "40.00", "EUR", "2026-02-04"],
        ],
    )
    code, out = invoke("import", "payments", str(path), "--user", "bank")
    assert code == 0, out
    assert "payments: 2 recorded" in out and "plans recovered: 1" in out
    with session_factory() as session:
        plans = {p.invoice_id: p for p in session.scalars(select(Plan))}
        assert plans["I1"].status == "recovered"
        assert plans["I1"].closed_on == date(2026, 2, 3) and plans["I1"].balance == 0
        assert plans["I2"].status == "active" and plans["I2"].balance == Decimal(60)
        statuses = {
            (i.plan_id, i.action): i.status for i in session.scalars(select(ActionInstance))
        }
        assert statuses[(plans["I1"].id, "email_notice_1")] == "cancelled"
        assert statuses[(plans["I1"].id, "fee")] == "done"
        assert statuses[(plans["I2"].id, "email_notice_1")] == "pending"
        assert session.scalars(select(Task.status)).all() == ["cancelled"]
        events = session.scalars(
            select(LogEntry.event).where(LogEntry.plan_id == plans["I1"].id)
        ).all()
        assert "plan_recovered" in events and "action_cancelled" in events
        recovered = session.scalars(
            select(LogEntry).where(LogEntry.event == "plan_recovered")
        ).one()
        assert recovered.on == date(2026, 2, 3) and recovered.actor == "bank"


def test_customer_mode_payment_closes_customer_plan(
    session_factory: sessionmaker[Session],
) -> None:
    def setup(session: Session) -> None:
        make_settings(session, mode="customer")
        customer = make_customer(session, id="C1")
        a = make_invoice(session, customer, id="A", due_date=date(2026, 1, 5), amount="60")
        b = make_invoice(session, customer, id="B", due_date=date(2026, 1, 9), amount="40")
        make_customer_plan(session, customer, [a, b], opened_on=date(2026, 1, 20))

    seed(session_factory, setup)
    with unit_of_work(session_factory) as session:
        report = import_payments(
            session, [payment("P1", "60", day="2026-02-01")], on=date(2026, 2, 2)
        )
        assert report.plans_recovered == []
    with session_factory() as session:
        assert session.scalars(select(Plan.balance)).one() == Decimal(40)
    with unit_of_work(session_factory) as session:
        report = import_payments(
            session, [payment("P2", "40", day="2026-02-05")], on=date(2026, 2, 5)
        )
        assert len(report.plans_recovered) == 1
    with session_factory() as session:
        plan = session.scalars(select(Plan)).one()
        assert plan.status == "recovered" and plan.closed_on == date(2026, 2, 5)


# --- volume ------------------------------------------------------------------------------------


def test_large_invoice_and_payment_files_are_fast(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    customers = [customer_row(f"C{n}") for n in range(500)]
    write_csv(tmp_path / "c.csv", CUSTOMER_HEADER, customers)
    start = date(2025, 6, 1)
    invoices = [
        invoice_row(
            f"I{n}",
            cid=f"C{n % 500}",
            due_date=(start + timedelta(days=n % 200)).isoformat(),
            issue_date="2025-05-01",
        )
        for n in range(5000)
    ]
    write_csv(tmp_path / "i.csv", INVOICE_HEADER, invoices)
    payments = [
        [
            f"P{n}",
            f"C{n % 500}",
            f"I{n}" if n % 2 else "",
            "60.00",
            "EUR",
            (date(2026, 1, 1) + timedelta(days=n % 30)).isoformat(),
        ]
        for n in range(5000)
    ]
    write_csv(tmp_path / "p.csv", PAYMENT_HEADER, payments)

    began = time.perf_counter()
    code, out = invoke("import", "customers", str(tmp_path / "c.csv"))
    assert code == 0, out
    code, out = invoke("import", "invoices", str(tmp_path / "i.csv"))
    assert code == 0 and "5000 created" in out, out
    after_invoices = time.perf_counter() - began
    code, out = invoke("import", "invoices", str(tmp_path / "i.csv"))
    assert code == 0 and "5000 unchanged" in out, out
    code, out = invoke("import", "payments", str(tmp_path / "p.csv"))
    assert code == 0 and "5000 recorded" in out, out
    elapsed = time.perf_counter() - began
    assert after_invoices < 30 and elapsed < 90, (after_invoices, elapsed)

    with session_factory() as session:
        total_due = sum(session.scalars(select(Invoice.amount_due)), Decimal(0))
        allocated = sum(session.scalars(select(PaymentAllocation.amount)), Decimal(0))
        assert total_due + allocated == Decimal(500000)
        assert allocated == Decimal(300000)  # every payment found something due
        assert session.scalar(select(func.count()).select_from(Payment)) == 5000
        assert not session.scalar(select(func.count()).where(Invoice.amount_due < 0))


def test_progress_is_reported_per_chunk(session_factory: sessionmaker[Session]) -> None:
    calls: list[tuple[str, int, int]] = []
    rows = [{"id": f"C{n}", "name": f"N{n}"} for n in range(2500)]
    with unit_of_work(session_factory) as session:
        report = import_customers(
            session, rows, progress=lambda phase, done, total: calls.append((phase, done, total))
        )
        assert report.created == 2500
    assert calls[0] == ("checking", 0, 2500)
    assert [c for c in calls if c[0] == "writing"] == [
        ("writing", 0, 2500),
        ("writing", 1000, 2500),
        ("writing", 2000, 2500),
        ("writing", 2500, 2500),
    ]


# --- what an import did not understand (issue 9, items 4 and 12) ------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"


def test_a_policy_that_does_not_exist_is_refused_with_the_ones_that_do(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seed(session_factory, lambda s: (make_policy(s, name="Standard"), make_policy(s, name="VIP")))
    path = write_csv(
        tmp_path / "customers.csv",
        CUSTOMER_HEADER,
        [customer_row("C1", policy="VIP"), customer_row("C2", policy="Standrad")],
    )
    code, out = invoke("import", "customers", str(path))
    assert code == 1
    assert (
        "line 3, policy: 'Standrad' is not a policy (did you mean Standard?); "
        "the policies are Standard, VIP" in out
    )
    assert "line 2" not in out
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0


def test_no_policy_configured_yet_is_said(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", CUSTOMER_HEADER, [customer_row("C1", policy="Gold")])
    code, out = invoke("import", "customers", str(path))
    assert code == 1
    assert "line 2, policy: 'Gold' is not a policy; no policy is configured yet" in out
    assert "recoup config" not in out  # the import's words are shared by the API's batches


def test_a_customer_naming_no_existing_policy_does_not_block_config_apply(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """R14 counts real references: a customer stored with a policy name that is not a policy
    (before imports refused it) does not make that name 'in use'; a real reference still does."""
    assert invoke("config", "apply", str(EXAMPLE))[0] == 0
    seed(session_factory, lambda s: make_customer(s, id="GHOST", policy="Ghost"))
    code, out = invoke("config", "apply", str(EXAMPLE))
    assert code == 0, out
    assert "Ghost" not in out

    seed(session_factory, lambda s: make_customer(s, id="BIG", policy="Enterprise"))
    text = EXAMPLE.read_text(encoding="utf-8")
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(text[: text.index("  - name: Enterprise")], encoding="utf-8")
    code, out = invoke("config", "apply", str(fewer))
    assert code == 1
    assert "policy 'Enterprise' cannot be removed: it is used by 1 customer" in out
    assert "Ghost" not in out


EXPONENT = "is in exponent notation: write the amount out (like 1000)"
NOT_DECIMAL = "is not a decimal amount (like 1234.56)"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("1e3", EXPONENT),
        ("1E+3", EXPONENT),
        ("2.5e2", EXPONENT),
        ("1_000", NOT_DECIMAL),
        ("١٠٠", NOT_DECIMAL),  # Arabic-Indic digits, which Decimal() reads as 100
        ("Infinity", NOT_DECIMAL),
        ("0x10", NOT_DECIMAL),
    ],
)
def test_amounts_in_other_notations_are_refused(amount: str, message: str) -> None:
    values = dict(zip(INVOICE_HEADER, invoice_row("I1", amount=amount, amount_due=""), strict=True))
    result = book_rows.parse_invoice(book_rows.SourceRow(2, values))
    assert isinstance(result, list), result
    [error] = result
    assert (error.line, error.field, error.message) == (2, "amount", f"{amount!r} {message}")
    payment = dict(zip(PAYMENT_HEADER, ["P1", "C1", "", amount, "EUR", "2026-02-01"], strict=True))
    assert isinstance(book_rows.parse_payment(book_rows.SourceRow(2, payment)), list)


@pytest.mark.parametrize("amount", ["1000", "1000.", ".5", "+12.50", "-0", "0012.30"])
def test_plain_decimal_amounts_still_import(amount: str) -> None:
    values = dict(zip(PAYMENT_HEADER, ["P1", "C1", "", amount, "EUR", "2026-02-01"], strict=True))
    result = book_rows.parse_payment(book_rows.SourceRow(2, values))
    if Decimal(amount) > 0:
        assert isinstance(result, book_rows.PaymentIn) and result.amount == Decimal(amount)
    else:
        assert isinstance(result, list) and "must be greater than 0" in result[0].message


def test_invoices_of_a_type_not_dunned_are_named_in_the_summary(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    def book(session: Session) -> None:
        make_settings(session, invoice_types=["commercial", "service"])
        make_customer(session, id="C1")

    seed(session_factory, book)
    path = write_csv(
        tmp_path / "invoices.csv",
        INVOICE_HEADER,
        [
            invoice_row("I1"),
            invoice_row("I2", type="commerical"),
            invoice_row("I3", type="commerical"),
            invoice_row("I4", type="commerical"),
            invoice_row("I5", type="credit_note"),
            invoice_row("I6", type="service"),
        ],
    )
    code, out = invoke("import", "invoices", str(path))
    assert code == 0, out
    assert "invoices: 6 created" in out
    assert (
        "note: 3 invoices of type 'commerical' will not be dunned (did you mean commercial?) "
        "(invoice types: commercial, service)" in out
    )
    assert "note: 1 invoice of type 'credit_note' will not be dunned (invoice types:" in out
    assert "'service'" not in out


def test_unknown_customer_columns_are_listed_as_attributes(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "customers.csv",
        ["id", "name", "emial", "seats"],
        [["C1", "Acme", "ap@acme.example", "3"]],
    )
    code, out = invoke("import", "customers", str(path))
    assert code == 0, out
    assert "note: kept as attributes: emial (did you mean email?), seats" in out
    with session_factory() as session:
        customer = session.get(Customer, "C1")
        assert customer is not None and customer.email is None
        assert customer.attributes == {"emial": "ap@acme.example", "seats": "3"}


def test_an_unknown_account_status_is_refused_with_the_known_ones(
    env: dict[str, str], session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    assert invoke("config", "apply", str(EXAMPLE))[0] == 0  # its `suspend` sets `suspended`
    seed(session_factory, lambda s: make_customer(s, id="OLD", status="on_hold"))
    path = write_csv(
        tmp_path / "customers.csv",
        CUSTOMER_HEADER,
        [
            customer_row("C1", status="suspended"),
            customer_row("C2", status="cancelled"),
            customer_row("C3", status="suspnded"),
            customer_row("OLD", status="on_hold"),  # stored before statuses were checked
            customer_row("C4", status="on_hold"),
        ],
    )
    code, out = invoke("import", "customers", str(path))
    assert code == 1
    known = "known: active, cancelled, suspended"
    assert (
        "line 4, status: 'suspnded' is not a known account status (did you mean suspended?); "
        f"{known}" in out
    )
    assert f"line 6, status: 'on_hold' is not a known account status; {known}" in out
    assert "line 2" not in out and "line 3" not in out and "line 5" not in out
