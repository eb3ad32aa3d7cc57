"""Languages and countries Recoup knows: what Babel (CLDR) has data for."""

from __future__ import annotations

from functools import cache

from babel import Locale, UnknownLocaleError


def normalize_language(language: str | None) -> str | None:
    """A language as Babel spells it (`pt-BR` -> `pt_BR`); empty: None."""
    if not language:
        return None
    return language.strip().replace("-", "_") or None


@cache
def is_language(code: str) -> bool:
    """A customer language Babel has a locale for: `en`, `fr_CA`, `pt-BR`. An unknown one
    would be rendered in English without a word, so imports refuse it."""
    language = normalize_language(code)
    if language is None:
        return False
    try:
        Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return False
    return True


# CLDR regions that are not countries: unknown region, European Union, Eurozone, United
# Nations, outlying Oceania
_NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO"})


@cache
def known_countries() -> frozenset[str]:
    # CLDR's regions with two letters (three digits are areas, such as 150 for Europe)
    codes = (str(code) for code in Locale("en").territories)
    return frozenset(c for c in codes if len(c) == 2 and c.isalpha()) - _NOT_COUNTRIES


def is_country(code: str) -> bool:
    """An ISO 3166-1 alpha-2 country code, in either case."""
    return code.upper() in known_countries()
