"""The settings as the API shows and takes them (SPEC §1 Settings, §4 `settings:`).

`SettingsUpdate` reads its body with the policy file's settings reader
(`recoup.settings.document.parse_settings`): a value is refused with the same words as in a
file, at its field (`max_levels`, `company.city`). The rules that need the database (R11: the
mode and invoice types while plans are open) are the validator's, when the change is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import model_validator

from recoup.core.reader import issues_error
from recoup.core.schemas import Schema, Timestamp
from recoup.domain.enums import CatchUp, Mode
from recoup.domain.policy import Settings
from recoup.domain.validation import validate_settings
from recoup.settings.document import read_settings, settings_to_dict

_ROOT = "settings"


class SettingsRead(Schema):
    mode: Mode
    invoice_types: list[str]
    customer_balance: list[str] | None = None  # None: all of invoice_types
    max_levels: int
    timezone: str
    catch_up: CatchUp
    company: dict[str, str]
    updated_at: Timestamp | None = None


class SettingsUpdate(Schema):
    """The fields given replace the current ones; `customer_balance: null` goes back to all of
    `invoice_types`."""

    mode: Mode | None = None
    invoice_types: list[str] | None = None
    customer_balance: list[str] | None = None
    max_levels: int | None = None
    timezone: str | None = None
    catch_up: CatchUp | None = None
    company: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_like_the_file(cls, data: Any) -> Any:
        """The policy file's reader judges every value; what it keeps is what is taken."""
        settings, issues = read_settings(data, _ROOT)
        if issues:
            raise issues_error("the settings", issues, _ROOT)
        given = data if isinstance(data, Mapping) else {}
        read = settings_to_dict(settings)
        read.setdefault("customer_balance", None)
        read.setdefault("company", {})
        return {key: read[key] for key in given}

    def applied_to(self, current: Settings) -> Settings:
        """`current` with the fields given replaced, checked as the policy file's settings are
        (R11, which needs the database, is checked when the change is applied)."""
        changes: dict[str, Any] = {}
        for key in self.model_fields_set:
            value = getattr(self, key)
            if key in ("invoice_types", "customer_balance") and value is not None:
                value = tuple(value)
            if key != "customer_balance" and value is None:
                continue
            changes[key] = value
        settings = replace(current, **changes)
        issues = validate_settings(settings)
        if issues:
            raise issues_error("the settings", issues, _ROOT)
        return settings
