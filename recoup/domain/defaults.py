"""The SPEC's defaults for the installation's settings (SPEC §1 Settings), written once.

The domain's `Settings()`, the settings row's column defaults, the migration that creates the
row and the policy file's parser all take them from here.
"""

from __future__ import annotations

from typing import Any

from recoup.domain.enums import CatchUp, Mode

DEFAULT_MODE = Mode.invoice
DEFAULT_INVOICE_TYPES: tuple[str, ...] = ("commercial",)
DEFAULT_MAX_LEVELS = 15
DEFAULT_TIMEZONE = "UTC"
DEFAULT_CATCH_UP = CatchUp.latest

# The id of the one settings row.
SETTINGS_ID = 1


def settings_defaults() -> dict[str, Any]:
    """The settings row's columns with the SPEC's defaults, as stored (JSON-ready values, a new
    dict each call so callers may change it)."""
    return {
        "id": SETTINGS_ID,
        "mode": DEFAULT_MODE.value,
        "invoice_types": list(DEFAULT_INVOICE_TYPES),
        "customer_balance": None,  # None: all of invoice_types
        "max_levels": DEFAULT_MAX_LEVELS,
        "timezone": DEFAULT_TIMEZONE,
        "catch_up": DEFAULT_CATCH_UP.value,
        "company": {},
    }
