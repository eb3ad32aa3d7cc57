"""Money and shares as people read them in reports: Babel for amounts, bars for shares."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from babel import Locale
from babel.numbers import format_currency


def money(amount: Decimal, currency: str, locale: str) -> str:
    return str(format_currency(amount, currency, locale=locale))


def whole(amount: Decimal, currency: str, locale: str) -> str:
    """Rounded to whole units (half up), as summaries and aging reports show them, with the
    symbol where the locale puts it (€150, 150 €)."""
    rounded = amount.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return str(
        format_currency(
            rounded, currency, _whole_pattern(locale), locale=locale, currency_digits=False
        )
    )


@cache
def _whole_pattern(locale: str) -> str:
    """The locale's currency pattern without its decimals ("#,##0.00 ¤" -> "#,##0 ¤")."""
    pattern = Locale.parse(locale).currency_formats["standard"].pattern
    return re.sub(r"\.[0#]+", "", pattern)


def bar(fraction: float | None, width: int = 6) -> str:
    """A horizontal bar for terminal charts: filled share, then the rest; blank for none."""
    if fraction is None:
        return ""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {fraction:>4.0%}"


def share(part: Decimal, total: Decimal) -> float | None:
    return float(part / total) if total > 0 else None
