"""Money: a Decimal amount with an ISO 4217 currency. Rounding happens here and only here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

ZERO = Decimal(0)


class CurrencyMismatch(ValueError):
    pass


@cache
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in known_currencies()


@cache
def minor_unit(currency: str) -> Decimal:
    """The smallest amount of a currency: 0.01 for EUR, 1 for JPY, 0.001 for KWD."""
    digits: int = get_currency_precision(currency)
    return Decimal(1).scaleb(-digits)


def money_text(amount: Decimal, currency: str) -> str:
    """An amount as text with its currency's decimals (50 -> "50.00" EUR), never rounded."""
    unit = minor_unit(currency)
    return str(amount.quantize(unit)) if amount % unit == 0 else str(amount)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (Python's round() is half-even)."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def parse_amount(text: str | int | Decimal) -> Decimal:
    """Parse a decimal string strictly; floats are refused so no binary rounding sneaks in."""
    if isinstance(text, (bool, float)):
        raise ValueError(f"amount must be a decimal string, not {type(text).__name__}")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def rounded(self) -> Money:
        return Money(round_money(self.amount, self.currency), self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(ZERO, currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
