"""The queries of the receivables report: totals by currency, aggregated in SQL (a few
thousand rows for any book). Amounts are summed as the stored integers and converted once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, func, select, type_coerce
from sqlalchemy.orm import Session

from recoup.core.db import amount_from_db
from recoup.domain.enums import InvoiceStatus, PlanStatus
from recoup.models import Charge, Invoice, Payment, Plan


def _stored_sum(column: Any) -> Any:
    """SUM of an amount column as the stored integers (1/10,000ths): exact, converted once
    by `amount_from_db` (the column type would convert a sum as if it were one amount)."""
    return func.sum(type_coerce(column, BigInteger))


def invoice_totals(
    session: Session,
) -> Iterator[tuple[str, date, str, bool, int, Decimal, Decimal]]:
    """(currency, due date, status, disputed, count, amount, amount due) per group."""
    rows = session.execute(
        select(
            Invoice.currency,
            Invoice.due_date,
            Invoice.status,
            Invoice.disputed,
            func.count(),
            _stored_sum(Invoice.amount),
            _stored_sum(Invoice.amount_due),
        ).group_by(Invoice.currency, Invoice.due_date, Invoice.status, Invoice.disputed)
    )
    for currency, due_date, status, disputed, count, amount, amount_due in rows:
        yield (
            currency,
            due_date,
            status,
            disputed,
            count,
            amount_from_db(amount),
            amount_from_db(amount_due),
        )


def payment_totals(session: Session) -> Iterator[tuple[str, Decimal]]:
    """(currency, payments received)."""
    for currency, total in session.execute(
        select(Payment.currency, _stored_sum(Payment.amount)).group_by(Payment.currency)
    ):
        yield currency, amount_from_db(total)


def charge_totals(session: Session) -> Iterator[tuple[str, str, Decimal]]:
    """(currency, charge status, amount charged)."""
    for currency, status, total in session.execute(
        select(Charge.currency, Charge.status, _stored_sum(Charge.amount)).group_by(
            Charge.currency, Charge.status
        )
    ):
        yield currency, status, amount_from_db(total)


def plan_counts(session: Session) -> list[tuple[str, str, int]]:
    """(currency, plan status, how many plans)."""
    rows = session.execute(
        select(Plan.currency, Plan.status, func.count()).group_by(Plan.currency, Plan.status)
    )
    return [(currency, status, count) for currency, status, count in rows]


def payments_by_day(session: Session, since: date) -> Iterator[tuple[str, date, Decimal]]:
    """(currency, payment date, received) for payments dated `since` or later."""
    for currency, day, total in session.execute(
        select(Payment.currency, Payment.date, _stored_sum(Payment.amount))
        .where(Payment.date >= since)
        .group_by(Payment.currency, Payment.date)
    ):
        yield currency, day, amount_from_db(total)


def plans_ended_by_day(session: Session, since: date) -> list[tuple[str, date, str, int]]:
    """(currency, closing date, recovered or unrecovered, how many) for plans that ended by
    payment or at their last level on `since` or later."""
    ended = (PlanStatus.recovered.value, PlanStatus.unrecovered.value)
    rows = session.execute(
        select(Plan.currency, Plan.closed_on, Plan.status, func.count())
        .where(Plan.status.in_(ended), Plan.closed_on >= since)
        .group_by(Plan.currency, Plan.closed_on, Plan.status)
    )
    return [(currency, day, status, count) for currency, day, status, count in rows]


def billed_between(session: Session, first: date, last: date) -> Iterator[tuple[str, Decimal]]:
    """(currency, amount billed) by invoices issued from `first` to `last`, not cancelled."""
    for currency, total in session.execute(
        select(Invoice.currency, _stored_sum(Invoice.amount))
        .where(
            Invoice.issue_date >= first,
            Invoice.issue_date <= last,
            Invoice.status != InvoiceStatus.cancelled.value,
        )
        .group_by(Invoice.currency)
    ):
        yield currency, amount_from_db(total)


def open_plans_by_level(session: Session) -> list[tuple[str, str | None, int]]:
    """(currency, level, how many open plans); level None: opened, no level reached yet."""
    rows = session.execute(
        select(Plan.currency, Plan.level, func.count())
        .where(Plan.is_open)
        .group_by(Plan.currency, Plan.level)
    )
    return [(currency, level, count) for currency, level, count in rows]


__all__ = [
    "billed_between",
    "charge_totals",
    "invoice_totals",
    "open_plans_by_level",
    "payment_totals",
    "plan_counts",
    "payments_by_day",
    "plans_ended_by_day",
]
