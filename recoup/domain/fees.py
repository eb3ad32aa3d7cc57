"""Late fees and interest (SPEC §3): pure arithmetic, no database, no clock.

Each function returns a decision, `Fee` or `NoFee(reason)`, so the executor can log a clear
reason when nothing is charged ("no fixed fee for currency JPY").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from recoup.domain.money import ZERO, Money, round_money

DAYS_PER_YEAR = Decimal(365)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Fee:
    amount: Decimal
    currency: str

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


@dataclass(frozen=True, slots=True)
class NoFee:
    reason: str


FeeDecision = Fee | NoFee


def _positive(amount: Decimal, currency: str, what: str) -> FeeDecision:
    rounded = round_money(amount, currency)
    if rounded <= ZERO:
        return NoFee(f"{what} is {rounded} {currency}: nothing to charge")
    return Fee(rounded, currency)


def fixed_fee(amounts: Mapping[str, Decimal], currency: str) -> FeeDecision:
    """The configured amount for the currency; a currency with no amount is a clear skip."""
    amount = amounts.get(currency)
    if amount is None:
        return NoFee(f"no fixed fee for currency {currency}")
    return _positive(amount, currency, "fixed fee")


def percent_fee(
    balance: Money,
    rate: Decimal,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> FeeDecision:
    """`rate` percent of the remaining balance, rounded, then clamped to [minimum, maximum]."""
    if balance.amount <= ZERO:
        return NoFee(f"balance is {balance}: nothing to charge")
    fee = round_money(balance.amount * rate / HUNDRED, balance.currency)
    if minimum is not None and fee < minimum:
        fee = minimum
    if maximum is not None and fee > maximum:
        fee = maximum
    return _positive(fee, balance.currency, "percent fee")


def days_overdue(today: date, anchor: date, paused_days: int = 0) -> int:
    """R1: today − anchor date − days spent paused."""
    return (today - anchor).days - paused_days


def interest(balance: Money, annual_rate: Decimal, days: int) -> FeeDecision:
    """Simple interest: balance × annual_rate% × days / 365, rounded to the minor unit."""
    if balance.amount <= ZERO:
        return NoFee(f"balance is {balance}: nothing to charge")
    if days <= 0:
        return NoFee(f"{days} days overdue: no interest")
    amount = balance.amount * annual_rate / HUNDRED * Decimal(days) / DAYS_PER_YEAR
    return _positive(amount, balance.currency, "interest")


__all__ = [
    "Fee",
    "FeeDecision",
    "NoFee",
    "days_overdue",
    "fixed_fee",
    "interest",
    "percent_fee",
]
