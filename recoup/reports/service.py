"""The receivables report: what was billed, collected and is still owed per currency, the
aging of what is owed, and how dunning ended (SPEC §5's dashboard numbers, for the CLI now).

Aggregated in SQL by currency and due date (recoup.reports.repository), then bucketed with the
pure `recoup.domain.aging`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from recoup.domain.aging import AGING_BUCKETS, aging_bucket
from recoup.domain.enums import OPEN_INVOICE_VALUES, ChargeStatus, InvoiceStatus, PlanStatus
from recoup.domain.money import money_text
from recoup.reports import repository

ZERO = Decimal(0)


@dataclass
class AgingCell:
    amount: Decimal = ZERO
    invoices: int = 0


@dataclass
class CurrencyFigures:
    currency: str
    billed: Decimal = ZERO  # every invoice but cancelled ones
    collected: Decimal = ZERO  # payments received
    outstanding: Decimal = ZERO  # still due on open invoices
    disputed: Decimal = ZERO  # of which on disputed invoices
    fees: Decimal = ZERO  # late fees and interest charged
    fees_waived: Decimal = ZERO  # of which waived: not owed
    fees_exported: Decimal = ZERO  # of which handed to the billing system
    fees_owed: Decimal = ZERO  # of which still open: owed on top of the invoices
    invoices: int = 0
    invoices_open: int = 0
    aging: dict[str, AgingCell] = field(
        default_factory=lambda: {bucket.key: AgingCell() for bucket in AGING_BUCKETS}
    )
    plans: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in PlanStatus})

    @property
    def collected_share(self) -> float | None:
        return float(self.collected / self.billed) if self.billed > 0 else None

    @property
    def total_owed(self) -> Decimal:
        return self.outstanding + self.fees_owed

    @property
    def collected_of_due(self) -> float | None:
        """Of all that fell due (collected, and invoices and open fees still owed), the
        share collected: unpaid fees keep it below 100 %."""
        due = self.collected + self.total_owed
        return float(self.collected / due) if due > 0 else None

    @property
    def recovery_rate(self) -> float | None:
        """Of the plans that ended by payment or at the last level, the share paid."""
        recovered = self.plans[PlanStatus.recovered.value]
        ended = recovered + self.plans[PlanStatus.unrecovered.value]
        return recovered / ended if ended else None

    def as_dict(self, as_of: date) -> dict[str, Any]:
        def text(amount: Decimal) -> str:
            return money_text(amount, self.currency)

        return {
            "currency": self.currency,
            "as_of": as_of.isoformat(),
            "billed": text(self.billed),
            "collected": text(self.collected),
            "outstanding": text(self.outstanding),
            "disputed": text(self.disputed),
            "fees": text(self.fees),
            "fees_waived": text(self.fees_waived),
            "fees_exported": text(self.fees_exported),
            "fees_owed": text(self.fees_owed),
            "total_owed": text(self.total_owed),
            "invoices": self.invoices,
            "invoices_open": self.invoices_open,
            "aging": {
                key: {"amount": text(cell.amount), "invoices": cell.invoices}
                for key, cell in self.aging.items()
            },
            "plans": dict(self.plans),
            "recovery_rate": self.recovery_rate,
        }


@dataclass
class BookReport:
    as_of: date
    currencies: list[CurrencyFigures]

    def as_rows(self) -> list[dict[str, Any]]:
        return [figures.as_dict(self.as_of) for figures in self.currencies]


def book_report(session: Session, as_of: date) -> BookReport:
    """The book per currency, with what is still owed aged as of `as_of` (days past due on
    that date; amounts are those due now)."""
    figures: dict[str, CurrencyFigures] = {}

    def of(currency: str) -> CurrencyFigures:
        if currency not in figures:
            figures[currency] = CurrencyFigures(currency)
        return figures[currency]

    for currency, due_date, status, disputed, count, amount, due in repository.invoice_totals(
        session
    ):
        if status == InvoiceStatus.cancelled.value:
            continue
        row = of(currency)
        row.invoices += count
        row.billed += amount
        if status in OPEN_INVOICE_VALUES and due > 0:
            row.invoices_open += count
            row.outstanding += due
            if disputed:
                row.disputed += due
            cell = row.aging[aging_bucket(due_date, as_of).key]
            cell.amount += due
            cell.invoices += count
    for currency, total in repository.payment_totals(session):
        of(currency).collected += total
    _add_fees(session, of)
    for currency, status, count in repository.plan_counts(session):
        of(currency).plans[status] = count
    return BookReport(as_of, [figures[c] for c in sorted(figures)])


FEE_FIELDS = {
    ChargeStatus.open.value: "fees_owed",
    ChargeStatus.exported.value: "fees_exported",
    ChargeStatus.waived.value: "fees_waived",
}


def _add_fees(session: Session, of: Callable[[str], CurrencyFigures]) -> None:
    """Fees charged, and by status: still owed (open), exported, waived."""
    for currency, status, amount in repository.charge_totals(session):
        row = of(currency)
        row.fees += amount
        attribute = FEE_FIELDS.get(status)
        if attribute is not None:
            setattr(row, attribute, getattr(row, attribute) + amount)


# --- the dashboard's trends (issue 12) -------------------------------------------------------

DSO_DAYS = 90  # days of billing the DSO compares what is owed with
TREND_WEEKS = 12


@dataclass
class WeekFigures:
    """One week (Monday to Sunday): what was received, and how the plans that ended ended."""

    start: date
    collected: Decimal = ZERO
    recovered: int = 0
    unrecovered: int = 0

    @property
    def recovery_rate(self) -> float | None:
        ended = self.recovered + self.unrecovered
        return self.recovered / ended if ended else None


@dataclass
class CurrencyTrends:
    currency: str
    weeks: list[WeekFigures]
    billed_recently: Decimal = ZERO  # billed in the DSO_DAYS up to as_of
    levels: dict[str, int] = field(default_factory=dict)  # open plans by level ("" none yet)

    def dso(self, outstanding: Decimal) -> Decimal | None:
        """Days sales outstanding: what is owed now over what was billed in the last
        DSO_DAYS days, times DSO_DAYS (the count-back-free 'simple' method). None without
        billing in that span."""
        if self.billed_recently <= 0:
            return None
        return (outstanding / self.billed_recently * DSO_DAYS).quantize(Decimal("0.1"))


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def trends(session: Session, as_of: date, *, weeks: int = TREND_WEEKS) -> dict[str, CurrencyTrends]:
    """Per currency: the last `weeks` weeks up to `as_of` (received, plans ended), what was
    billed in the last DSO_DAYS days, and the open plans by level."""
    first_week = week_start(as_of) - timedelta(weeks=weeks - 1)
    starts = [first_week + timedelta(weeks=n) for n in range(weeks)]
    found: dict[str, CurrencyTrends] = {}

    def of(currency: str) -> CurrencyTrends:
        if currency not in found:
            found[currency] = CurrencyTrends(currency, [WeekFigures(start) for start in starts])
        return found[currency]

    def week(currency: str, day: date) -> WeekFigures | None:
        index = (week_start(day) - first_week).days // 7
        return of(currency).weeks[index] if 0 <= index < weeks else None

    for currency, day, amount in repository.payments_by_day(session, first_week):
        cell = week(currency, day)
        if cell is not None:
            cell.collected += amount
    for currency, day, status, count in repository.plans_ended_by_day(session, first_week):
        cell = week(currency, day)
        if cell is None:
            continue
        if status == PlanStatus.recovered.value:
            cell.recovered += count
        else:
            cell.unrecovered += count
    since = as_of - timedelta(days=DSO_DAYS - 1)
    for currency, amount in repository.billed_between(session, since, as_of):
        of(currency).billed_recently += amount
    for currency, level, count in repository.open_plans_by_level(session):
        levels = of(currency).levels
        levels[level or ""] = levels.get(level or "", 0) + count
    return found
