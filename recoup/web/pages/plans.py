"""Late invoices and plans (Openbravo's "payment in plan"): the late-invoice list with its
filters, search, cursor pages and bulk pause / resume behind a confirmation; a plan's page
(invoices, balance, the level ladder and what comes next, log, letters, charges, pause /
resume / stop, the manual actions its level allows); a letter's PDF, shown in the browser;
waiving a charge. Reads for every role, writes need operate."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from recoup.actions.manual import ManualKind, manual_options, perform_manual_action
from recoup.book import repository as book_repository
from recoup.charges import repository as charge_repository
from recoup.charges import service as charge_service
from recoup.core.env import EnvConfig, load_env
from recoup.core.errors import InvalidInput, RecoupError
from recoup.core.responses import pdf_response
from recoup.core.roles import Right
from recoup.documents.service import read_document_pdf
from recoup.domain.enums import PlanStatus
from recoup.plans import repository as plan_repository
from recoup.plans import service as plan_service
from recoup.plans.schemas import LateInvoiceRead, PlanDetail
from recoup.runs.explain import Explanation, explain_invoice
from recoup.web.filters import money
from recoup.web.page import OperatePage, Page, ReadPage
from recoup.web.pages import payments

router = APIRouter()

PAGE_SIZE = 25
LATE_STATUSES = [*(s.value for s in PlanStatus), plan_repository.NOT_IN_PLAN]
# what a bulk operation does: (the plan status it applies to, the past tense for messages)
BULK = {"pause": (PlanStatus.active, "paused"), "resume": (PlanStatus.paused, "resumed")}


def _env(request: Request) -> EnvConfig:
    """The process's configuration (RECOUP_*), on the app's database (as the API's edge)."""
    return replace(load_env(), database_url=getattr(request.app.state, "database_url", ""))


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _day(value: str | None, field: str, errors: dict[str, str]) -> date | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = f"{text!r} is not a date (YYYY-MM-DD)"
        return None


def _days(value: str | None, field: str, errors: dict[str, str]) -> int | None:
    text = _text(value)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        errors[field] = "a whole number of days, 1 or more"
        return None
    return int(text)


# --- the late-invoice list ---------------------------------------------------------------


@router.get("/late")
def late(page: ReadPage) -> Response:
    """Every late invoice, oldest due first, with its dunning status; filters and search in the
    query string (a plain GET form), `after`: the cursor of the next page."""
    query = page.request.query_params
    shown = {
        name: (query.get(name) or "").strip()
        for name in (
            "status",
            "level",
            "policy",
            "currency",
            "customer",
            "search",
            "min_days",
            "max_days",
        )
    }
    errors: dict[str, str] = {}
    status = shown["status"] or None
    if status is not None and status not in LATE_STATUSES:
        errors["status"] = "not a dunning status"
    min_days = _days(shown["min_days"], "min_days", errors)
    max_days = _days(shown["max_days"], "max_days", errors)
    if min_days and max_days and min_days > max_days:
        errors["max_days"] = "must be at least the minimum"
    limit = _days(query.get("limit"), "limit", errors) or PAGE_SIZE
    limit = min(limit, 100)
    currency = shown["currency"].upper() or None
    if currency is not None and (len(currency) != 3 or not currency.isalpha()):
        errors["currency"] = "a three-letter currency code, like EUR"
    rows: list[LateInvoiceRead] = []
    next_cursor = None
    if not errors:
        filters = plan_repository.LateFilter(
            today=page.today,
            status=status,
            level=shown["level"] or None,
            policy=shown["policy"] or None,
            currency=currency,
            customer_id=shown["customer"] or None,
            search=shown["search"] or None,
            min_days_overdue=min_days,
            max_days_overdue=max_days,
        )
        try:
            found, next_cursor = plan_repository.late_invoices(
                page.session, filters, cursor=query.get("after") or None, limit=limit
            )
        except InvalidInput:
            errors["after"] = "This page link is out of date: start again from the first page."
            found = []
        rows = [LateInvoiceRead.of(row, page.today) for row in found]
    kept = {k: v for k, v in shown.items() if v}
    if limit != PAGE_SIZE:
        kept["limit"] = str(limit)
    return page.render(
        "late.html",
        rows=rows,
        shown=shown,
        errors=errors,
        statuses=LATE_STATUSES,
        policies=book_repository.policy_names(page.session),
        next_cursor=next_cursor,
        filtered=any(shown.values()),
        kept=kept,
        first_page=not query.get("after"),
        may_operate=page.login is not None and page.login.may(Right.operate),
        today=page.today,
    )


@dataclass(frozen=True)
class BulkChange:
    """What a bulk pause or resume will do (or did): the plans it changes and the ones it
    leaves as they are, with why."""

    op: str
    changes: list[Any]  # Plan rows
    unchanged: list[tuple[Any, str]]  # (Plan, why not)
    names: dict[str, str]  # customer id → name


def _bulk_change(page: Page, op: str, plan_ids: list[str]) -> BulkChange:
    if op not in BULK:
        raise InvalidInput("{field}: choose pause or resume", field="op")
    wanted, _ = BULK[op]
    changes: list[Any] = []
    unchanged: list[tuple[Any, str]] = []
    seen: set[int] = set()
    for raw in plan_ids:
        if not raw.isdigit() or int(raw) in seen:
            continue
        seen.add(int(raw))
        plan = plan_repository.find(page.session, int(raw))
        if plan is None:
            continue
        if plan.status == wanted:
            changes.append(plan)
        else:
            unchanged.append((plan, f"it is {plan.status}: only an {wanted} plan can be {op}d"))
    ids = {p.customer_id for p in changes} | {p.customer_id for p, _ in unchanged}
    names = {c.id: c.name for c in book_repository.customers_by_id(page.session, ids).values()}
    return BulkChange(op, changes, unchanged, names)


def _back(value: str | None) -> str:
    """Where to go back to: a local page of the late list only."""
    value = value or ""
    return value if value.startswith("/late") and "//" not in value else "/late"


@router.post("/late/confirm")
def late_confirm(
    page: OperatePage,
    op: str = Form(""),
    plan: list[str] = Form(default_factory=list),
    back: str = Form("/late"),
) -> Response:
    """The confirmation step: which plans will change, how many, and which will not."""
    change = _bulk_change(page, op, plan)
    if not change.changes and not change.unchanged:
        return page.redirect(_back(back), message="Choose at least one invoice with a plan first.")
    return page.render(
        "late_confirm.html", change=change, back=_back(back), errors={}, reason="", until=""
    )


@router.post("/late/apply")
def late_apply(
    page: OperatePage,
    op: str = Form(""),
    plan: list[str] = Form(default_factory=list),
    back: str = Form("/late"),
    reason: str = Form(""),
    until: str = Form(""),
) -> Response:
    """Apply a confirmed bulk pause or resume to the plans that can take it (the others, whose
    status changed meanwhile, are left and named); all in the request's one transaction."""
    change = _bulk_change(page, op, plan)
    errors: dict[str, str] = {}
    day = _day(until, "until", errors) if op == "pause" else None
    if op == "pause" and not reason.strip():
        errors["reason"] = "Say why the plans are paused."
    if day is not None and day <= page.today:
        errors["until"] = f"must be after today ({page.today.isoformat()})"
    if errors:
        return page.render(
            "late_confirm.html",
            change=change,
            back=_back(back),
            errors=errors,
            reason=reason,
            until=until,
            status_code=422,
        )
    for row in change.changes:
        if op == "pause":
            plan_service.pause_plan(
                page.session,
                row,
                reason=reason.strip(),
                until=day,
                on=page.today,
                actor=page.actor,
            )
        else:
            plan_service.resume_plan(
                page.session,
                row,
                on=page.today,
                actor=page.actor,
                reason=reason.strip() or "by hand",
            )
    done = BULK[op][1]
    message = f"{len(change.changes)} plan(s) {done}"
    if change.changes:
        message += ": " + ", ".join(f"#{p.id}" for p in change.changes)
    if change.unchanged:
        message += f"; {len(change.unchanged)} left as they were"
    return page.redirect(_back(back), message=message + ".")


# --- a plan's page -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rung:
    """A level of the plan's policy as the ladder shows it."""

    code: str
    days: int
    reminder: bool
    end: bool
    actions: list[str]
    state: str  # done, current, next, later
    on: date | None  # for the next level: the date the run reaches it


def _explain(page: Page, invoice_id: str | None) -> Explanation | None:
    """What the run would do today and what comes next (explaining changes nothing)."""
    if invoice_id is None:
        return None
    try:
        return explain_invoice(page.session, invoice_id, page.today)
    except RecoupError:
        return None


def _ladder(plan: Any, explanation: Explanation | None) -> list[Rung]:
    levels = sorted(plan.policy.levels, key=lambda lvl: (lvl.position, lvl.days))
    codes = [lvl.code for lvl in levels]
    here = codes.index(plan.level) if plan.level in codes else -1
    # the explanation's next level, else the level above (a run due now reaches it); never
    # for a paused plan, which reaches no level until it resumes
    next_code = explanation.next_level if explanation else None
    active = plan.status == PlanStatus.active
    if next_code is None and active and 0 <= here < len(codes) - 1:
        next_code = codes[here + 1]
    rungs = []
    for index, level in enumerate(levels):
        if index == here:
            state = "current"
        elif index < here:
            state = "done"
        elif level.code == next_code and active:
            state = "next"
        else:
            state = "later"
        on = explanation.next_on if explanation and state == "next" else None
        rungs.append(
            Rung(
                level.code,
                level.days,
                level.reminder,
                level.end,
                list(level.actions or []),
                state,
                on,
            )
        )
    return rungs


def _plan_page(
    page: Page,
    plan_id: int,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    posted: payments.Posted | None = None,
    payment_errors: dict[str, str] | None = None,
) -> Response:
    plan = plan_repository.get_or_not_found(page.session, plan_id)
    ids = plan_repository.invoice_ids(page.session, plan.id)
    explanation = _explain(page, plan.invoice_id or (ids[0] if ids else None))
    parts = plan_repository.get_parts(page.session, plan_id)
    detail = PlanDetail.of(parts)
    may_operate = page.login is not None and page.login.may(Right.operate)
    invoices = list(plan_repository.invoices(page.session, parts.invoice_ids))
    payment = (
        _payment_form(page, plan, invoices, posted=posted, errors=payment_errors)
        if may_operate and (plan.is_open or payment_errors)  # a refusal is always shown
        else None
    )
    return page.render(
        "plan.html",
        plan=plan,
        detail=detail,
        plan_charges=parts.charges,
        plan_tasks=parts.tasks,
        customer=plan_repository.customer_of(page.session, plan),
        invoices=invoices,
        payment=payment,
        explanation=explanation,
        ladder=_ladder(plan, explanation),
        options=manual_options(page.session, plan) if may_operate and plan.is_open else [],
        may_operate=may_operate,
        errors=errors or {},
        values=values or {},
        status_code=status_code,
    )


@router.get("/plans/{plan_id}")
def plan_page(plan_id: int, page: ReadPage) -> Response:
    return _plan_page(page, plan_id)


def _payment_form(
    page: Page,
    plan: Any,
    invoices: list[Any],
    *,
    posted: payments.Posted | None = None,
    errors: dict[str, str] | None = None,
) -> payments.PaymentForm:
    """A payment in the plan's currency; in invoice mode for the plan's invoice."""
    return payments.form(
        page,
        action=f"/plans/{plan.id}/payments",
        currencies=[plan.currency],
        invoices=invoices,
        invoice=plan.invoice_id or "",
        balance=f"The plan's balance: {money(plan.balance, plan.currency)}.",
        posted=posted,
        errors=errors,
    )


@router.post("/plans/{plan_id}/payments")
def record_plan_payment(
    plan_id: int,
    page: OperatePage,
    posted: payments.PostedDep,
) -> Response:
    """Record a payment of the plan's customer (pages/payments.py); then the plan's page says
    which plans it closed."""
    plan = plan_repository.get_or_not_found(page.session, plan_id)
    outcome = payments.record(page, plan.customer_id, posted, currencies=[plan.currency])
    if isinstance(outcome, dict):
        return _plan_page(page, plan_id, posted=posted, payment_errors=outcome, status_code=422)
    return page.redirect(f"/plans/{plan_id}", message=payments.confirmation(outcome))


def _refused(page: Page, plan_id: int, exc: InvalidInput, form: str, **values: str) -> Response:
    """An input the service refused: the plan page again, the message beside its field."""
    page.session.rollback()  # nothing of the refused change is kept
    field = f"{form}-{exc.field or 'reason'}"
    return _plan_page(
        page,
        plan_id,
        errors={field: exc.text()},
        values={f"{form}-{k}": v for k, v in values.items()},
        status_code=422,
    )


@router.post("/plans/{plan_id}/pause")
def pause(
    plan_id: int, page: OperatePage, reason: str = Form(""), until: str = Form("")
) -> Response:
    plan = plan_repository.get_or_not_found(page.session, plan_id)
    errors: dict[str, str] = {}
    day = _day(until, "pause-until", errors)
    if errors:
        return _plan_page(
            page,
            plan_id,
            errors=errors,
            status_code=422,
            values={"pause-reason": reason, "pause-until": until},
        )
    try:
        plan_service.pause_plan(
            page.session, plan, reason=reason.strip(), until=day, on=page.today, actor=page.actor
        )
    except InvalidInput as exc:
        return _refused(page, plan_id, exc, "pause", reason=reason, until=until)
    until_text = f" until {day.isoformat()}" if day else ""
    return page.redirect(f"/plans/{plan_id}", message=f"Plan {plan_id} paused{until_text}.")


@router.post("/plans/{plan_id}/resume")
def resume(plan_id: int, page: OperatePage, reason: str = Form("")) -> Response:
    plan = plan_repository.get_or_not_found(page.session, plan_id)
    plan_service.resume_plan(
        page.session, plan, on=page.today, actor=page.actor, reason=reason.strip() or "by hand"
    )
    return page.redirect(f"/plans/{plan_id}", message=f"Plan {plan_id} resumed.")


@router.post("/plans/{plan_id}/stop")
def stop(plan_id: int, page: OperatePage, reason: str = Form("")) -> Response:
    plan = plan_repository.get_or_not_found(page.session, plan_id)
    try:
        plan_service.stop_plan(
            page.session, plan, reason=reason.strip(), on=page.today, actor=page.actor
        )
    except InvalidInput as exc:
        return _refused(page, plan_id, exc, "stop", reason=reason)
    return page.redirect(f"/plans/{plan_id}", message=f"Plan {plan_id} stopped.")


@router.post("/plans/{plan_id}/actions/{kind}")
def manual_action(plan_id: int, kind: ManualKind, page: OperatePage) -> Response:
    """Do a manual action now with the current level's action (recoup.actions.manual); it owns
    its transactions, so what the request wrote so far is committed first (SQLite: one
    writer)."""
    plan_repository.get_or_not_found(page.session, plan_id)
    page.session.commit()
    outcome = perform_manual_action(
        page.request.app.state.session_factory,
        plan_id,
        kind,
        actor=page.actor,
        env=_env(page.request),
    )
    what = {"email": "Email", "letter": "Letter", "status": "Account status change"}[kind.value]
    message = f"{what} ({outcome.action}): {outcome.status}"
    if outcome.error:
        message += f" — {outcome.error}"
    return page.redirect(f"/plans/{plan_id}", message=message + ".")


@router.post("/charges/{charge_id}/waive")
def waive(
    charge_id: int, page: OperatePage, reason: str = Form(""), back: str = Form("")
) -> Response:
    """Waive a charge with a reason; back to its plan's page (or its customer's)."""
    charge = charge_repository.get_or_not_found(page.session, charge_id)
    try:
        charge_service.waive_charge(
            page.session, charge, reason=reason, actor=page.actor, on=page.today
        )
    except InvalidInput as exc:
        page.session.rollback()  # nothing of the refused waiver is kept
        if charge.plan_id is not None and back != "customer":
            return _plan_page(
                page, charge.plan_id, errors={f"waive-{charge_id}": exc.text()}, status_code=422
            )
        raise
    if charge.plan_id is not None and back != "customer":
        url = f"/plans/{charge.plan_id}"
    else:
        url = f"/customers/{charge.customer_id}"
    return page.redirect(url, message=f"Charge {charge_id} waived.")


# --- letters -------------------------------------------------------------------------------


@router.get("/documents/{document_id}/pdf")
def document_pdf(document_id: int, page: ReadPage) -> Response:
    """The letter's PDF, shown in the browser (inline); only a file inside the data folder."""
    name, content = read_document_pdf(page.session, document_id, _env(page.request).data_dir)
    return pdf_response(content, name, disposition="inline")


__all__ = ["router"]
