"""The book: importing customers, invoices and payments (SPEC §5, R8) and disputes (R10).

Every import is all-or-nothing: the whole file is parsed and checked against the database
first, every bad row collected; only a clean file is written, in chunks, in the caller's
transaction. Services flush, never commit. Queries are per chunk of rows, never per row.
"""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, lazyload

from recoup.book.schemas import (
    CUSTOMER_COLUMNS,
    CsvTable,
    CustomerIn,
    InvoiceIn,
    PaymentIn,
    RowError,
    check_header,
    parse_customer,
    parse_invoice,
    parse_payment,
    parse_rows,
    resolve_balance,
    table_from_dicts,
)
from recoup.core.db import hold_write_lock
from recoup.core.errors import Conflict, InvalidInput, NotFound
from recoup.domain.enums import (
    CANCELLED_ACCOUNT_STATUS,
    DISPUTE_REASON,
    OPEN_PLAN_STATUSES,
    ActionType,
    Event,
    InvoiceStatus,
    Mode,
    PlanStatus,
)
from recoup.domain.money import money_text
from recoup.log.service import log, log_row
from recoup.models import (
    ActionRow,
    Customer,
    Invoice,
    LogEntry,
    Payment,
    PaymentAllocation,
    Plan,
    PolicyRow,
)
from recoup.plans.closing import refresh_plans_after_change
from recoup.plans.links import plan_links
from recoup.plans.service import pause_plan, resume_plan
from recoup.schedule.service import recheck_invoices
from recoup.settings.service import business_today, get_settings

CHUNK = 1000  # rows per query / per write; also keeps IN lists under SQLite's limits

# Invoice fields that change what the engine must do with it (R2, R4, R15).
INVOICE_FIELDS_THAT_MATTER = frozenset(
    {"customer_id", "type", "due_date", "currency", "amount", "amount_due", "status", "disputed"}
)
# ... and those that change a plan's balance (R8).
INVOICE_BALANCE_FIELDS = frozenset(
    {"customer_id", "type", "due_date", "currency", "amount_due", "status"}
)
# Customer fields that decide eligibility and policy (R2, R3).
CUSTOMER_FIELDS_THAT_MATTER = frozenset(
    {
        "excluded", "status", "policy", "category", "country", "currency", "is_company",
        "payment_method", "attributes",
    }
)
OPEN_INVOICE_STATUSES = (InvoiceStatus.open.value, InvoiceStatus.partially_paid.value)

# progress(phase, done, total): phase is "checking" or "writing".
Progress = Callable[[str, int, int], None]
Rows = CsvTable | Iterable[Mapping[str, Any]]

T = TypeVar("T")


@dataclass(frozen=True)
class Unallocated:
    """Money received beyond what was due: kept on the payment, not spread (R8)."""

    payment_id: str
    customer_id: str
    amount: Decimal
    currency: str


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    allocations: int = 0  # payments: invoice allocations recorded
    unallocated: list[Unallocated] = field(default_factory=list)
    plans_recovered: list[int] = field(default_factory=list)
    plans_paused: list[int] = field(default_factory=list)
    plans_resumed: list[int] = field(default_factory=list)
    rechecked: int = 0  # invoices the next run will look at again
    # what was imported but may not do what the file meant ("kept as attributes: emial")
    warnings: list[str] = field(default_factory=list)

    @property
    def payments_recorded(self) -> int:
        return self.created if self.kind == "payments" else 0


@dataclass
class DisputeResult:
    invoice_id: str
    disputed: bool
    plans_paused: list[int] = field(default_factory=list)
    plans_resumed: list[int] = field(default_factory=list)
    plans_recovered: list[int] = field(default_factory=list)
    # invoice mode: an open plan left as it was (e.g. already paused for another reason)
    plans_untouched: list[int] = field(default_factory=list)


# --- helpers -------------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_table(rows: Rows) -> CsvTable:
    return rows if isinstance(rows, CsvTable) else table_from_dicts(rows)


def _fail(kind: str, errors: list[RowError]) -> InvalidInput:
    errors = sorted(errors, key=lambda e: e.line)  # stable: a row's errors keep their order
    bad_lines = len({e.line for e in errors})
    return InvalidInput(
        f"{kind} file not imported: {bad_lines} bad row{'s' if bad_lines != 1 else ''}"
        " (nothing was changed)",
        details=[str(e) for e in errors],
    )


def _parse(
    kind: str, rows: Rows, parse: Any, progress: Progress | None
) -> tuple[list[Any], list[RowError], int]:
    table = _as_table(rows)
    header_errors = check_header(kind, table.header)
    if header_errors or (not table.header and table.errors):
        raise _fail(kind, table.errors + header_errors)
    values, errors = parse_rows(table.rows, parse)
    if progress:
        progress("checking", 0, len(table.rows))
    return values, table.errors + errors, len(table.rows)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _existing_ids(session: Session, column: Any, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    found: set[str] = set()
    for chunk in _chunks(wanted):
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def _refresh(
    session: Session, invoice_ids: Iterable[str], *, on: date, actor: str | None
) -> list[int]:
    closed: list[int] = []
    for chunk in _chunks(sorted(set(invoice_ids))):
        plans = refresh_plans_after_change(session, list(chunk), on=on, actor=actor)
        closed.extend(p.id for p in plans)
    return closed


def _recheck(session: Session, invoice_ids: Iterable[str]) -> int:
    ids = sorted(set(invoice_ids))
    for chunk in _chunks(ids):
        recheck_invoices(session, list(chunk))
    return len(ids)


# --- customers -----------------------------------------------------------------------------------

CUSTOMER_DEFAULTS: dict[str, Any] = {
    "email": None, "phone": None, "language": None, "country": None, "currency": None,
    "category": None, "is_company": False, "payment_method": None, "policy": None,
    "status": "active", "excluded": False, "address": None,
}


def import_customers(
    session: Session,
    rows: Rows,
    *,
    actor: str | None = None,
    on: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Create or update customers by id. Columns left out of the file keep their stored value;
    extra columns become `attributes` (an empty cell removes that attribute). A `policy` must
    name a policy that exists, a `status` be one dunning knows (or the one the customer has)."""
    table = _as_table(rows)
    values, errors, total = _parse("customers", table, parse_customer, progress)
    errors.extend(_check_customer_refs(session, values))
    if errors:
        raise _fail("customers", errors)
    report = ImportReport("customers", rows=total)
    extra = [c for c in table.header if c and c not in CUSTOMER_COLUMNS]
    if extra:
        report.warnings.append(
            "kept as attributes: "
            + ", ".join(c + _did_you_mean(c, CUSTOMER_COLUMNS) for c in extra)
        )
    if progress:
        progress("writing", 0, len(values))
    done = 0
    matter: set[str] = set()
    for chunk in _chunks(values):
        existing = {
            c.id: c
            for c in session.scalars(select(Customer).where(Customer.id.in_([v.id for v in chunk])))
        }
        creates: list[dict[str, Any]] = []
        for value in chunk:
            current = existing.get(value.id)
            if current is None:
                creates.append(_new_customer(value))
            elif _update_customer(current, value, matter):
                report.updated += 1
            else:
                report.unchanged += 1
        if creates:
            session.execute(insert(Customer), creates)
            report.created += len(creates)
        session.flush()
        done += len(chunk)
        if progress:
            progress("writing", done, len(values))
    if matter:
        open_ids: list[str] = []
        for chunk in _chunks(sorted(matter)):
            open_ids.extend(
                session.scalars(
                    select(Invoice.id).where(
                        Invoice.customer_id.in_(chunk), Invoice.status.in_(OPEN_INVOICE_STATUSES)
                    )
                )
            )
        report.rechecked = _recheck(session, open_ids)
    session.flush()
    return report


def known_statuses(session: Session) -> list[str]:
    """Account statuses a customer may have: `active`, `cancelled` and those some
    change_account_status action sets (R12)."""
    known = {"active", CANCELLED_ACCOUNT_STATUS}
    for params in session.scalars(
        select(ActionRow.params).where(ActionRow.type == ActionType.change_account_status.value)
    ):
        status = (params or {}).get("status")
        if status:
            known.add(str(status))
    return sorted(known)


def _check_customer_refs(session: Session, values: Sequence[CustomerIn]) -> list[RowError]:
    """A policy that does not exist would leave the customer undunned without a word (R3);
    a status nothing sets is a typo of one that would have mattered (R2, R12)."""
    errors: list[RowError] = []
    wanted = {v.fields["policy"] for v in values if v.fields.get("policy")}
    if wanted:
        policies = sorted(session.scalars(select(PolicyRow.name)))
        listed = (
            f"the policies are {', '.join(policies)}"
            if policies
            else "no policy is configured yet (recoup config apply FILE)"
        )
        for value in values:
            name = value.fields.get("policy")
            if name and name not in policies:
                errors.append(
                    RowError(
                        value.line, "policy",
                        f"{name!r} is not a policy{_did_you_mean(name, policies)}; {listed}",
                    )
                )
    statuses = known_statuses(session)
    unknown = {v.id: v for v in values if v.fields.get("status") not in (None, *statuses)}
    if unknown:
        current: dict[str, str] = {}
        for chunk in _chunks(sorted(unknown)):
            current.update(
                (customer_id, status)
                for customer_id, status in session.execute(
                    select(Customer.id, Customer.status).where(Customer.id.in_(chunk))
                )
            )
        for customer_id, value in unknown.items():
            status = value.fields["status"]
            if current.get(customer_id) == status:
                continue  # stored before statuses were checked: left as it is
            errors.append(
                RowError(
                    value.line, "status",
                    f"{status!r} is not a known account status{_did_you_mean(status, statuses)}; "
                    f"known: {', '.join(statuses)} (a status is known once a "
                    "change_account_status action sets it)",
                )
            )
    return errors


def _new_customer(value: CustomerIn) -> dict[str, Any]:
    row = {"id": value.id, **CUSTOMER_DEFAULTS, **value.fields}
    row["attributes"] = {k: v for k, v in value.attributes.items() if v is not None}
    return row


def _update_customer(current: Customer, value: CustomerIn, matter: set[str]) -> bool:
    changed: set[str] = set()
    for name, new in value.fields.items():
        if getattr(current, name) != new:
            setattr(current, name, new)
            changed.add(name)
    if value.attributes:
        attributes = dict(current.attributes or {})
        for key, new in value.attributes.items():
            if new is None:
                attributes.pop(key, None)
            else:
                attributes[key] = new
        if attributes != (current.attributes or {}):
            current.attributes = attributes
            changed.add("attributes")
    if changed & CUSTOMER_FIELDS_THAT_MATTER:
        matter.add(current.id)
    return bool(changed)


# --- invoices ------------------------------------------------------------------------------------

INVOICE_DEFAULTS: dict[str, Any] = {"type": "commercial", "disputed": False, "pdf_path": None}


def import_invoices(
    session: Session,
    rows: Rows,
    *,
    actor: str | None = None,
    on: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Create or update invoices by id; the engine looks again at every invoice whose dunning
    facts changed, and plans whose debt is gone close `recovered` now (R8). A change of
    `disputed` is handled like `recoup invoice dispute|undispute`."""
    values, errors, total = _parse("invoices", rows, parse_invoice, progress)
    on = on or business_today(session)
    report = ImportReport("invoices", rows=total)

    # check against the database, a chunk at a time
    existing: dict[str, Invoice] = {}
    resolved: dict[str, tuple[str, Decimal]] = {}
    known_customers = _existing_ids(session, Customer.id, (v.customer_id for v in values))
    currency_changed: dict[str, InvoiceIn] = {}
    for chunk in _chunks(values):
        existing.update(
            (inv.id, inv)
            for inv in session.scalars(
                select(Invoice)
                .options(lazyload(Invoice.customer))
                .where(Invoice.id.in_([v.id for v in chunk]))
            )
        )
        for value in chunk:
            if value.customer_id not in known_customers:
                errors.append(
                    RowError(value.line, "customer_id", f"customer {value.customer_id!r} not found")
                )
            current = existing.get(value.id)
            if current is not None and current.currency != value.currency:
                currency_changed[value.id] = value
            result = resolve_balance(
                value,
                current.status if current is not None else None,
                current.amount_due if current is not None else None,
            )
            if isinstance(result, list):
                errors.extend(result)
            else:
                resolved[value.id] = result
    if currency_changed:
        paid_into = _existing_ids(
            session, PaymentAllocation.invoice_id, currency_changed.keys()
        )
        for invoice_id in sorted(paid_into):
            value = currency_changed[invoice_id]
            errors.append(
                RowError(
                    value.line, "currency",
                    f"cannot change from {existing[invoice_id].currency} to {value.currency}: "
                    "payments were recorded against this invoice",
                )
            )
    errors.extend(_moves_under_a_plan(session, values, existing))
    if errors:
        raise _fail("invoices", errors)
    report.warnings.extend(_undunned_types(session, values, existing))

    # write
    if progress:
        progress("writing", 0, len(values))
    refresh: set[str] = set()
    disputes: list[tuple[Invoice, bool]] = []
    done = 0
    for chunk in _chunks(values):
        creates: list[dict[str, Any]] = []
        recheck: list[str] = []
        for value in chunk:
            status, amount_due = resolved[value.id]
            new = {**value.fields, "status": status, "amount_due": amount_due}
            current = existing.get(value.id)
            if current is None:
                creates.append({"id": value.id, **INVOICE_DEFAULTS, **new})
                recheck.append(value.id)
                continue
            changed = {k: v for k, v in new.items() if getattr(current, k) != v}
            if not changed:
                report.unchanged += 1
                continue
            report.updated += 1
            disputed = changed.pop("disputed", None)
            for name, new_value in changed.items():
                setattr(current, name, new_value)
            if disputed is not None:
                disputes.append((current, disputed))
            if changed.keys() & INVOICE_FIELDS_THAT_MATTER:
                recheck.append(value.id)
            if changed.keys() & INVOICE_BALANCE_FIELDS:
                refresh.add(value.id)
        if creates:
            session.execute(insert(Invoice), creates)
            report.created += len(creates)
        session.flush()
        report.rechecked += _recheck(session, recheck)
        done += len(chunk)
        if progress:
            progress("writing", done, len(values))

    report.plans_recovered.extend(_refresh(session, refresh, on=on, actor=actor))
    for invoice, disputed in disputes:
        effect = set_disputed(session, invoice, disputed, on=on, actor=actor, reason="import")
        report.plans_paused.extend(effect.plans_paused)
        report.plans_resumed.extend(effect.plans_resumed)
        report.plans_recovered.extend(effect.plans_recovered)
    session.flush()
    return report


def _undunned_types(
    session: Session, values: Sequence[InvoiceIn], existing: Mapping[str, Invoice]
) -> list[str]:
    """Invoices of a type the settings do not dun (R2): imported, but named, so that a typo
    (`commerical`) does not go unnoticed until the money is late."""
    types = list(get_settings(session).invoice_types or [])
    counts: Counter[str] = Counter()
    for value in values:
        current = existing.get(value.id)
        type_ = value.fields.get("type") or (
            current.type if current is not None else INVOICE_DEFAULTS["type"]
        )
        if type_ not in types:
            counts[type_] += 1
    return [
        f"{n} invoice{'s' if n != 1 else ''} of type {type_!r} will not be dunned"
        f"{_did_you_mean(type_, types)} (invoice types: {', '.join(types)})"
        for type_, n in sorted(counts.items())
    ]


def _moves_under_a_plan(
    session: Session, values: Sequence[InvoiceIn], existing: Mapping[str, Invoice]
) -> list[RowError]:
    """An invoice cannot move to another customer while an open plan dunns it for the first:
    the plan would go on writing to the wrong customer about a debt it no longer covers."""
    moving = {
        v.id: v for v in values if v.id in existing and existing[v.id].customer_id != v.customer_id
    }
    if not moving:
        return []
    links = plan_links()
    errors = []
    for chunk in _chunks(sorted(moving)):
        rows = session.execute(
            select(links.c.invoice_id, Plan.id, Plan.customer_id)
            .join(Plan, Plan.id == links.c.plan_id)
            .where(
                links.c.invoice_id.in_(chunk),
                Plan.status.in_([s.value for s in OPEN_PLAN_STATUSES]),
            )
        )
        for invoice_id, plan_id, customer_id in rows:
            value = moving[invoice_id]
            errors.append(
                RowError(
                    value.line,
                    "customer_id",
                    f"cannot move invoice {invoice_id} to customer {value.customer_id}: plan "
                    f"{plan_id} of customer {customer_id} is dunning it (stop the plan first: "
                    f"recoup stop {plan_id} --reason ...)",
                )
            )
    return errors


# --- payments ------------------------------------------------------------------------------------


def import_payments(
    session: Session,
    rows: Rows,
    *,
    actor: str | None = None,
    on: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Record payments (R8). Each lowers the amount due of the invoice it names, or of the
    customer's oldest due invoices first (same currency); money beyond what is due is kept
    unallocated and reported. Plans whose debt is gone close `recovered` in this transaction.
    Payments are immutable: the same id again with the same values changes nothing, with other
    values it is an error. Each payment's business date is its own `date` (R8): the plans it
    closes close on it, and a customer-mode balance counts the invoices due by then (R4).
    `on` is accepted for the callers' symmetry with the other imports and not used."""
    values, errors, total = _parse("payments", rows, parse_payment, progress)
    report = ImportReport("payments", rows=total)

    # check against the database
    new: list[PaymentIn] = []
    customers = _existing_ids(session, Customer.id, (v.customer_id for v in values))
    named: dict[str, tuple[str, str]] = {}
    named_ids = sorted({v.invoice_id for v in values if v.invoice_id})
    for chunk in _chunks(named_ids):
        for invoice_id, customer_id, currency in session.execute(
            select(Invoice.id, Invoice.customer_id, Invoice.currency).where(
                Invoice.id.in_(chunk)
            )
        ):
            named[invoice_id] = (customer_id, currency)
    for chunk in _chunks(values):
        recorded = {
            p.id: p
            for p in session.scalars(select(Payment).where(Payment.id.in_([v.id for v in chunk])))
        }
        for value in chunk:
            previous = recorded.get(value.id)
            if previous is not None:
                if value.same_as(previous):
                    report.unchanged += 1
                else:
                    errors.append(
                        RowError(
                            value.line, "id",
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
        raise _fail("payments", errors)
    if not new:
        return report

    settings = get_settings(session)
    ledger = _Ledger.load(session, new, settings.mode)
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
            report.plans_recovered.extend(_refresh(session, covered, on=day, actor=actor))
    ledger.write(session)
    report.created = len(new)
    report.rechecked = _recheck(session, touched_all)
    session.flush()
    if progress:
        progress("writing", done, len(new))
    return report


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
                        value.line, "invoice_id",
                        f"invoice {value.invoice_id!r} belongs to customer {customer_id!r}, "
                        f"not {value.customer_id!r}",
                    )
                )
            if currency != value.currency:
                errors.append(
                    RowError(
                        value.line, "currency",
                        f"{value.currency} differs from invoice {value.invoice_id!r}'s "
                        f"currency {currency}",
                    )
                )
    return errors


class _Ledger:
    """The invoices the payments can reach, loaded once (a query per chunk), and the rows to
    write. Invoices are ORM objects of the session: changing them here is what gets flushed."""

    def __init__(self) -> None:
        self.invoices: dict[str, Invoice] = {}
        self.open_by_account: dict[tuple[str, str], list[Invoice]] = defaultdict(list)
        # invoices an invoice-mode plan is open on, or an unrecovered plan (any mode) ended on
        self.plan_invoices: set[str] = set()
        self.plan_accounts: set[tuple[str, str]] = set()  # customer-mode plans open
        self.pending_payments: list[dict[str, Any]] = []
        self.pending_allocations: list[dict[str, Any]] = []
        self.pending_logs: list[dict[str, Any]] = []

    @classmethod
    def load(cls, session: Session, payments: list[PaymentIn], mode: str) -> _Ledger:
        ledger = cls()
        wanted = {p.invoice_id for p in payments if p.invoice_id}
        spread = sorted({p.customer_id for p in payments if not p.invoice_id})
        for chunk in _chunks(spread):
            wanted.update(
                session.scalars(
                    select(Invoice.id).where(
                        Invoice.customer_id.in_(chunk),
                        Invoice.status.in_(OPEN_INVOICE_STATUSES),
                        Invoice.amount_due > 0,
                    )
                )
            )
        # Lock the invoices before looking up their plans, all in id order (as the run locks a
        # chunk's): a run's chunk deciding on them commits first and its plans are found here,
        # or it waits for this import and sees the payments (R8). SQLite: the write lock.
        hold_write_lock(session)
        for chunk in _chunks(sorted(wanted)):
            for inv in session.scalars(
                select(Invoice)
                .options(lazyload(Invoice.customer))
                .where(Invoice.id.in_(chunk))
                .order_by(Invoice.id)
                # FOR NO KEY UPDATE, the lock its update takes: a worker's log row naming the
                # invoice (a foreign key's KEY SHARE) does not wait for it
                .with_for_update(key_share=True)
                .execution_options(populate_existing=True)
            ):
                ledger.invoices[inv.id] = inv
        spread_set = set(spread)
        for inv in sorted(ledger.invoices.values(), key=lambda i: (i.due_date, i.id)):
            if (
                inv.customer_id in spread_set
                and inv.status in OPEN_INVOICE_STATUSES
                and inv.amount_due > 0
            ):
                ledger.open_by_account[(inv.customer_id, inv.currency)].append(inv)
        open_statuses = [s.value for s in OPEN_PLAN_STATUSES]
        for chunk in _chunks(sorted(ledger.invoices)):
            ledger.plan_invoices.update(
                session.scalars(
                    select(Plan.invoice_id).where(
                        Plan.invoice_id.in_(chunk), Plan.status.in_(open_statuses)
                    )
                )
            )
        links = plan_links()
        for chunk in _chunks(sorted(ledger.invoices)):
            # R8: a debt paid after its plan ended `unrecovered` recovers that plan
            ledger.plan_invoices.update(
                session.scalars(
                    select(links.c.invoice_id)
                    .join(Plan, Plan.id == links.c.plan_id)
                    .where(
                        links.c.invoice_id.in_(chunk),
                        Plan.status == PlanStatus.unrecovered.value,
                    )
                )
            )
        customers = sorted({p.customer_id for p in payments})
        for chunk in _chunks(customers):
            ledger.plan_accounts.update(
                (customer_id, currency)
                for customer_id, currency in session.execute(
                    select(Plan.customer_id, Plan.currency).where(
                        Plan.customer_id.in_(chunk),
                        Plan.invoice_id.is_(None),
                        Plan.status.in_(open_statuses),
                    )
                )
            )
        return ledger

    def apply(self, payment: PaymentIn, actor: str | None, report: ImportReport) -> list[str]:
        """Spread one payment; returns the invoices it lowered."""
        if payment.invoice_id:
            targets = [self.invoices[payment.invoice_id]]
        else:
            targets = self.open_by_account.get((payment.customer_id, payment.currency), [])
        remaining = payment.amount
        touched: list[str] = []
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
        for invoice in targets:
            if remaining <= 0:
                break
            if invoice.status not in OPEN_INVOICE_STATUSES or invoice.amount_due <= 0:
                continue
            take = min(remaining, invoice.amount_due)
            invoice.amount_due = invoice.amount_due - take
            invoice.status = (
                InvoiceStatus.paid.value if invoice.amount_due == 0
                else InvoiceStatus.partially_paid.value
            )
            remaining -= take
            touched.append(invoice.id)
            self.pending_allocations.append(
                {"payment_id": payment.id, "invoice_id": invoice.id, "amount": take}
            )
            self.pending_logs.append(
                log_row(
                    Event.payment_recorded, on=payment.date, actor=actor,
                    customer_id=payment.customer_id, invoice_id=invoice.id,
                    payment_id=payment.id, amount=money_text(take, payment.currency),
                    currency=payment.currency,
                    amount_due=money_text(invoice.amount_due, payment.currency),
                    invoice_status=invoice.status,
                )
            )
            report.allocations += 1
        if remaining > 0:
            report.unallocated.append(
                Unallocated(payment.id, payment.customer_id, remaining, payment.currency)
            )
            self.pending_logs.append(
                log_row(
                    Event.payment_recorded, on=payment.date, actor=actor,
                    customer_id=payment.customer_id, invoice_id=None, payment_id=payment.id,
                    amount=money_text(remaining, payment.currency), currency=payment.currency,
                    unallocated=True,
                    named_invoice=payment.invoice_id,
                )
            )
        return touched

    def covered(self, invoice_ids: Iterable[str]) -> list[str]:
        """Those of the invoices an open plan covers, or an unrecovered one: only they can
        close (or recover) a plan."""
        return sorted(
            i for i in invoice_ids
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


# --- disputes ------------------------------------------------------------------------------------


def get_invoice(session: Session, invoice_id: str) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id!r} not found")
    return invoice


def dispute_invoice(
    session: Session,
    invoice_id: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    on: date | None = None,
) -> DisputeResult:
    """Mark an invoice disputed (R10): its plan pauses with reason `dispute` (invoice mode),
    or it leaves the customer's balance (customer mode)."""
    invoice = get_invoice(session, invoice_id)
    if invoice.disputed:
        raise Conflict(f"invoice {invoice_id!r} is already disputed")
    return set_disputed(
        session, invoice, True, on=on or business_today(session), actor=actor, reason=reason
    )


def undispute_invoice(
    session: Session,
    invoice_id: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    on: date | None = None,
) -> DisputeResult:
    """Clear a dispute: the plan paused for it resumes (invoice mode), or the invoice counts in
    the customer's balance again (customer mode)."""
    invoice = get_invoice(session, invoice_id)
    if not invoice.disputed:
        raise Conflict(f"invoice {invoice_id!r} is not disputed")
    return set_disputed(
        session, invoice, False, on=on or business_today(session), actor=actor, reason=reason
    )


def set_disputed(
    session: Session,
    invoice: Invoice,
    disputed: bool,
    *,
    on: date,
    actor: str | None = None,
    reason: str | None = None,
) -> DisputeResult:
    """The effect of a dispute starting or ending, whoever reports it (command or import)."""
    invoice.disputed = disputed
    log(
        session, Event.invoice_disputed if disputed else Event.invoice_undisputed, on=on,
        actor=actor, customer_id=invoice.customer_id, invoice_id=invoice.id, reason=reason,
    )
    result = DisputeResult(invoice.id, disputed)
    if get_settings(session).mode == Mode.customer:
        # the invoice simply leaves (or rejoins) the customer's balance
        session.flush()
        result.plans_recovered = [
            p.id for p in refresh_plans_after_change(session, [invoice.id], on=on, actor=actor)
        ]
    else:
        plans = session.scalars(
            select(Plan)
            .where(
                Plan.invoice_id == invoice.id,
                Plan.status.in_([s.value for s in OPEN_PLAN_STATUSES]),
            )
            .order_by(Plan.id)
        ).all()
        for plan in plans:
            if disputed and plan.status == PlanStatus.active:
                pause_plan(session, plan, reason=DISPUTE_REASON, until=None, on=on, actor=actor)
                result.plans_paused.append(plan.id)
            elif (
                not disputed
                and plan.status == PlanStatus.paused
                and plan.pause_reason == DISPUTE_REASON
            ):
                resume_plan(session, plan, on=on, actor=actor, reason="dispute cleared")
                result.plans_resumed.append(plan.id)
            else:
                result.plans_untouched.append(plan.id)
    recheck_invoices(session, [invoice.id])
    session.flush()
    return result


__all__ = [
    "DisputeResult",
    "ImportReport",
    "Unallocated",
    "dispute_invoice",
    "get_invoice",
    "import_customers",
    "import_invoices",
    "import_payments",
    "known_statuses",
    "set_disputed",
    "undispute_invoice",
]
