"""The `settings` section of the policy file (SPEC §4): a loaded mapping to `Settings` and back.

The policy file and the API's settings schemas read settings through `parse_settings`, so both
refuse a value with the same words at the same path.
"""

from __future__ import annotations

from typing import Any

from recoup.core.reader import DocumentReader, type_name
from recoup.domain.enums import CatchUp, Mode
from recoup.domain.policy import Settings
from recoup.domain.validation import ConfigIssue

SETTINGS_KEYS = (
    "mode",
    "invoice_types",
    "customer_balance",
    "max_levels",
    "timezone",
    "catch_up",
    "company",
)


def parse_settings(
    reader: DocumentReader, value: object, broken: set[str], path: str = "settings"
) -> Settings:
    """The `settings` section; a problem adds `settings` to `broken`."""
    if value is None:
        return Settings()
    before = len(reader.issues)
    obj = reader.mapping(value, path)
    if obj is None:
        broken.add("settings")
        return Settings()
    reader.unknown_keys(obj, SETTINGS_KEYS, path)
    defaults = Settings()
    mode = reader.choice(obj, "mode", path, Mode, defaults.mode) or defaults.mode
    catch_up = reader.choice(obj, "catch_up", path, CatchUp, defaults.catch_up) or defaults.catch_up
    invoice_types = (
        reader.text_list(obj["invoice_types"], f"{path}.invoice_types")
        if "invoice_types" in obj
        else defaults.invoice_types
    )
    customer_balance = (
        reader.text_list(obj["customer_balance"], f"{path}.customer_balance")
        if obj.get("customer_balance") is not None
        else None
    )
    max_levels = reader.integer(obj, "max_levels", path)
    timezone = reader.text(obj, "timezone", path) or defaults.timezone
    company: dict[str, str] = {}
    if obj.get("company") is not None:
        company_obj = reader.mapping(obj["company"], f"{path}.company")
        for key, item in (company_obj or {}).items():
            if isinstance(item, bool) or not isinstance(item, str | int):
                reader.issue(f"{path}.company.{key}", f"must be text, not {type_name(item)}")
                continue
            company[str(key)] = str(item)
    if len(reader.issues) > before:
        broken.add("settings")
    return Settings(
        mode=mode,
        invoice_types=invoice_types,
        customer_balance=customer_balance,
        max_levels=max_levels if max_levels is not None else defaults.max_levels,
        timezone=timezone,
        catch_up=catch_up,
        company=company,
    )


def read_settings(raw: object, path: str = "settings") -> tuple[Settings, list[ConfigIssue]]:
    """`raw` read on its own (a request's body): the settings, with defaults for what is
    missing, and the problems of its shape."""
    reader = DocumentReader()
    settings = parse_settings(reader, raw, set(), path)
    return settings, list(reader.issues)


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    result: dict[str, Any] = {
        "mode": settings.mode.value,
        "invoice_types": list(settings.invoice_types),
    }
    if settings.customer_balance is not None:
        result["customer_balance"] = list(settings.customer_balance)
    result.update(
        max_levels=settings.max_levels,
        timezone=settings.timezone,
        catch_up=settings.catch_up.value,
    )
    if settings.company:
        result["company"] = dict(settings.company)
    return result
