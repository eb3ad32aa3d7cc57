"""Issue 9.3 and 9.5: a debt paid after its plan ended `unrecovered` recovers the plan and
gives the account its status back (R8, R12); `explain` shows what such a plan still owes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.engine_book import Book, day


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Book:
    return Book(tmp_path)


def customer_status(book: Book) -> str:
    log = book.log("--customer", "C1")
    changes = [e for e in log if e["event"] in ("status_changed", "status_restored")]
    return str(changes[-1]["details"]["status"]) if changes else "active"


@pytest.mark.parametrize("mode", ["invoice", "customer"])
def test_paying_after_the_end_level_recovers_the_plan(book: Book, mode: str) -> None:
    book.start(mode=mode)
    book.run(5)
    book.run(20)  # the end level: letter, interest, suspension; the plan ends unrecovered
    plan = book.plan()
    assert plan["status"] == "unrecovered"
    assert customer_status(book) == "suspended"
    report = book.json("report", "--as-of", day(21))
    assert report[0]["recovery_rate"] == 0.0

    book.pay("I1", "100.00", 30)

    plan = book.plan()
    assert (plan["status"], plan["closed_on"], plan["balance"]) == ("recovered", day(30), "0.00")
    [recovered] = book.log("--event", "plan_recovered")
    assert recovered["on"] == day(30)
    assert recovered["details"]["after_end"] is True
    assert recovered["details"]["unrecovered_on"] == day(20)
    [restored] = book.log("--event", "status_restored")
    assert restored["details"] == {"previous": "suspended", "status": "active"}
    assert customer_status(book) == "active"
    # the report's recovery rate counts it: recovered / (recovered + unrecovered)
    report = book.json("report", "--as-of", day(31))
    assert report[0]["plans"]["recovered"] == 1 and report[0]["plans"]["unrecovered"] == 0
    assert report[0]["recovery_rate"] == 1.0
    # and it stays recovered: a later run does nothing with it
    book.run(31)
    assert book.plan()["status"] == "recovered"


def test_a_partial_payment_after_the_end_leaves_it_unrecovered(book: Book) -> None:
    book.start(mode="invoice")
    book.run(5)
    book.run(20)
    book.pay("I1", "60.00", 30)
    plan = book.plan()
    assert (plan["status"], plan["balance"]) == ("unrecovered", "40.00")  # still owed
    assert book.log("--event", "plan_recovered") == []
    assert customer_status(book) == "suspended"
    book.pay("I1", "40.00", 31, payment_id="P2")
    assert book.plan()["status"] == "recovered"
    assert customer_status(book) == "active"


def test_customer_mode_below_the_minimum_after_the_end_is_recovered(book: Book) -> None:
    book.start(mode="customer")
    book.run(5)
    book.run(20)
    book.pay("I1", "60.00", 30)  # 40.00 left, below the policy's 50.00 (R8)
    plan = book.plan()
    assert (plan["status"], plan["balance"]) == ("recovered", "40.00")


def test_a_dispute_after_the_end_is_not_a_payment(book: Book) -> None:
    book.start(mode="customer")
    book.run(5)
    book.run(20)
    book("invoice", "dispute", "I1", "--on", day(25))
    assert book.plan()["status"] == "unrecovered"


@pytest.mark.parametrize("mode", ["invoice", "customer"])
def test_explain_shows_what_an_unrecovered_plan_still_owes(book: Book, mode: str) -> None:
    book.start(mode=mode)
    book.run(5)
    book.run(20)
    explained = book.json("explain", "I1", "--as-of", day(25))[0]
    assert explained["plan_status"] == "unrecovered"
    assert Decimal(explained["balance"]) == 100
    assert "Balance: 100.00 EUR" in book("explain", "I1", "--as-of", day(25))
