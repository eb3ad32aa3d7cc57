"""Jinja filters of the pages: money with its currency's decimals, dates, plain numbers."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment

from recoup.domain.money import money_text


def money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return "—"
    text = money_text(amount, currency)
    whole, _, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-')):,}".replace(",", "\u202f")  # a thin space between thousands
    return f"{sign}{whole}{'.' + cents if cents else ''} {currency}"


def amount(value: Decimal | None, currency: str | None) -> str:
    """An amount as one types it (1200.00): for form fields."""
    if value is None or currency is None:
        return ""
    return money_text(value, currency)


def day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def clock(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%H:%M UTC")


def percent(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    return f"{Decimal(str(value)) * 100:.1f} %"


def install(env: Environment) -> None:
    filters: dict[str, Any] = {
        "money": money,
        "amount": amount,
        "day": day,
        "clock": clock,
        "percent": percent,
    }
    env.filters.update(filters)


__all__ = ["amount", "clock", "day", "install", "money", "percent"]
