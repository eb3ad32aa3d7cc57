"""The book's schemas: what the faces show (`CustomerRead`, `CustomerDetailRead`, `InvoiceRead`,
with the SPEC §5 field names the CLI's --json prints) and what an API will take
(`CustomerCreate`, `CustomerUpdate`, `InvoiceCreate`, `InvoiceUpdate`, `PaymentCreate`).

A write schema is a row of an import given as JSON: `row()` gives it as the import's columns,
for recoup.book.customers.import_customers and the others, and it is validated by the very
checks a CSV row goes through (recoup.book.rows), so a value refused in a file is refused here
with the same message, and the other way round.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

from pydantic import ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from recoup.book.rows import (
    CUSTOMER_COLUMNS,
    InvoiceIn,
    RowError,
    SourceRow,
    invoice_change_errors,
    parse_customer,
    parse_invoice,
    parse_payment,
    resolve_balance,
)
from recoup.core.schemas import Schema, Timestamp
from recoup.domain.money import money_text, round_money

if TYPE_CHECKING:
    from recoup.book.customers import CustomerDetail


# The placeholder id a change is checked with: the id comes from where the change is sent.
_SOME_ID = "-"


# --- read ----------------------------------------------------------------------------------------


class InvoiceRead(Schema):
    """An invoice as a customer's account lists it; `amount_due` rounded to its currency."""

    id: str
    number: str
    type: str
    due_date: dt.date
    amount_due: Decimal
    currency: str
    status: str
    disputed: bool

    @model_validator(mode="after")
    def _rounded(self) -> Self:
        self.amount_due = round_money(self.amount_due, self.currency)
        return self


class CustomerRead(Schema):
    """A customer account in a list (recoup.book.customers.CustomerSummary): `balance` is what
    is owed in the customer's currency (or the one currency it owes in, else None), `balances`
    what is owed in each currency, as text rounded to the currency."""

    id: str
    name: str
    status: str
    currency: str | None
    balance: Decimal | None
    open_plans: int
    balances: dict[str, str]
    email: str | None
    phone: str | None
    excluded: bool

    @field_validator("balances", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                cur: money_text(round_money(amount, cur), cur)
                if isinstance(amount, Decimal)
                else amount
                for cur, amount in value.items()
            }
        return value


class StatusChangeRead(Schema):
    """An account status a plan changed (R12): from what to what, and when it was put back."""

    plan_id: int
    previous_status: str | None
    new_status: str
    changed_at: Timestamp
    restored_at: Timestamp | None


class CustomerDetailRead(CustomerRead):
    """One account (`recoup customer show`): the list's fields, the customer's others, the
    status changes dunning made (newest first), and the open invoices, oldest due first. The
    plans, charges and log of the account are those features' own schemas."""

    language: str | None
    country: str | None
    category: str | None
    is_company: bool
    payment_method: str | None
    policy: str | None
    address: str | None
    attributes: dict[str, Any]
    status_changes: list[StatusChangeRead]
    status_set_on: dt.date | None
    invoices: list[InvoiceRead]

    @classmethod
    def of(cls, detail: CustomerDetail) -> CustomerDetailRead:
        customer = detail.summary.customer
        return cls.model_validate(
            {
                **CustomerRead.model_validate(detail.summary).model_dump(),
                "language": customer.language,
                "country": customer.country,
                "category": customer.category,
                "is_company": customer.is_company,
                "payment_method": customer.payment_method,
                "policy": customer.policy,
                "address": customer.address,
                "attributes": customer.attributes or {},
                "status_changes": detail.status_changes,
                "status_set_on": detail.status_set_on,
                "invoices": detail.open_invoices,
            }
        )


# --- write ---------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A value as the text of a CSV cell (None: an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _refuse(
    title: str,
    errors: list[RowError],
    values: dict[str, str],
    attributes: frozenset[str] = frozenset(),
) -> None:
    """Raise the rows' errors as a pydantic ValidationError, each at its field (an attribute:
    at `attributes.<name>`), so an API answers 422 with every one of them."""
    if not errors:
        return
    details = [
        InitErrorDetails(
            type=PydanticCustomError("invalid", "{message}", {"message": e.message}),
            loc=("attributes", e.field) if e.field in attributes else (e.field,) if e.field else (),
            input=values.get(e.field),
        )
        for e in errors
    ]
    raise ValidationError.from_exception_data(title, details)


class _Row(Schema):
    """A write schema: its fields are the columns of a row of an import."""

    def _cells(self, *, only_set: bool) -> dict[str, str]:
        return {
            name: _cell(getattr(self, name))
            for name in type(self).model_fields
            if name != "attributes" and (not only_set or name in self.model_fields_set)
        }

    def _check(self, cells: dict[str, str], parse: Callable[[SourceRow], Any]) -> Any:
        result = parse(SourceRow(0, cells))
        if isinstance(result, list):
            attributes = frozenset(getattr(self, "attributes", None) or ())
            _refuse(type(self).__name__, result, cells, attributes)
        return result


class _CustomerFields(_Row):
    email: str | None = None
    phone: str | None = None
    language: str | None = None
    country: str | None = None
    currency: str | None = None
    category: str | None = None
    is_company: bool | None = None
    payment_method: str | None = None
    policy: str | None = None
    status: str | None = None
    excluded: bool | None = None
    address: str | None = None
    # extra columns of a customers file: a value sets the attribute, None removes it
    attributes: dict[str, str | None] = {}

    def _customer_cells(self, customer_id: str) -> dict[str, str]:
        cells = {"id": customer_id, **self._cells(only_set=True)}
        clash = sorted(set(self.attributes) & set(CUSTOMER_COLUMNS))
        if clash:
            _refuse(
                type(self).__name__,
                [RowError(0, k, f"{k!r} is a field of customers, not an attribute") for k in clash],
                {},
                frozenset(clash),
            )
        cells.update({k: _cell(v) for k, v in self.attributes.items()})
        return cells


class CustomerCreate(_CustomerFields):
    """A customer as a row of a customers file: fields left out get their default (a customer
    that exists keeps its value)."""

    id: str
    name: str

    @model_validator(mode="after")
    def _valid(self) -> Self:
        self._check(self.row(), parse_customer)
        return self

    def row(self) -> dict[str, str]:
        return {**self._customer_cells(self.id), "name": self.name}


class CustomerUpdate(_CustomerFields):
    """A change to a customer: only the fields given change."""

    name: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        self._check(self.row(_SOME_ID), parse_customer)
        return self

    def row(self, customer_id: str) -> dict[str, str]:
        return self._customer_cells(customer_id)


class InvoiceCreate(_Row):
    """An invoice as a row of an invoices file: a new one is `open` for its whole amount unless
    `status` / `amount_due` say otherwise. Fields left out are columns the row does not have:
    an invoice that exists keeps its value (its `disputed`, its uploaded PDF)."""

    id: str
    customer_id: str
    number: str
    type: str | None = None
    issue_date: dt.date
    due_date: dt.date
    currency: str
    amount: Decimal
    amount_due: Decimal | None = None
    status: str | None = None
    disputed: bool | None = None
    pdf_path: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        cells = self.row()
        invoice: InvoiceIn = self._check(cells, parse_invoice)
        balance = resolve_balance(invoice, None, None)
        if isinstance(balance, list):
            _refuse(type(self).__name__, balance, cells)
        return self

    def row(self) -> dict[str, str]:
        return self._cells(only_set=True)


# the columns an invoices file must have, taken from the stored invoice when a change leaves
# them out
_INVOICE_KEPT = ("customer_id", "number", "issue_date", "due_date", "currency", "amount")


class InvoiceUpdate(_Row):
    """A change to an invoice: only the fields given change. Checked on its own here (each
    field, and those given together); `row(current)` is the whole row the import checks
    again against the stored invoice."""

    customer_id: str | None = None
    number: str | None = None
    type: str | None = None
    issue_date: dt.date | None = None
    due_date: dt.date | None = None
    currency: str | None = None
    amount: Decimal | None = None
    amount_due: Decimal | None = None
    status: str | None = None
    disputed: bool | None = None
    pdf_path: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        cells = {"id": _SOME_ID, **self._cells(only_set=True)}
        _refuse(type(self).__name__, invoice_change_errors(SourceRow(0, cells)), cells)
        return self

    def row(self, current: Any) -> dict[str, str]:
        """The invoice's row: `current` (the stored invoice) with this change."""
        kept = {name: _cell(getattr(current, name)) for name in _INVOICE_KEPT}
        return {"id": current.id, **kept, **self._cells(only_set=True)}


class PaymentCreate(_Row):
    """A payment (or a credit) received: immutable once recorded (R8)."""

    id: str
    customer_id: str
    invoice_id: str | None = None
    amount: Decimal
    currency: str
    date: dt.date

    @model_validator(mode="after")
    def _valid(self) -> Self:
        self._check(self.row(), parse_payment)
        return self

    def row(self) -> dict[str, str]:
        return self._cells(only_set=False)


# --- what the writes answer ----------------------------------------------------------------------


class AllocationRead(Schema):
    """A part of a payment given to an invoice (R8)."""

    invoice_id: str
    amount: Decimal


class ClosedPlanRead(Schema):
    """A plan a write closed: its id and status (`recovered`)."""

    id: int
    status: str
    closed_on: dt.date | None


class PaymentRead(Schema):
    """A payment as recorded, how it was spread over invoices (R8), what was beyond what was
    due (`unallocated`, in the payment's currency), and the plans recording it closed."""

    id: str
    customer_id: str
    invoice_id: str | None
    amount: Decimal
    currency: str
    date: dt.date
    allocations: list[AllocationRead] = []
    unallocated: Decimal = Decimal(0)
    plans_closed: list[ClosedPlanRead] = []

    @model_validator(mode="after")
    def _rounded(self) -> Self:
        self.amount = round_money(self.amount, self.currency)
        self.unallocated = round_money(self.unallocated, self.currency)
        for part in self.allocations:
            part.amount = round_money(part.amount, self.currency)
        return self


class UnallocatedRead(Schema):
    payment_id: str
    customer_id: str
    amount: Decimal
    currency: str


class ImportReportRead(Schema):
    """What a batch (or an import) did: rows created, updated, left unchanged; for payments the
    allocations and the money beyond what was due; the plans it closed, paused, resumed; the
    notes on what may not do what was meant."""

    kind: str
    rows: int
    created: int
    updated: int
    unchanged: int
    allocations: int
    unallocated: list[UnallocatedRead]
    plans_recovered: list[int]
    plans_paused: list[int]
    plans_resumed: list[int]
    rechecked: int
    warnings: list[str]


class DisputeChange(Schema):
    """Open or close a dispute: why (the log keeps it); the `Recoup-Reason` header when none."""

    reason: str | None = None


class DisputeRead(Schema):
    """An invoice's dispute opened or closed (R10), and what it did to the plans."""

    invoice_id: str
    disputed: bool
    plans_paused: list[int]
    plans_resumed: list[int]
    plans_recovered: list[int]
    plans_untouched: list[int]


class InvoicePdfRead(Schema):
    """An invoice's PDF as stored: the path inside the invoice folder, its size in bytes."""

    invoice_id: str
    pdf_path: str
    size: int


__all__ = [
    "AllocationRead",
    "ClosedPlanRead",
    "CustomerCreate",
    "CustomerDetailRead",
    "CustomerRead",
    "CustomerUpdate",
    "DisputeChange",
    "DisputeRead",
    "ImportReportRead",
    "InvoiceCreate",
    "InvoiceRead",
    "InvoicePdfRead",
    "InvoiceUpdate",
    "PaymentCreate",
    "PaymentRead",
    "StatusChangeRead",
    "UnallocatedRead",
]
