"""Oldest-due-first allocation of a payment (R8): a table, no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from recoup.domain.allocation import Allocated, Allocation, OpenInvoice, allocate

D = Decimal


def inv(id_: str, due: str, amount_due: str) -> OpenInvoice:
    return OpenInvoice(id_, date.fromisoformat(due), D(amount_due))


@pytest.mark.parametrize(
    ("invoices", "amount", "expected", "unallocated"),
    [
        # nothing open: all of it is left over
        ([], "50", [], "50"),
        # exactly what is due
        ([inv("A", "2026-01-10", "100.00")], "100.00", [("A", "100.00", "0.00")], "0"),
        # less than due: partly paid
        ([inv("A", "2026-01-10", "100.00")], "30.00", [("A", "30.00", "70.00")], "0"),
        # more than due: the rest is unallocated
        ([inv("A", "2026-01-10", "100.00")], "130.00", [("A", "100.00", "0.00")], "30.00"),
        # oldest due first, whatever order they come in
        (
            [inv("B", "2026-02-10", "50"), inv("A", "2026-01-10", "40")],
            "60",
            [("A", "40", "0"), ("B", "20", "30")],
            "0",
        ),
        # the same due date: by id
        (
            [inv("B", "2026-01-10", "50"), inv("A", "2026-01-10", "50")],
            "50",
            [("A", "50", "0")],
            "0",
        ),
        # an invoice owing nothing is passed over
        (
            [inv("A", "2026-01-10", "0"), inv("B", "2026-02-10", "10")],
            "10",
            [("B", "10", "0")],
            "0",
        ),
        # the money runs out: later invoices get nothing
        (
            [
                inv("A", "2026-01-10", "10"),
                inv("B", "2026-02-10", "10"),
                inv("C", "2026-03-10", "10"),
            ],
            "15",
            [("A", "10", "0"), ("B", "5", "5")],
            "0",
        ),
        # exact decimals, never floats: 0.1 + 0.2
        (
            [inv("A", "2026-01-10", "0.1"), inv("B", "2026-01-11", "0.2")],
            "0.3",
            [("A", "0.1", "0.0"), ("B", "0.2", "0.0")],
            "0",
        ),
        # a zero amount pays nothing
        ([inv("A", "2026-01-10", "10")], "0", [], "0"),
    ],
)
def test_allocate(
    invoices: list[OpenInvoice],
    amount: str,
    expected: list[tuple[str, str, str]],
    unallocated: str,
) -> None:
    result = allocate(invoices, D(amount))
    assert result == Allocation(
        tuple(Allocated(i, D(a), D(due)) for i, a, due in expected), D(unallocated)
    )
    assert sum((a.amount for a in result.allocations), D(0)) + result.unallocated == max(
        D(amount), D(0)
    )


def test_allocation_is_frozen_and_says_what_is_paid() -> None:
    result = allocate([inv("A", "2026-01-10", "10"), inv("B", "2026-01-11", "10")], D("15"))
    assert [a.paid for a in result.allocations] == [True, False]
    with pytest.raises(AttributeError):
        result.unallocated = D(1)  # type: ignore[misc]
