"""Configuration pages (admin only, `ConfigurePage`): templates with an editor and a live
preview on a real invoice, actions, policies with their levels, and the upload of a policy
file with a preview of what it will change before it is applied.

Every change goes through recoup.policies.service, as the API's do (create_item,
replace_item, remove_item, apply_document): the whole configuration with the change is judged
by the policy file's validator, and its problems come back at their path within the item
(`levels[0].days`), which the forms show beside the input of that name. A removal that
something refers to (R14) is a 409 page listing what does."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from recoup.book import repository as book_repository
from recoup.core.errors import Conflict, InvalidInput, RecoupError
from recoup.documents.preview import preview_template
from recoup.domain.enums import ActionMode, ActionType, Channel, Transition
from recoup.policies import repository as config_repository
from recoup.policies import service as config_service
from recoup.policies.document import (
    ACTION_FIELDS,
    action_params_to_dict,
    level_to_dict,
    policy_to_dict,
)
from recoup.policies.schemas import (
    ActionCreate,
    PolicyCreate,
    TemplateCreate,
    TemplateUpdate,
)
from recoup.policies.service import ACTION, LEVEL, POLICY, TEMPLATE, ConfigProblems
from recoup.policies.yaml_text import MAX_FILE_BYTES, dump_yaml, load_yaml
from recoup.web.page import ConfigurePage, Page
from recoup.web.pages.forms import field_errors, form_data, number, split_list

router = APIRouter()
FormDep = Annotated[FormData, Depends(form_data)]
REASON = "back office"


def _save(page: Page, kind: Any, editing: str | None, item: Any) -> None:
    """The item as its form gave it: replacing the one `editing` names, or a new one."""
    if editing:
        config_service.replace_item(
            page.session, kind, (editing,), lambda _: item, actor=page.actor, reason=REASON
        )
    else:
        config_service.create_item(page.session, kind, item, actor=page.actor, reason=REASON)


BLANK_LEVEL_ROWS = 2  # empty rows under a policy's levels, to add levels without JS
NEW_POLICY_ROWS = 4  # rows of a new policy's form
PREVIEW_INVOICES = 50  # invoices offered to preview a template on


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _refused(page: Page, exc: RecoupError, *, what: str, back: str) -> Response:
    """A removal refused because things refer to the item (R14): the 409 page listing them
    (or, 422, what the configuration would lack without it: a policy's end level)."""
    lines = exc.details or [exc.message]
    return page.render(
        "config_refused.html",
        status_code=exc.status_code,
        code=exc.status_code,
        what=what,
        message=exc.message,
        lines=lines,
        back=back,
    )


# --- templates ---------------------------------------------------------------------------


@router.get("/config/templates")
def templates_page(page: ConfigurePage) -> Response:
    rows = config_repository.list_templates(page.session)
    return page.render(
        "config_templates.html",
        templates=rows,
        channels=[c.value for c in Channel],
        values={"channel": "email", "active": True},
        errors={},
    )


@router.post("/config/templates")
def create_template(page: ConfigurePage, form: FormDep) -> Response:
    values = {key: _text(form, key) for key in ("code", "channel", "language", "subject", "body")}
    body: dict[str, Any] = {k: v for k, v in values.items() if v or k in ("code", "body")}
    body["active"] = _checked(form, "active")
    try:
        template = TemplateCreate.model_validate(body).to_domain()
        config_service.create_item(
            page.session, TEMPLATE, template, actor=page.actor, reason=REASON
        )
    except RecoupError as exc:
        rows = config_repository.list_templates(page.session)
        return page.render(
            "config_templates.html",
            status_code=exc.status_code,
            templates=rows,
            channels=[c.value for c in Channel],
            values={**values, "active": body["active"]},
            errors=field_errors(exc),
        )
    return page.redirect(
        f"/config/templates/{template.code}/{template.language}",
        message=f"Template {template.code} ({template.language}) created.",
    )


def _preview_invoices(page: Page) -> list[Any]:
    invoices, _ = book_repository.list_invoices(page.session, limit=PREVIEW_INVOICES)
    open_first = sorted(invoices, key=lambda i: (not i.is_open, i.due_date, i.id))
    return open_first


def _preview(
    page: Page, row: Any, *, subject: str | None, body: str, invoice_id: str | None
) -> dict[str, Any]:
    """The draft rendered for the invoice as its customer would get it today, or why not."""
    if not invoice_id:
        return {"empty": "There are no invoices yet: import some to preview on a real one."}
    draft = (subject if row.channel != Channel.sms else None, body)
    try:
        shown = preview_template(
            page.session,
            row.code,
            invoice_id=invoice_id,
            today=page.today,
            language=row.language,
            channel=row.channel,
            draft=draft,
        )
    except RecoupError as exc:
        return {"error": exc.message, "invoice": invoice_id}
    pages = shown.pdf.pages if shown.pdf is not None else None
    invoice = book_repository.invoices_by_id(page.session, [invoice_id]).get(invoice_id)
    number = invoice.number if invoice is not None and invoice.number else invoice_id
    return {"subject": shown.subject, "text": shown.text, "pages": pages, "invoice": number}


def _editor(
    page: Page,
    row: Any,
    *,
    values: dict[str, Any],
    invoice_id: str | None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    invoices = _preview_invoices(page)
    if invoice_id is None and invoices:
        invoice_id = invoices[0].id
    preview = _preview(
        page, row, subject=values.get("subject"), body=values["body"], invoice_id=invoice_id
    )
    siblings = config_repository.templates_by_code(page.session, row.code)
    references = config_service.references(page.session, TEMPLATE, (row.code, row.language))
    return page.render(
        "config_template.html",
        status_code=status_code,
        tpl=row,
        values=values,
        errors=errors or {},
        invoices=invoices,
        invoice_id=invoice_id,
        preview=preview,
        siblings=siblings,
        references=references,
    )


@router.get("/config/templates/{code}/{language}")
def template_page(
    code: str, language: str, page: ConfigurePage, invoice: str | None = None
) -> Response:
    row = config_repository.template_or_not_found(page.session, code, language)
    values = {"subject": row.subject or "", "body": row.body, "active": row.active}
    return _editor(page, row, values=values, invoice_id=invoice)


@router.post("/config/templates/{code}/{language}/preview")
def template_preview(code: str, language: str, page: ConfigurePage, form: FormDep) -> Response:
    """The live preview (htmx: the fragment; without JS: the editor with it), writing nothing."""
    row = config_repository.template_or_not_found(page.session, code, language)
    subject, body = _text(form, "subject"), _text(form, "body")
    values: dict[str, Any] = {"subject": subject, "body": body, "active": _checked(form, "active")}
    invoice_id = _text(form, "invoice") or None
    if page.request.headers.get("HX-Request") == "true":
        preview = _preview(page, row, subject=subject, body=body, invoice_id=invoice_id)
        return page.render("config_template_preview.html", tpl=row, preview=preview)
    return _editor(page, row, values=values, invoice_id=invoice_id)


@router.post("/config/templates/{code}/{language}")
def save_template(code: str, language: str, page: ConfigurePage, form: FormDep) -> Response:
    row = config_repository.template_or_not_found(page.session, code, language)
    values = {
        "subject": _text(form, "subject"),
        "body": _text(form, "body"),
        "active": _checked(form, "active"),
    }
    given: dict[str, Any] = {"body": values["body"], "active": values["active"]}
    if row.channel != Channel.sms:
        given["subject"] = values["subject"] or None
    try:
        update = TemplateUpdate.model_validate(given)
        config_service.replace_item(
            page.session,
            TEMPLATE,
            (code, language),
            update.applied_to,
            actor=page.actor,
            reason=REASON,
        )
    except RecoupError as exc:
        page.session.rollback()  # nothing of the refused change stays for the preview
        row = config_repository.template_or_not_found(page.session, code, language)
        return _editor(
            page,
            row,
            values=values,
            invoice_id=_text(form, "invoice") or None,
            errors=_template_errors(exc),
            status_code=exc.status_code,
        )
    return page.redirect(
        f"/config/templates/{code}/{language}", message=f"Template {code} ({language}) saved."
    )


def _template_errors(exc: RecoupError) -> dict[str, str]:
    """A template's problems come at `templates[3].body` when the validator renders it."""
    errors = {}
    for key, message in field_errors(exc).items():
        errors[key if key in ("subject", "body", "active", "form") else "form"] = message
    return errors


@router.post("/config/templates/{code}/{language}/delete")
def delete_template(code: str, language: str, page: ConfigurePage) -> Response:
    try:
        config_service.remove_item(
            page.session, TEMPLATE, (code, language), actor=page.actor, reason=REASON
        )
    except Conflict as exc:
        return _refused(
            page,
            exc,
            what=f"template {code} ({language})",
            back=f"/config/templates/{code}/{language}",
        )
    return page.redirect("/config/templates", message=f"Template {code} ({language}) removed.")


# --- actions -----------------------------------------------------------------------------


def _actions_context(page: Page) -> dict[str, Any]:
    config = config_service.load_config(page.session)
    used = {
        action.code: config_service.references(page.session, ACTION, (action.code,))
        for action in config.actions
    }
    return {
        "actions": config.actions,
        "used": used,
        "params": {a.code: action_params_to_dict(a) for a in config.actions},
        "types": [t.value for t in ActionType],
        "modes": [m.value for m in ActionMode],
        "type_fields": {t.value: list(ACTION_FIELDS.get(t, {})) for t in ActionType},
        "templates": sorted({t.code for t in config.templates}),
    }


@router.get("/config/actions")
def actions_page(page: ConfigurePage, edit: str | None = None) -> Response:
    context = _actions_context(page)
    values: dict[str, Any] = {"type": "send_email", "mode": "automatic", "params": ""}
    if edit is not None:
        action = config_service.find_item(page.session, ACTION, (edit,))
        values = {
            "code": action.code,
            "type": action.type.value,
            "mode": action.mode.value,
            "role": action.role or "",
            "instructions": action.instructions or "",
            "params": _yaml(action_params_to_dict(action)),
        }
    return page.render("config_actions.html", values=values, errors={}, editing=edit, **context)


def _yaml(params: dict[str, Any]) -> str:
    return dump_yaml(params).strip() if params else ""


@router.post("/config/actions")
def save_action(page: ConfigurePage, form: FormDep) -> Response:
    """Create an action, or (`editing`) replace one: the common fields, and the type's own
    written as in the policy file (YAML), checked by the file's reader."""
    keys = ("code", "type", "mode", "role", "instructions", "params")
    values = {key: _text(form, key) for key in keys}
    editing = _text(form, "editing") or None
    try:
        params = load_yaml(values["params"], "params") if values["params"].strip() else {}
        if not isinstance(params, dict):
            raise InvalidInput(
                "{field}: write the type's fields as `name: value` lines", field="params"
            )
        body = {
            **params,
            **{k: v.strip() for k, v in values.items() if k != "params" and v.strip()},
        }
        action = ActionCreate.model_validate(body).to_domain()
        _save(page, ACTION, editing, action)
    except RecoupError as exc:
        page.session.rollback()
        errors = {
            (k if k in keys else "params"): v for k, v in field_errors(exc).items() if k != "form"
        }
        if "form" in field_errors(exc):
            errors["form"] = field_errors(exc)["form"]
        return page.render(
            "config_actions.html",
            status_code=exc.status_code,
            values=values,
            errors=errors,
            editing=editing,
            **_actions_context(page),
        )
    verb = "saved" if editing else "created"
    return page.redirect("/config/actions", message=f"Action {action.code} {verb}.")


@router.post("/config/actions/{code}/delete")
def delete_action(code: str, page: ConfigurePage) -> Response:
    try:
        config_service.remove_item(page.session, ACTION, (code,), actor=page.actor, reason=REASON)
    except Conflict as exc:
        return _refused(page, exc, what=f"action {code}", back="/config/actions")
    return page.redirect("/config/actions", message=f"Action {code} removed.")


# --- policies and their levels ---------------------------------------------------------


@router.get("/config/policies")
def policies_page(page: ConfigurePage) -> Response:
    config = config_service.load_config(page.session)
    policies = sorted(config.policies, key=lambda p: p.priority)
    return page.render(
        "config_policies.html",
        policies=[
            replace(p, levels=tuple(sorted(p.levels, key=lambda lv: lv.days))) for p in policies
        ],
    )


def _level_rows(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {
            "code": lv.get("code", ""),
            "days": lv.get("days", ""),
            "reminder": bool(lv.get("reminder")),
            "end": bool(lv.get("end")),
            "deadline_days": lv.get("deadline_days", ""),
            "actions": ", ".join(lv.get("actions", [])),
        }
        for lv in levels
    ]
    blank = max(BLANK_LEVEL_ROWS, NEW_POLICY_ROWS - len(rows))
    return rows + [
        {
            "code": "",
            "days": "",
            "reminder": False,
            "end": False,
            "deadline_days": "",
            "actions": "",
        }
        for _ in range(blank)
    ]


def _policy_form(
    page: Page,
    *,
    values: dict[str, Any],
    levels: list[dict[str, Any]],
    editing: str | None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    config = config_service.load_config(page.session)
    return page.render(
        "config_policy_form.html",
        status_code=status_code,
        values=values,
        levels=_level_rows(levels),
        errors=errors or {},
        editing=editing,
        transitions=[t.value for t in Transition],
        action_codes=[a.code for a in config.actions],
        max_levels=config.settings.max_levels,
    )


@router.get("/config/policies/new")
def new_policy(page: ConfigurePage) -> Response:
    config = config_service.load_config(page.session)
    priority = max((p.priority for p in config.policies), default=0) + 10
    values = {
        "name": "",
        "description": "",
        "priority": priority,
        "active": True,
        "default": not config.policies,
        "currency": "",
        "min_balance": "",
        "transition": Transition.days_overdue.value,
        "attach_invoice": False,
    }
    return _policy_form(page, values=values, levels=[], editing=None)


@router.get("/config/policies/{name}")
def edit_policy(name: str, page: ConfigurePage) -> Response:
    policy = config_service.find_item(page.session, POLICY, (name,))
    values = {
        "name": policy.name,
        "description": policy.description,
        "priority": policy.priority,
        "active": policy.active,
        "default": policy.default,
        "currency": policy.currency or "",
        "min_balance": _amounts_text(policy.min_balance),
        "transition": policy.transition.value,
        "attach_invoice": policy.attach_invoice,
    }
    levels = [level_to_dict(lv) for lv in policy.levels]
    references = config_service.references(page.session, POLICY, (name,))
    level_refs = {
        lv.code: config_service.references(page.session, LEVEL, (lv.code,), policy=name)
        for lv in policy.levels
    }
    return page.render(
        "config_policy_form.html",
        values=values,
        levels=_level_rows(levels),
        errors={},
        editing=name,
        transitions=[t.value for t in Transition],
        action_codes=[a.code for a in config_service.load_config(page.session).actions],
        max_levels=config_service.load_config(page.session).settings.max_levels,
        references=references,
        level_refs=level_refs,
    )


def _amounts_text(amounts: Any) -> str:
    return ", ".join(f"{currency} {amount}" for currency, amount in amounts.items())


def _amounts(text: str) -> dict[str, str] | str:
    """`EUR 50, USD 40` → {"EUR": "50", "USD": "40"}; anything else is handed on as typed."""
    parts = split_list(text)
    if len(parts) % 2:
        return text
    return {parts[i].upper(): parts[i + 1] for i in range(0, len(parts), 2)}


def _read_policy_form(
    form: FormData,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The form's values as typed (to show again), its level rows without the blank ones, and
    the policy's body for PolicyCreate. Rows are renumbered so that `levels[i]` in a problem
    is the i-th row shown again."""
    values: dict[str, Any] = {
        key: _text(form, key)
        for key in ("name", "description", "priority", "currency", "min_balance", "transition")
    }
    for key in ("active", "default", "attach_invoice"):
        values[key] = _checked(form, key)
    end = _text(form, "end")
    levels: list[dict[str, Any]] = []
    rows = _text(form, "rows")
    for i in range(min(int(rows), 100) if rows.isdigit() else 0):
        row = {
            key: _text(form, f"levels-{i}-{key}").strip()
            for key in ("code", "days", "deadline_days", "actions")
        }
        reminder = _checked(form, f"levels-{i}-reminder")
        if not any(row.values()) and not reminder and end != str(i):
            continue
        level: dict[str, Any] = {"code": row["code"], "actions": split_list(row["actions"])}
        if row["days"]:
            level["days"] = number(row["days"])
        if row["deadline_days"]:
            level["deadline_days"] = number(row["deadline_days"])
        if reminder:
            level["reminder"] = True
        if end == str(i):
            level["end"] = True
        levels.append(level)
    body: dict[str, Any] = {
        "name": values["name"].strip(),
        "description": values["description"].strip(),
        "priority": number(values["priority"]),
        "active": values["active"],
        "default": values["default"],
        "attach_invoice": values["attach_invoice"],
        "transition": values["transition"] or Transition.days_overdue.value,
        "levels": levels,
    }
    if values["currency"].strip():
        body["currency"] = values["currency"].strip().upper()
    if values["min_balance"].strip():
        body["min_balance"] = _amounts(values["min_balance"])
    return values, levels, body


def _save_policy(page: Page, form: FormData, editing: str | None) -> Response:
    values, levels, body = _read_policy_form(form)
    if editing is not None:
        body["name"] = editing
    try:
        if editing is not None:
            current = config_service.find_item(page.session, POLICY, (editing,))
            kept = {lv.code: lv for lv in current.levels}
            for level in body["levels"]:  # what the form does not show stays as it was
                old = kept.get(level.get("code"))
                if old is not None and old.min_balance:
                    level.setdefault("min_balance", {k: str(v) for k, v in old.min_balance.items()})
            if current.rules is not None:
                body["rules"] = policy_to_dict(current)["rules"]
        policy = PolicyCreate.model_validate(body).to_domain()
        _save(page, POLICY, editing, policy)
    except RecoupError as exc:
        page.session.rollback()
        return _policy_form(
            page,
            values=values,
            levels=levels,
            editing=editing,
            errors=field_errors(exc),
            status_code=exc.status_code,
        )
    verb = "saved" if editing else "created"
    return page.redirect("/config/policies", message=f"Policy {policy.name} {verb}.")


@router.post("/config/policies")
def create_policy(page: ConfigurePage, form: FormDep) -> Response:
    return _save_policy(page, form, None)


@router.post("/config/policies/{name}")
def save_policy(name: str, page: ConfigurePage, form: FormDep) -> Response:
    config_service.find_item(page.session, POLICY, (name,))  # 404 for an unknown policy
    return _save_policy(page, form, name)


@router.post("/config/policies/{name}/delete")
def delete_policy(name: str, page: ConfigurePage) -> Response:
    try:
        config_service.remove_item(page.session, POLICY, (name,), actor=page.actor, reason=REASON)
    except Conflict as exc:
        return _refused(page, exc, what=f"policy {name}", back=f"/config/policies/{name}")
    return page.redirect("/config/policies", message=f"Policy {name} removed.")


@router.post("/config/policies/{name}/levels/{code}/delete")
def delete_level(name: str, code: str, page: ConfigurePage) -> Response:
    try:
        config_service.remove_item(
            page.session, LEVEL, (code,), policy=name, actor=page.actor, reason=REASON
        )
    except (Conflict, ConfigProblems) as exc:  # in use (R14), or e.g. the only end level
        return _refused(page, exc, what=f"level {name}/{code}", back=f"/config/policies/{name}")
    return page.redirect(f"/config/policies/{name}", message=f"Level {code} removed.")


# --- the whole policy file: upload, preview, apply --------------------------------------


def fingerprint(page: Page) -> str:
    """What the configuration is now, in short: an applied preview must still be true."""
    document = config_service.export_config(page.session)
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@router.get("/config/upload")
def upload_page(page: ConfigurePage) -> Response:
    return page.render("config_upload.html", errors={}, text="")


async def _file_text(form: FormData) -> str | None:
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise InvalidInput(f"{{field}}: at most {MAX_FILE_BYTES:,} bytes", field="file")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("{field}: not UTF-8 text", field="file") from None
    return None


async def uploaded_text(request: Request) -> tuple[str, str | None]:
    """The policy file's text (the file chosen, else the text pasted) and a problem, if any."""
    form = await request.form()
    try:
        text = await _file_text(form)
    except RecoupError as exc:
        return "", exc.message
    if text is None:
        pasted = form.get("text")
        text = pasted if isinstance(pasted, str) else ""
    return text, None


UploadDep = Annotated[tuple[str, str | None], Depends(uploaded_text)]


def _dry_run(page: Page, text: str) -> config_service.ChangeReport:
    if not text.strip():
        raise InvalidInput("{field}: choose a policy file (or paste one)", field="file")
    document = load_yaml(text, "the file")
    return config_service.apply_document(page.session, document, page.actor, reason=REASON)


def _dry_run_or_refusal(page: Page, text: str) -> config_service.ChangeReport | Response:
    """`_dry_run` of the file, or the upload page again with why the file was refused."""
    try:
        return _dry_run(page, text)
    except RecoupError as exc:
        page.session.rollback()
        return page.render(
            "config_upload.html",
            status_code=exc.status_code,
            text=text,
            errors={"file": exc.message},
            problems=exc.details,
        )


@router.post("/config/upload")
def upload_preview(page: ConfigurePage, upload: UploadDep) -> Response:
    """Step one: what the file would change (a dry run: applied, reported, rolled back)."""
    text, problem = upload
    if problem is not None:
        return page.render("config_upload.html", status_code=422, errors={"file": problem}, text="")
    before = fingerprint(page)
    report = _dry_run_or_refusal(page, text)
    if isinstance(report, Response):
        return report
    page.session.rollback()  # a preview writes nothing
    return page.render("config_upload_preview.html", report=report, text=text, fingerprint=before)


@router.post("/config/upload/apply")
def upload_apply(page: ConfigurePage, form: FormDep) -> Response:
    """Step two: apply the file previewed, unless the configuration changed since."""
    text = _text(form, "text")
    if _text(form, "fingerprint") != fingerprint(page):
        report = _try_report(page, text)
        return page.render(
            "config_upload_preview.html",
            status_code=409,
            report=report,
            text=text,
            fingerprint=fingerprint(page),
            stale="The configuration changed since this preview: here is what the file would "
            "change now. Check it and apply again.",
        )
    report = _dry_run_or_refusal(page, text)
    if isinstance(report, Response):
        return report
    changes = len(report.created) + len(report.changed) + len(report.removed)
    message = f"Policy file applied: {changes} change{'s' if changes != 1 else ''}."
    return page.redirect("/config/policies", message=message if changes else "Nothing changed.")


def _try_report(page: Page, text: str) -> config_service.ChangeReport | None:
    try:
        report = _dry_run(page, text)
    except RecoupError:
        report = None
    page.session.rollback()
    return report
