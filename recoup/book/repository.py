"""Every read query of the book: customers, invoices, payments, and what the book needs to know
of the plans over them. Services and faces call these; none of them writes.

Lists are ordered by a unique key and paged with an opaque cursor: `(rows, next_cursor)`, where
`next_cursor` is None on the last page. Queries over many ids take any number of them and ask a
chunk at a time (IN lists stay under SQLite's limits), never a row at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Row, bindparam, exists, func, literal_column, or_, select, tuple_
from sqlalchemy.orm import Session, lazyload

from recoup.core.db import table_of
from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import Keyset, decode_cursor
from recoup.domain.enums import OPEN_INVOICE_VALUES, ActionType, Event, PlanStatus
from recoup.models import (
    ActionRow,
    Charge,
    Customer,
    Invoice,
    LogEntry,
    Payment,
    PaymentAllocation,
    Plan,
    PolicyRow,
    StatusChange,
)
from recoup.plans.links import plan_links

CHUNK = 1000  # ids per query (and rows per write); keeps IN lists under SQLite's limits

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ids(ids: Iterable[str]) -> list[str]:
    return sorted(set(ids))


# --- customers -----------------------------------------------------------------------------------


def get_customer_or_not_found(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} not found")
    return customer


def list_customers(
    session: Session,
    *,
    status: str | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 1000,
    before: bool = False,
) -> tuple[list[Customer], str | None]:
    """Customers by id; `search` looks in the id, name, email and phone (any case);
    `before`: the page before the cursor's customer."""
    keyset = Keyset(before=before)
    query = select(Customer).order_by(*keyset.order(Customer.id)).limit(max(limit, 0) + 1)
    if status:
        query = query.where(Customer.status == status)
    if search and search.strip():
        # the text is a value, never a pattern: LIKE's wildcards in it are matched as such
        text = search.strip().lower()
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (Customer.id, Customer.name, Customer.email, Customer.phone)
                )
            )
        )
    if cursor is not None:
        key = decode_cursor(cursor)
        if len(key) != 1 or not isinstance(key[0], str):
            raise InvalidInput("{field}: not a cursor this list gave out", field="cursor")
        query = query.where(keyset.past(Customer.id, key[0]))
    return keyset.page(list(session.scalars(query)), limit)


def customers_by_id(session: Session, ids: Iterable[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for chunk in chunks(_ids(ids)):
        found.update(
            (c.id, c) for c in session.scalars(select(Customer).where(Customer.id.in_(chunk)))
        )
    return found


def existing_customer_ids(session: Session, ids: Iterable[str]) -> set[str]:
    return _existing(session, Customer.id, ids)


def customer_statuses(session: Session, ids: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunks(_ids(ids)):
        found.update(
            (customer_id, status)
            for customer_id, status in session.execute(
                select(Customer.id, Customer.status).where(Customer.id.in_(chunk))
            )
        )
    return found


def balances(session: Session, customer_ids: Iterable[str]) -> dict[str, dict[str, Decimal]]:
    """What each customer owes on its open invoices, per currency."""
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for chunk in chunks(_ids(customer_ids)):
        for customer_id, currency, total in session.execute(
            select(Invoice.customer_id, Invoice.currency, func.sum(Invoice.amount_due))
            .where(Invoice.customer_id.in_(chunk), Invoice.is_open, Invoice.amount_due > 0)
            .group_by(Invoice.customer_id, Invoice.currency)
            .order_by(Invoice.customer_id, Invoice.currency)
        ):
            out[customer_id][currency] = Decimal(total or 0)
    return out


def open_plan_counts(session: Session, customer_ids: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for chunk in chunks(_ids(customer_ids)):
        for customer_id, count in session.execute(
            select(Plan.customer_id, func.count())
            .where(Plan.customer_id.in_(chunk), Plan.is_open)
            .group_by(Plan.customer_id)
        ):
            out[customer_id] = count
    return out


def status_changes(session: Session, customer_id: str) -> list[StatusChange]:
    """The account status changes dunning made (R12), newest first."""
    return list(
        session.scalars(
            select(StatusChange)
            .where(StatusChange.customer_id == customer_id)
            .order_by(StatusChange.id.desc())
        )
    )


def status_set_on(session: Session, customer_id: str, plan_id: int) -> date | None:
    """The business date of the plan's latest `status_changed` entry for the customer."""
    return session.scalar(
        select(LogEntry.on)
        .where(
            LogEntry.plan_id == plan_id,
            LogEntry.customer_id == customer_id,
            LogEntry.event == Event.status_changed.value,
        )
        .order_by(LogEntry.id.desc())
        .limit(1)
    )


def plans_of_customer(session: Session, customer_id: str) -> list[Plan]:
    return list(
        session.scalars(
            select(Plan)
            .options(lazyload(Plan.policy))
            .where(Plan.customer_id == customer_id)
            .order_by(Plan.id)
        )
    )


def open_invoices_of_customer(session: Session, customer_id: str) -> list[Invoice]:
    """Oldest due first."""
    return list(
        session.scalars(
            select(Invoice)
            .options(lazyload(Invoice.customer))
            .where(Invoice.customer_id == customer_id, Invoice.is_open)
            .order_by(Invoice.due_date, Invoice.id)
        )
    )


def charges_of_customer(session: Session, customer_id: str) -> list[Charge]:
    return list(
        session.scalars(select(Charge).where(Charge.customer_id == customer_id).order_by(Charge.id))
    )


def latest_log_of_customer(session: Session, customer_id: str, limit: int) -> list[LogEntry]:
    """The latest `limit` entries, oldest first."""
    entries = list(
        session.scalars(
            select(LogEntry)
            .where(LogEntry.customer_id == customer_id)
            .order_by(LogEntry.id.desc())
            .limit(limit)
        )
    )
    entries.reverse()
    return entries


def policy_names(session: Session) -> list[str]:
    return sorted(session.scalars(select(PolicyRow.name)))


def statuses_set_by_actions(session: Session) -> set[str]:
    """The account statuses some change_account_status action sets (R12)."""
    found: set[str] = set()
    for params in session.scalars(
        select(ActionRow.params).where(ActionRow.type == ActionType.change_account_status.value)
    ):
        status = (params or {}).get("status")
        if status:
            found.add(str(status))
    return found


# --- invoices ------------------------------------------------------------------------------------


def get_invoice_or_not_found(session: Session, invoice_id: str) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id!r} not found")
    return invoice


def list_invoices(
    session: Session,
    *,
    status: str | None = None,
    open_only: bool = False,
    customer_id: str | None = None,
    currency: str | None = None,
    cursor: str | None = None,
    limit: int = 1000,
    before: bool = False,
) -> tuple[list[Invoice], str | None]:
    """Invoices oldest due first (then by id); `open_only`: open and partially paid ones;
    `before`: the page before the cursor's invoice."""
    keyset = Keyset(before=before)
    query = (
        select(Invoice)
        .options(lazyload(Invoice.customer))
        .order_by(*keyset.order(Invoice.due_date, Invoice.id))
        .limit(max(limit, 0) + 1)
    )
    if status:
        query = query.where(Invoice.status == status)
    if open_only:
        query = query.where(Invoice.is_open)
    if customer_id:
        query = query.where(Invoice.customer_id == customer_id)
    if currency:
        query = query.where(Invoice.currency == currency.upper())
    if cursor is not None:
        key = decode_cursor(cursor)
        try:
            due, last_id = date.fromisoformat(key[0]), key[1]
        except (IndexError, TypeError, ValueError):
            raise InvalidInput("{field}: not a cursor this list gave out", field="cursor") from None
        query = query.where(keyset.past(tuple_(Invoice.due_date, Invoice.id), tuple_(due, last_id)))
    return keyset.page(
        list(session.scalars(query)), limit, lambda i: [i.due_date.isoformat(), i.id]
    )


def invoices_by_id(session: Session, ids: Iterable[str]) -> dict[str, Invoice]:
    found: dict[str, Invoice] = {}
    for chunk in chunks(_ids(ids)):
        found.update(
            (inv.id, inv)
            for inv in session.scalars(
                select(Invoice).options(lazyload(Invoice.customer)).where(Invoice.id.in_(chunk))
            )
        )
    return found


def lock_invoices(session: Session, ids: Iterable[str]) -> dict[str, Invoice]:
    """The invoices, locked in id order (as the run locks a chunk's) and read afresh. FOR NO KEY
    UPDATE, the lock their update takes: a worker's log row naming an invoice (a foreign key's
    KEY SHARE) does not wait for it. SQLite: the caller holds the write lock."""
    found: dict[str, Invoice] = {}
    for chunk in chunks(_ids(ids)):
        for inv in session.scalars(
            select(Invoice)
            .options(lazyload(Invoice.customer))
            .where(Invoice.id.in_(chunk))
            .order_by(Invoice.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        ):
            found[inv.id] = inv
    return found


_INVOICES = table_of(Invoice)
_PAYMENTS = table_of(Payment)
# what a payment reads and changes of an invoice
_OWED_COLUMNS = (
    _INVOICES.c.id,
    _INVOICES.c.customer_id,
    _INVOICES.c.currency,
    _INVOICES.c.due_date,
    _INVOICES.c.amount_due,
    _INVOICES.c.status,
)
# the invoice a payment names, locked as lock_invoices locks it: the columns a payment reads and
# changes, as a row (no ORM object), and whether the payment was recorded before; built once,
# a payment through the API runs it every time
_LOCK_OWED = (
    select(
        *_OWED_COLUMNS,
        exists().where(_PAYMENTS.c.id == bindparam("payment_id")).label("payment_recorded"),
    )
    .where(_INVOICES.c.id == bindparam("invoice_id"))
    .with_for_update(key_share=True, of=_INVOICES)
)


def lock_owed(session: Session, invoice_id: str, payment_id: str) -> Row[*tuple[Any, ...]] | None:
    """(id, customer_id, currency, due_date, amount_due, status, payment_recorded) of the
    invoice, locked as lock_invoices locks it (SQLite: the caller holds the write lock), or
    None; `payment_recorded`: whether a payment `payment_id` exists already."""
    return session.execute(_LOCK_OWED, {"invoice_id": invoice_id, "payment_id": payment_id}).first()


# a payment naming no invoice: whether it was recorded before, whether its customer exists
_PAYMENT_AND_CUSTOMER = select(
    exists().where(_PAYMENTS.c.id == bindparam("payment_id")),
    exists().where(table_of(Customer).c.id == bindparam("customer_id")),
)
# ... and the invoices it can spread over, locked as lock_invoices locks them, in id order
_LOCK_OWING = (
    select(*_OWED_COLUMNS)
    .where(
        _INVOICES.c.customer_id == bindparam("customer_id"),
        _INVOICES.c.status.in_([literal_column(f"'{s}'") for s in OPEN_INVOICE_VALUES]),
        _INVOICES.c.amount_due > 0,
    )
    .order_by(_INVOICES.c.id)
    .with_for_update(key_share=True)
)


def payment_and_customer(session: Session, payment_id: str, customer_id: str) -> tuple[bool, bool]:
    """(whether payment `payment_id` was recorded, whether customer `customer_id` exists)."""
    recorded, known = session.execute(
        _PAYMENT_AND_CUSTOMER, {"payment_id": payment_id, "customer_id": customer_id}
    ).one()
    return bool(recorded), bool(known)


def lock_owing(session: Session, customer_id: str) -> Sequence[Row[*tuple[Any, ...]]]:
    """(id, customer_id, currency, due_date, amount_due, status) of the customer's open invoices
    with something due (open_invoice_ids(owing=True)), locked as lock_invoices locks them
    (SQLite: the caller holds the write lock)."""
    return session.execute(_LOCK_OWING, {"customer_id": customer_id}).all()


def invoice_owners(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """invoice id -> (customer id, currency)."""
    found: dict[str, tuple[str, str]] = {}
    for chunk in chunks(_ids(ids)):
        for invoice_id, customer_id, currency in session.execute(
            select(Invoice.id, Invoice.customer_id, Invoice.currency).where(Invoice.id.in_(chunk))
        ):
            found[invoice_id] = (customer_id, currency)
    return found


def open_invoice_ids(
    session: Session, customer_ids: Iterable[str], *, owing: bool = False
) -> list[str]:
    """The open invoices of the customers; `owing`: only those with something still due."""
    found: list[str] = []
    for chunk in chunks(_ids(customer_ids)):
        query = select(Invoice.id).where(Invoice.customer_id.in_(chunk), Invoice.is_open)
        if owing:
            query = query.where(Invoice.amount_due > 0)
        found.extend(session.scalars(query))
    return found


def invoices_paid_into(session: Session, ids: Iterable[str]) -> set[str]:
    """Those of the invoices some payment was allocated to."""
    return _existing(session, PaymentAllocation.invoice_id, ids)


# --- payments ------------------------------------------------------------------------------------


def payments_by_id(session: Session, ids: Iterable[str]) -> dict[str, Payment]:
    found: dict[str, Payment] = {}
    for chunk in chunks(_ids(ids)):
        found.update(
            (p.id, p) for p in session.scalars(select(Payment).where(Payment.id.in_(chunk)))
        )
    return found


def get_payment_or_not_found(session: Session, payment_id: str) -> Payment:
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id!r} not found")
    return payment


def allocations_of_payment(session: Session, payment_id: str) -> list[PaymentAllocation]:
    """How the payment was spread, in the order it was (oldest due first)."""
    return list(
        session.scalars(
            select(PaymentAllocation)
            .where(PaymentAllocation.payment_id == payment_id)
            .order_by(PaymentAllocation.id)
        )
    )


# --- the plans over the book's invoices ----------------------------------------------------------


def open_plans_of_invoice(session: Session, invoice_id: str) -> list[Plan]:
    """Invoice mode: the open plans dunning this invoice alone."""
    return list(
        session.scalars(
            select(Plan).where(Plan.invoice_id == invoice_id, Plan.is_open).order_by(Plan.id)
        ).all()
    )


def invoices_with_open_plan(session: Session, ids: Iterable[str]) -> set[str]:
    """Those of the invoices an invoice-mode plan is open on."""
    found: set[str] = set()
    for chunk in chunks(_ids(ids)):
        found.update(
            session.scalars(select(Plan.invoice_id).where(Plan.invoice_id.in_(chunk), Plan.is_open))
        )
    return found


def invoices_of_unrecovered_plans(session: Session, ids: Iterable[str]) -> set[str]:
    """Those of the invoices a plan (any mode) ended `unrecovered` on."""
    links = plan_links()
    found: set[str] = set()
    for chunk in chunks(_ids(ids)):
        found.update(
            session.scalars(
                select(links.c.invoice_id)
                .join(Plan, Plan.id == links.c.plan_id)
                .where(links.c.invoice_id.in_(chunk), Plan.status == PlanStatus.unrecovered.value)
            )
        )
    return found


def open_plans_covering(session: Session, ids: Iterable[str]) -> list[tuple[str, int, str]]:
    """(invoice id, plan id, plan's customer id) for each open plan covering one of the
    invoices, in either mode."""
    links = plan_links()
    found: list[tuple[str, int, str]] = []
    for chunk in chunks(_ids(ids)):
        found.extend(
            (invoice_id, plan_id, customer_id)
            for invoice_id, plan_id, customer_id in session.execute(
                select(links.c.invoice_id, Plan.id, Plan.customer_id)
                .join(Plan, Plan.id == links.c.plan_id)
                .where(links.c.invoice_id.in_(chunk), Plan.is_open)
            )
        )
    return found


def accounts_with_open_plan(session: Session, customer_ids: Iterable[str]) -> set[tuple[str, str]]:
    """Customer mode: the (customer, currency) accounts of the customers an open plan dunns."""
    found: set[tuple[str, str]] = set()
    for chunk in chunks(_ids(customer_ids)):
        found.update(
            (customer_id, currency)
            for customer_id, currency in session.execute(
                select(Plan.customer_id, Plan.currency).where(
                    Plan.customer_id.in_(chunk), Plan.invoice_id.is_(None), Plan.is_open
                )
            )
        )
    return found


def _existing(session: Session, column: Any, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in chunks(_ids(ids)):
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


__all__ = [
    "CHUNK",
    "accounts_with_open_plan",
    "allocations_of_payment",
    "balances",
    "charges_of_customer",
    "chunks",
    "customer_statuses",
    "customers_by_id",
    "existing_customer_ids",
    "get_customer_or_not_found",
    "get_payment_or_not_found",
    "get_invoice_or_not_found",
    "invoice_owners",
    "invoices_by_id",
    "invoices_of_unrecovered_plans",
    "invoices_paid_into",
    "invoices_with_open_plan",
    "latest_log_of_customer",
    "list_customers",
    "list_invoices",
    "lock_invoices",
    "lock_owed",
    "lock_owing",
    "open_invoice_ids",
    "open_invoices_of_customer",
    "open_plan_counts",
    "open_plans_covering",
    "open_plans_of_invoice",
    "payment_and_customer",
    "payments_by_id",
    "plans_of_customer",
    "policy_names",
    "status_changes",
    "status_set_on",
    "statuses_set_by_actions",
]
