"""Spreading a payment over invoices, oldest due first (R8). Pure: no database, no clock.

`allocate` takes the open invoices a payment can reach (one named invoice, or the customer's
open invoices in the payment's currency) and the amount received; it returns what goes to each
invoice and what is left over, as frozen values. The caller applies them (lowers the invoices,
records the allocations) and keeps the remainder on the payment, unallocated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class OpenInvoice:
    """What allocation needs to know of an invoice: which it is, when due, what is still due."""

    id: str
    due_date: date
    amount_due: Decimal


@dataclass(frozen=True)
class Allocated:
    """Part of a payment that goes to one invoice, and what that invoice still owes after it."""

    invoice_id: str
    amount: Decimal
    amount_due: Decimal

    @property
    def paid(self) -> bool:
        return self.amount_due == ZERO


@dataclass(frozen=True)
class Allocation:
    """A payment spread: the invoices it pays, in order, and money beyond what was due."""

    allocations: tuple[Allocated, ...]
    unallocated: Decimal


def allocate(invoices: Iterable[OpenInvoice], amount: Decimal) -> Allocation:
    """Spread `amount` over `invoices`, oldest due date first (then by id), each up to what it
    owes. Invoices owing nothing are passed over; a zero or negative amount pays nothing."""
    remaining = amount
    allocations: list[Allocated] = []
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.id)):
        if remaining <= ZERO:
            break
        if invoice.amount_due <= ZERO:
            continue
        take = min(remaining, invoice.amount_due)
        remaining -= take
        allocations.append(Allocated(invoice.id, take, invoice.amount_due - take))
    return Allocation(tuple(allocations), max(remaining, ZERO))


__all__ = ["Allocated", "Allocation", "OpenInvoice", "allocate"]
