"""Issue 9.1: a customer-mode balance counts only invoices whose due date has come (R4), the
same in the run, `explain` and a payment (R8): a payment's "today" is its own date."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from recoup.domain.enums import InvoiceStatus, Mode
from recoup.domain.evaluator import InvoiceFacts, customer_balance
from recoup.domain.policy import Settings
from tests.engine_book import DUE, Book, day
from tests.runs.test_run_e2e import invoice_csv

SETTINGS = Settings(mode=Mode.customer, invoice_types=("commercial", "fee"))


def facts(id_: str, due: int, amount: str, **kw: object) -> InvoiceFacts:
    return InvoiceFacts(id_, DUE + timedelta(days=due), "EUR", Decimal(amount), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("invoices", "joined", "final", "expected"),
    [
        ([facts("A", 0, "10"), facts("B", 1, "20")], (), False, "10"),  # B not yet due
        ([facts("A", 0, "10"), facts("B", 1, "20")], ("B",), False, "30"),  # B in the plan
        ([facts("A", 0, "10", disputed=True)], (), False, "0"),
        ([facts("A", 0, "10", status=InvoiceStatus.paid)], (), False, "0"),
        ([facts("A", 0, "10", type="proforma")], (), False, "0"),
        ([facts("A", 0, "10"), facts("B", -1, "20")], ("A",), True, "10"),  # final: its own
        ([facts("A", 0, "10", disputed=True)], ("A",), True, "10"),  # a dispute pays nothing
    ],
)
def test_the_one_balance_rule(
    invoices: list[InvoiceFacts], joined: tuple[str, ...], final: bool, expected: str
) -> None:
    balance = customer_balance(invoices, SETTINGS, DUE, joined=frozenset(joined), final=final)
    assert balance == Decimal(expected)


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Book:
    book = Book(tmp_path)
    book.start(
        mode="customer",
        invoices=invoice_csv(
            ("I1", "C1", DUE, "100.00", "EUR"),
            ("I2", "C1", DUE + timedelta(days=30), "100.00", "EUR"),
        ),
    )
    return book


@pytest.mark.parametrize("amount", ["100.00", "60.00"])
def test_a_payment_closes_the_plan_on_what_is_due_by_its_date(book: Book, amount: str) -> None:
    book.run(5)
    assert book.plan()["balance"] == "100.00"  # I2 is not due yet
    book.pay("I1", amount, 6)
    plan = book.plan()
    # paid in full, or down to 40.00, below the policy's 50.00 (R8); I2 is not owed yet
    assert plan["status"] == "recovered", plan
    assert plan["closed_on"] == day(6)
    assert plan["balance"] == ("0.00" if amount == "100.00" else "40.00")
    [recovered] = book.log("--event", "plan_recovered")
    assert recovered["on"] == day(6)


def test_a_late_recorded_payment_still_counts_the_invoices_that_joined(book: Book) -> None:
    """A payment dated before an invoice joined the plan finds that invoice owed still."""
    book(
        "import",
        "invoices",
        book.file("i3.csv", invoice_csv(("I3", "C1", DUE + timedelta(days=10), "100.00", "EUR"))),
    )
    book.run(5)
    book.run(12)  # I3 falls due and joins: 200.00
    assert book.plan()["balance"] == "200.00"
    book.pay("I1", "100.00", 6)  # the bank statement of day 6 arrives on day 12
    plan = book.plan()
    assert (plan["status"], plan["balance"]) == ("active", "100.00")


def test_explain_and_the_run_agree_with_the_payment(book: Book) -> None:
    book.run(5)
    explained = book.json("explain", "I1", "--as-of", day(5))[0]
    assert Decimal(explained["balance"]) == 100
    book.pay("I1", "30.00", 6)
    assert book.plan()["balance"] == "70.00"
    assert Decimal(book.json("explain", "I1", "--as-of", day(7))[0]["balance"]) == 70
    book.run(7)
    assert book.plan()["balance"] == "70.00"


def test_an_ended_plans_invoices_are_not_the_next_plans_debt(book: Book) -> None:
    """After a plan ends unrecovered, a new plan covers only the invoices that fell due
    since; paying those recovers it, whatever the old plan's invoices still owe."""
    book.run(5)
    book.run(20)  # end level: the plan closes unrecovered with I1 owed
    first = book.plan()
    assert first["status"] == "unrecovered"
    book.run(35)  # I2 (due day 30) opens a plan of its own
    second = book.plan(status="active")
    assert second["balance"] == "100.00"
    book.pay("I2", "100.00", 36)
    assert book.plan(id=second["id"])["status"] == "recovered"
    assert book.plan(id=first["id"])["status"] == "unrecovered"  # I1 is still owed
