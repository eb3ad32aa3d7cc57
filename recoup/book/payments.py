"""Payments: recording them (R8). Each lowers the invoice it names, or the customer's open
invoices oldest due first (recoup.domain.allocation); plans whose debt is gone close."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from recoup.book import repository
from recoup.book.imports import (
    Batch,
    ImportReport,
    Progress,
    Rows,
    Unallocated,
    parse,
    recheck,
    refresh_plans,
)
from recoup.book.repository import CHUNK, chunks
from recoup.book.rows import PaymentIn, RowError, parse_payment
from recoup.core.db import forget_loaded, hold_write_lock, table_of
from recoup.domain.allocation import OpenInvoice, allocate
from recoup.domain.enums import OPEN_INVOICE_VALUES, Event, InvoiceStatus
from recoup.domain.money import money_text
from recoup.log.service import log_row
from recoup.models import Invoice, LogEntry, Payment, PaymentAllocation, Plan
from recoup.plans.closing import own_balance, refresh_plans_of_invoices
from recoup.schedule.service import recheck_invoice


def import_payments(
    session: Session,
    rows: Rows,
    *,
    actor: str | None = None,
    on: date | None = None,
    progress: Progress | None = None,
    short: bool = True,
) -> ImportReport:
    """Record payments (R8). Each lowers the amount due of the invoice it names, or of the
    customer's oldest due invoices first (same currency); money beyond what is due is kept
    unallocated and reported. Plans whose debt is gone close `recovered` in this transaction.
    Payments are immutable: the same id again with the same values changes nothing, with other
    values it is an error. Each payment's business date is its own `date` (R8): the plans it
    closes close on it, and a customer-mode balance counts the invoices due by then (R4).
    `on` is accepted for the callers' symmetry with the other imports and not used.

    One new payment takes the short way (record_one) unless `short` is False (a caller that
    has just been declined by it)."""
    batch = parse("payments", rows, parse_payment, progress)
    if short and len(batch.values) == 1 and not batch.errors:
        one = record_one(session, batch.values[0], actor=actor)
        if one is not None:
            if progress:
                progress("writing", 0, 1)
                progress("writing", 1, 1)
            return one.report
    return _import_many(session, batch, actor=actor, progress=progress)


def _import_many(
    session: Session, batch: Batch, *, actor: str | None, progress: Progress | None
) -> ImportReport:
    """import_payments of any batch: queries per chunk of rows, the ORM's invoices."""
    values: list[PaymentIn] = batch.values
    errors = batch.errors
    report = ImportReport("payments", rows=batch.total)

    # check against the database
    new: list[PaymentIn] = []
    customers = repository.existing_customer_ids(session, (v.customer_id for v in values))
    named = repository.invoice_owners(session, (v.invoice_id for v in values if v.invoice_id))
    for chunk in chunks(values):
        recorded = repository.payments_by_id(session, (v.id for v in chunk))
        for value in chunk:
            previous = recorded.get(value.id)
            if previous is not None:
                if value.same_as(previous):
                    report.unchanged += 1
                else:
                    errors.append(
                        RowError(
                            value.line,
                            "id",
                            f"payment {value.id!r} was already recorded with other values "
                            f"({previous.amount} {previous.currency} on {previous.date}, "
                            f"customer {previous.customer_id}"
                            f"{', invoice ' + previous.invoice_id if previous.invoice_id else ''}"
                            "); payments are immutable: record a new payment or a credit instead",
                        )
                    )
                continue
            errors.extend(_check_payment_refs(value, customers, named))
            new.append(value)
    if errors:
        raise batch.refused()
    if not new:
        return report

    ledger = _Ledger.load(session, new)
    # chronological, so "oldest due first" and plan closing dates follow the money
    new.sort(key=lambda p: (p.date, p.line))
    touched_all: set[str] = set()
    done = 0
    if progress:
        progress("writing", 0, len(new))
    for day, group in groupby(new, key=lambda p: p.date):
        touched: set[str] = set()
        for payment in group:
            touched.update(ledger.apply(payment, actor, report))
            done += 1
            if len(ledger.pending_payments) >= CHUNK:
                ledger.write(session)
                if progress:
                    progress("writing", done, len(new))
        touched_all |= touched
        covered = ledger.covered(touched)
        if covered:
            ledger.write(session)
            report.plans_recovered.extend(refresh_plans(session, covered, on=day, actor=actor))
    ledger.write(session)
    report.created = len(new)
    report.rechecked = recheck(session, touched_all)
    session.flush()
    if progress:
        progress("writing", done, len(new))
    return report


@dataclass(frozen=True)
class Recorded:
    """What recording one payment did: the import's report of it, the parts of it given to
    invoices (in order; not read back) and the plans it closed."""

    payment: PaymentIn
    report: ImportReport
    allocations: list[PaymentAllocation]
    plans_closed: list[Plan]


def record_row(session: Session, row: Mapping[str, str], *, actor: str | None) -> Recorded | None:
    """record_one of a row as a payments file has it (`PaymentCreate.row()`); None as there,
    and for a row the import refuses."""
    batch = parse("payments", [row], parse_payment, None)
    if batch.errors or len(batch.values) != 1:
        return None
    return record_one(session, batch.values[0], actor=actor)


_INVOICES = table_of(Invoice)
_LOWER = (
    update(_INVOICES)
    .where(_INVOICES.c.id == bindparam("invoice_id"))
    .values(amount_due=bindparam("new_amount_due"), status=bindparam("new_status"))
)
# inline: no RETURNING of the ids the database gives (nothing reads them back)
_INSERT_PAYMENT = insert(table_of(Payment)).inline()
_INSERT_ALLOCATION = insert(table_of(PaymentAllocation)).inline()
_INSERT_LOG = insert(table_of(LogEntry)).inline()


def record_one(session: Session, payment: PaymentIn, *, actor: str | None) -> Recorded | None:
    """One new payment (`POST /payments`, a file of one row) recorded as the import records it
    (R8): the same rows, log entries, plans closed or recovered, the same invoices checked
    again; with only the statements one payment needs, each built once: the invoice it names
    (or those of the customer it can spread over) locked and read as rows, Core writes, the
    plans over the invoices it lowered found in one query
    (recoup.plans.closing.refresh_plans_of_invoices). None, having written nothing, for a
    payment recorded before, an invoice missing or another customer's or in another
    currency, a customer missing: the import answers those (its errors, `unchanged`)."""
    session.flush()  # the statements below do not autoflush, as the import's queries do
    ledger = _Ledger()
    if payment.invoice_id is not None:
        # the lock before the plans are read, as _Ledger.load takes it (SQLite: the write lock)
        hold_write_lock(session)
        row = repository.lock_owed(session, payment.invoice_id, payment.id)
        if (
            row is None
            or row.payment_recorded
            or (row.customer_id, row.currency) != (payment.customer_id, payment.currency)
        ):
            return None
        ledger.invoices[row.id] = _Owed(row)
    else:
        recorded, known = repository.payment_and_customer(session, payment.id, payment.customer_id)
        if recorded or not known:
            return None
        hold_write_lock(session)
        owing = repository.lock_owing(session, payment.customer_id)
        ledger.invoices = {row.id: _Owed(row) for row in owing}
        ledger.spread_over({payment.customer_id})
    report = ImportReport("payments", rows=1)
    touched = ledger.apply(payment, actor, report)
    lowered = [ledger.invoices[i] for i in touched]
    if lowered:  # the import's invoice objects are flushed before its inserts
        session.execute(
            _LOWER,
            [
                {"invoice_id": i.id, "new_amount_due": i.amount_due, "new_status": i.status}
                for i in lowered
            ],
        )
        for invoice in lowered:
            forget_loaded(session, Invoice, invoice.id)
    session.execute(_INSERT_PAYMENT, ledger.pending_payments)
    if ledger.pending_allocations:
        session.execute(_INSERT_ALLOCATION, ledger.pending_allocations)
    session.execute(_INSERT_LOG, ledger.pending_logs)
    closed: list[Plan] = []
    if lowered:
        closed = refresh_plans_of_invoices(
            session,
            {i.id: own_balance(i.amount_due, i.is_open) for i in lowered},
            payment.customer_id,
            payment.currency,
            on=payment.date,
            actor=actor,
        )
        for invoice_id in sorted(touched):
            recheck_invoice(session, invoice_id)
    session.flush()
    report.created = 1
    report.plans_recovered = [p.id for p in closed]
    report.rechecked = len(set(touched))
    return Recorded(
        payment=payment,
        report=report,
        allocations=[PaymentAllocation(**part) for part in ledger.pending_allocations],
        plans_closed=closed,
    )


class _Owed:
    """An invoice as one payment reads and changes it (repository.lock_owed's row): what
    _Ledger.apply uses of an Invoice object, without the object."""

    __slots__ = ("amount_due", "currency", "customer_id", "due_date", "id", "status")

    def __init__(self, row: Any) -> None:
        self.id: str = row.id
        self.customer_id: str = row.customer_id
        self.currency: str = row.currency
        self.due_date: date = row.due_date
        self.amount_due: Decimal = row.amount_due
        self.status: str = row.status

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_INVOICE_VALUES


def _check_payment_refs(
    value: PaymentIn, customers: set[str], named: dict[str, tuple[str, str]]
) -> list[RowError]:
    errors: list[RowError] = []
    if value.customer_id not in customers:
        errors.append(
            RowError(value.line, "customer_id", f"customer {value.customer_id!r} not found")
        )
    if value.invoice_id is not None:
        found = named.get(value.invoice_id)
        if found is None:
            errors.append(
                RowError(value.line, "invoice_id", f"invoice {value.invoice_id!r} not found")
            )
        else:
            customer_id, currency = found
            if customer_id != value.customer_id:
                errors.append(
                    RowError(
                        value.line,
                        "invoice_id",
                        f"invoice {value.invoice_id!r} belongs to customer {customer_id!r}, "
                        f"not {value.customer_id!r}",
                    )
                )
            if currency != value.currency:
                errors.append(
                    RowError(
                        value.line,
                        "currency",
                        f"{value.currency} differs from invoice {value.invoice_id!r}'s "
                        f"currency {currency}",
                    )
                )
    return errors


class _Ledger:
    """The invoices the payments can reach, loaded once (a query per chunk), and the rows to
    write. Invoices are ORM objects of the session: changing them here is what gets flushed.
    Which invoice gets how much is recoup.domain.allocation's decision; this applies it."""

    def __init__(self) -> None:
        self.invoices: dict[str, Invoice | _Owed] = {}
        # per (customer, currency), oldest due first: the invoices a payment naming none spreads on
        self.open_by_account: dict[tuple[str, str], list[Invoice | _Owed]] = defaultdict(list)
        # invoices an invoice-mode plan is open on, or an unrecovered plan (any mode) ended on
        self.plan_invoices: set[str] = set()
        self.plan_accounts: set[tuple[str, str]] = set()  # customer-mode plans open
        self.pending_payments: list[dict[str, Any]] = []
        self.pending_allocations: list[dict[str, Any]] = []
        self.pending_logs: list[dict[str, Any]] = []

    @classmethod
    def load(cls, session: Session, payments: list[PaymentIn]) -> _Ledger:
        ledger = cls()
        wanted = {p.invoice_id for p in payments if p.invoice_id}
        spread = {p.customer_id for p in payments if not p.invoice_id}
        wanted.update(repository.open_invoice_ids(session, spread, owing=True))
        # Lock the invoices before looking up their plans, all in id order (as the run locks a
        # chunk's): a run's chunk deciding on them commits first and its plans are found here,
        # or it waits for this import and sees the payments (R8). SQLite: the write lock.
        hold_write_lock(session)
        ledger.invoices = dict(repository.lock_invoices(session, wanted))
        ledger.spread_over(spread)
        ledger.plan_invoices = repository.invoices_with_open_plan(session, ledger.invoices)
        # R8: a debt paid after its plan ended `unrecovered` recovers that plan
        ledger.plan_invoices |= repository.invoices_of_unrecovered_plans(session, ledger.invoices)
        ledger.plan_accounts = repository.accounts_with_open_plan(
            session, {p.customer_id for p in payments}
        )
        return ledger

    def spread_over(self, customers: set[str]) -> None:
        """The invoices of these customers that payments naming none can lower, by account,
        oldest due first."""
        for inv in sorted(self.invoices.values(), key=lambda i: (i.due_date, i.id)):
            if inv.customer_id in customers and inv.is_open and inv.amount_due > 0:
                self.open_by_account[(inv.customer_id, inv.currency)].append(inv)

    def apply(self, payment: PaymentIn, actor: str | None, report: ImportReport) -> list[str]:
        """Spread one payment; returns the invoices it lowered."""
        if payment.invoice_id:
            targets = [self.invoices[payment.invoice_id]]
        else:
            targets = self.open_by_account.get((payment.customer_id, payment.currency), [])
        self.pending_payments.append(
            {
                "id": payment.id,
                "customer_id": payment.customer_id,
                "invoice_id": payment.invoice_id,
                "amount": payment.amount,
                "currency": payment.currency,
                "date": payment.date,
            }
        )
        result = allocate(
            (
                OpenInvoice(invoice.id, invoice.due_date, invoice.amount_due)
                for invoice in targets
                if invoice.is_open and invoice.amount_due > 0
            ),
            payment.amount,
        )
        touched: list[str] = []
        for part in result.allocations:
            invoice = self.invoices[part.invoice_id]
            invoice.amount_due = part.amount_due
            invoice.status = (
                InvoiceStatus.paid.value if part.paid else InvoiceStatus.partially_paid.value
            )
            touched.append(invoice.id)
            self.pending_allocations.append(
                {"payment_id": payment.id, "invoice_id": invoice.id, "amount": part.amount}
            )
            self.pending_logs.append(
                log_row(
                    Event.payment_recorded,
                    on=payment.date,
                    actor=actor,
                    customer_id=payment.customer_id,
                    invoice_id=invoice.id,
                    payment_id=payment.id,
                    amount=money_text(part.amount, payment.currency),
                    currency=payment.currency,
                    amount_due=money_text(invoice.amount_due, payment.currency),
                    invoice_status=invoice.status,
                )
            )
            report.allocations += 1
        if result.unallocated > 0:
            remaining = result.unallocated
            report.unallocated.append(
                Unallocated(payment.id, payment.customer_id, remaining, payment.currency)
            )
            self.pending_logs.append(
                log_row(
                    Event.payment_recorded,
                    on=payment.date,
                    actor=actor,
                    customer_id=payment.customer_id,
                    invoice_id=None,
                    payment_id=payment.id,
                    amount=money_text(remaining, payment.currency),
                    currency=payment.currency,
                    unallocated=True,
                    named_invoice=payment.invoice_id,
                )
            )
        return touched

    def covered(self, invoice_ids: Iterable[str]) -> list[str]:
        """Those of the invoices an open plan covers, or an unrecovered one: only they can
        close (or recover) a plan."""
        return sorted(
            i
            for i in invoice_ids
            if i in self.plan_invoices
            or (self.invoices[i].customer_id, self.invoices[i].currency) in self.plan_accounts
        )

    def write(self, session: Session) -> None:
        if self.pending_payments:
            session.execute(insert(Payment), self.pending_payments)
        if self.pending_allocations:
            session.execute(insert(PaymentAllocation), self.pending_allocations)
        if self.pending_logs:
            session.execute(insert(LogEntry), self.pending_logs)
        self.pending_payments, self.pending_allocations, self.pending_logs = [], [], []
        session.flush()


__all__ = ["Recorded", "import_payments", "record_one", "record_row"]
