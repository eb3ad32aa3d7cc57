"""Configuration's front door and its settings (admin only: `ConfigurePage`, as issue 12 says
"a user without the admin role cannot open configuration pages").

The settings form changes the fields it sends through the same service as PATCH /settings
(recoup.policies.service.update_settings): a value the policy file's reader refuses is shown
beside its field, and so is a refusal of rule R11 (the settings locks). The locks are explained
before anyone tries: `mode` cannot change while plans are open, an invoice type cannot be
removed while an open plan covers an invoice of that type, and no policy may have more levels
than `max_levels` (recoup.policies.repository.config_usage says what the database holds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.datastructures import FormData

from recoup.core.errors import RecoupError
from recoup.domain.enums import CatchUp, Mode
from recoup.policies import repository as config_repository
from recoup.policies import service as config_service
from recoup.settings.document import SETTINGS_KEYS
from recoup.settings.schemas import SettingsRead, SettingsUpdate
from recoup.settings.service import get_settings
from recoup.web.page import ConfigurePage, Page
from recoup.web.pages.forms import field_errors, form_data, number, split_list

router = APIRouter()
FormDep = Annotated[FormData, Depends(form_data)]


@dataclass(frozen=True)
class Locks:
    """What R11 holds still right now, in words for the page."""

    open_plans: int
    mode: str | None  # why the mode cannot change, or None
    invoice_types: dict[str, int]  # type -> open plans covering an invoice of it
    longest_policy: tuple[str, int] | None  # (name, levels): max_levels cannot go below it

    @property
    def invoice_types_text(self) -> str:
        """`commercial (3 plans), credit (1 plan)`."""
        return ", ".join(
            f"{t} ({n} plan{'s' if n != 1 else ''})" for t, n in self.invoice_types.items()
        )


def settings_locks(page: Page) -> Locks:
    usage = config_repository.config_usage(page.session)
    mode = None
    if usage.open_plan_count:
        plans = "plan is" if usage.open_plan_count == 1 else "plans are"
        mode = (
            f"Locked: {usage.open_plan_count} {plans} active or paused. The mode decides "
            "whether a plan follows one invoice or a whole customer; changing it under open "
            "plans would leave them following the other model (rule R11 in docs/rules.md)."
        )
    config = config_service.load_config(page.session)
    longest = max(config.policies, key=lambda p: len(p.levels), default=None)
    return Locks(
        open_plans=usage.open_plan_count,
        mode=mode,
        invoice_types={t: n for t, n in sorted(usage.open_plan_invoice_types.items()) if n},
        longest_policy=(longest.name, len(longest.levels)) if longest is not None else None,
    )


def _render(
    page: Page,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    read = SettingsRead.model_validate(get_settings(page.session))
    shown = read.model_dump(mode="json")
    if values is None:
        values = {
            **shown,
            "invoice_types": ", ".join(shown["invoice_types"]),
            "customer_balance": ", ".join(shown["customer_balance"] or []),
            "company": "\n".join(f"{k}: {v}" for k, v in shown["company"].items()),
        }
    return page.render(
        "settings.html",
        status_code=status_code,
        settings=shown,
        updated_at=read.updated_at,
        values=values,
        errors=errors or {},
        locks=settings_locks(page),
        modes=[m.value for m in Mode],
        catch_ups=[c.value for c in CatchUp],
    )


@router.get("/config")
def config_home(page: ConfigurePage) -> Response:
    config = config_service.load_config(page.session)
    return page.render(
        "config_home.html",
        counts={
            "templates": len(config.templates),
            "actions": len(config.actions),
            "policies": len(config.policies),
        },
    )


@router.get("/config/settings")
@router.get("/settings")  # the foundation's address, kept for old links
def settings_page(page: ConfigurePage) -> Response:
    return _render(page)


def _company(text: str) -> dict[str, str] | str:
    """`key: value` lines; a line without a colon is handed on as-is for the reader to refuse."""
    company: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            return line
        company[key.strip()] = value.strip()
    return company


@router.post("/config/settings")
def save_settings(page: ConfigurePage, form: FormDep) -> Response:
    values = {key: str(form.get(key, "")) for key in SETTINGS_KEYS}
    body: dict[str, Any] = {}
    for key in ("mode", "timezone", "catch_up"):
        if key in form:  # a locked (disabled) field is not sent, and so not changed
            body[key] = values[key].strip()
    if "invoice_types" in form:
        body["invoice_types"] = split_list(values["invoice_types"])
    if "customer_balance" in form:
        listed = split_list(values["customer_balance"])
        body["customer_balance"] = listed or None  # empty: all of invoice_types
    if "max_levels" in form:
        body["max_levels"] = number(values["max_levels"])
    if "company" in form:
        body["company"] = _company(values["company"])
    try:
        update = SettingsUpdate.model_validate(body)
        report = config_service.update_settings(
            page.session, update, page.actor, reason="back office"
        )
    except RecoupError as exc:
        return _render(page, values=values, errors=field_errors(exc), status_code=exc.status_code)
    done = "Settings saved." if report.any else "Nothing changed."
    return page.redirect("/config/settings", message=done)
