"""Customer accounts as a finance team looks them up: the list with what each owes and how many
plans dun it, and one account with its status (and which plan changed it, from what), plans,
open invoices, charges and recent log. Queries only."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, lazyload

from recoup.core.errors import NotFound
from recoup.domain.enums import OPEN_PLAN_STATUSES, Event, InvoiceStatus
from recoup.models import Charge, Customer, Invoice, LogEntry, Plan, StatusChange

OPEN_INVOICE_VALUES = (InvoiceStatus.open.value, InvoiceStatus.partially_paid.value)
OPEN_PLAN_VALUES = tuple(s.value for s in OPEN_PLAN_STATUSES)


@dataclass(frozen=True)
class CustomerSummary:
    customer: Customer
    balances: dict[str, Decimal]  # open invoices' amount due, per currency
    open_plans: int


@dataclass(frozen=True)
class CustomerDetail:
    summary: CustomerSummary
    status_changes: list[StatusChange] = field(default_factory=list)  # newest first
    # the business date the status still held was set (its `status_changed` log entry)
    status_set_on: date | None = None
    plans: list[Plan] = field(default_factory=list)
    open_invoices: list[Invoice] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)  # the latest entries, oldest first


def _balances(session: Session, ids: list[str]) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for start in range(0, len(ids), 1000):
        for customer_id, currency, total in session.execute(
            select(Invoice.customer_id, Invoice.currency, func.sum(Invoice.amount_due))
            .where(
                Invoice.customer_id.in_(ids[start : start + 1000]),
                Invoice.status.in_(OPEN_INVOICE_VALUES),
                Invoice.amount_due > 0,
            )
            .group_by(Invoice.customer_id, Invoice.currency)
            .order_by(Invoice.customer_id, Invoice.currency)
        ):
            out[customer_id][currency] = Decimal(total or 0)
    return out


def _open_plans(session: Session, ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(ids), 1000):
        for customer_id, count in session.execute(
            select(Plan.customer_id, func.count())
            .where(
                Plan.customer_id.in_(ids[start : start + 1000]),
                Plan.status.in_(OPEN_PLAN_VALUES),
            )
            .group_by(Plan.customer_id)
        ):
            out[customer_id] = count
    return out


def list_customers(
    session: Session,
    *,
    status: str | None = None,
    search: str | None = None,
    limit: int = 1000,
) -> list[CustomerSummary]:
    """Customers by id; `search` looks in the id, name, email and phone (any case)."""
    query = select(Customer).order_by(Customer.id).limit(limit)
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
    customers = list(session.scalars(query))
    ids = [c.id for c in customers]
    balances = _balances(session, ids)
    plans = _open_plans(session, ids)
    return [CustomerSummary(c, dict(balances.get(c.id, {})), plans.get(c.id, 0)) for c in customers]


def customer_detail(session: Session, customer_id: str, *, log_limit: int = 20) -> CustomerDetail:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} not found")
    summary = CustomerSummary(
        customer,
        dict(_balances(session, [customer_id]).get(customer_id, {})),
        _open_plans(session, [customer_id]).get(customer_id, 0),
    )
    changes = list(
        session.scalars(
            select(StatusChange)
            .where(StatusChange.customer_id == customer_id)
            .order_by(StatusChange.id.desc())
        )
    )
    held = [c for c in changes if c.restored_at is None]
    set_on = None
    if held:
        set_on = session.scalar(
            select(LogEntry.on)
            .where(
                LogEntry.plan_id == held[-1].plan_id,
                LogEntry.customer_id == customer_id,
                LogEntry.event == Event.status_changed.value,
            )
            .order_by(LogEntry.id.desc())
            .limit(1)
        )
    plans = list(
        session.scalars(
            select(Plan)
            .options(lazyload(Plan.policy))
            .where(Plan.customer_id == customer_id)
            .order_by(Plan.id)
        )
    )
    invoices = list(
        session.scalars(
            select(Invoice)
            .options(lazyload(Invoice.customer))
            .where(Invoice.customer_id == customer_id, Invoice.status.in_(OPEN_INVOICE_VALUES))
            .order_by(Invoice.due_date, Invoice.id)
        )
    )
    charges = list(
        session.scalars(select(Charge).where(Charge.customer_id == customer_id).order_by(Charge.id))
    )
    log = list(
        session.scalars(
            select(LogEntry)
            .where(LogEntry.customer_id == customer_id)
            .order_by(LogEntry.id.desc())
            .limit(log_limit)
        )
    )
    log.reverse()
    return CustomerDetail(summary, changes, set_on, plans, invoices, charges, log)


__all__ = ["CustomerDetail", "CustomerSummary", "customer_detail", "list_customers"]
