"""The collector's work list (`/tasks`): the open and claimed tasks of my roles, oldest first,
with the customer, phone, balance, days overdue and instructions; one task (`/tasks/ID`) with
its invoices and history; claim, release, and complete with a note or a promise to pay.

Thin over recoup.tasks (repository: the list; service: claim, release, complete) and
recoup.plans.promise. A user takes only the tasks of their task roles (an admin: any); the
others' are not listed, and their forms are refused (403). Each form works as a plain POST and
redirect; with htmx, claim and release replace their row and completing shows its errors in
place."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from recoup.core.errors import InvalidInput, RecoupError
from recoup.plans.promise import parse_promised_amount, promise_for_task
from recoup.tasks import repository as task_repository
from recoup.tasks.repository import WAITING, WorkItem
from recoup.tasks.service import claim_task, complete_task, release_task
from recoup.web.auth import PageRefused
from recoup.web.page import OperatePage, Page

router = APIRouter()

PAGE_SIZE = 50
# the services' field names → the form's
FORM_FIELDS = {"until": "promise", "amount": "amount", "note": "note"}
LABELS = {"until": "the promise date", "amount": "the amount", "note": "the note"}


def _item(page: Page, task_id: int) -> WorkItem:
    found = task_repository.work_list(
        page.session, today=page.today, statuses=None, task_ids=[task_id]
    )
    if not found:
        task_repository.get_or_not_found(page.session, task_id)  # the 404
    return found[0]


def _mine(page: Page, task_id: int) -> WorkItem:
    """The task, if it is for one of my roles; else the 403 page."""
    item = _item(page, task_id)
    assert page.login is not None
    if not page.login.works(item.task.role):
        raise PageRefused(
            f"Task {task_id} is for the role {item.task.role!r}; you take the tasks of "
            f"{', '.join(page.login.task_roles) or 'no role'}."
        )
    return item


@router.get("/tasks")
def work_list(page: OperatePage, after: str | None = None) -> Response:
    assert page.login is not None
    items, next_cursor = task_repository.page(
        page.session,
        statuses=WAITING,
        roles=page.login.work_roles,
        cursor=after,
        limit=PAGE_SIZE,
        today=page.today,
    )
    return page.render("tasks.html", items=items, next_cursor=next_cursor, after=after)


@router.get("/tasks/{task_id}")
def task_page(page: OperatePage, task_id: int) -> Response:
    return _task_page(page, task_id)


def _task_page(
    page: Page,
    task_id: int,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    assert page.login is not None
    detail = task_repository.task_detail(page.session, task_id, today=page.today)
    template = "_complete_form.html" if page.request.headers.get("HX-Request") else "task.html"
    return page.render(
        template,
        status_code=status_code,
        detail=detail,
        item=detail.item,
        mine=page.login.works(detail.item.task.role),
        errors=errors or {},
        values=values or {},
    )


def _after_change(page: Page, item: WorkItem, message: str) -> Response:
    """htmx on the list: the task's row, changed; otherwise back where the form was."""
    if page.request.headers.get("HX-Request") and page.request.headers.get(
        "HX-Target", ""
    ).startswith("task-row"):
        fresh = _item(page, item.task.id)
        return page.render("_task_row.html", item=fresh, message=message)
    back = page.request.headers.get("referer", "")
    target = (
        f"/tasks/{item.task.id}"
        if back.rstrip("/").endswith(f"/tasks/{item.task.id}")
        else "/tasks"
    )
    return page.redirect(target, message=message)


@router.post("/tasks/{task_id}/claim")
def claim(page: OperatePage, task_id: int) -> Response:
    item = _mine(page, task_id)
    claim_task(page.session, item.task, user=page.actor, on=page.today)
    return _after_change(page, item, f"Task {task_id} is yours now.")


@router.post("/tasks/{task_id}/release")
def release(page: OperatePage, task_id: int, note: Annotated[str, Form()] = "") -> Response:
    item = _mine(page, task_id)
    release_task(page.session, item.task, user=page.actor, on=page.today, note=note or None)
    return _after_change(page, item, f"Task {task_id} released: open again.")


@router.post("/tasks/{task_id}/complete")
def complete(
    page: OperatePage,
    task_id: int,
    note: Annotated[str, Form()] = "",
    promise: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
) -> Response:
    item = _mine(page, task_id)
    values = {"note": note, "promise": promise, "amount": amount}
    note_text, promise_text, amount_text = note.strip(), promise.strip(), amount.strip()
    errors: dict[str, str] = {}
    until: date | None = None
    promised: Decimal | None = None
    if promise_text:
        try:
            until = date.fromisoformat(promise_text)
        except ValueError:
            errors["promise"] = "Not a date: use the date picker, or write it as YYYY-MM-DD."
    if amount_text:
        if not promise_text:
            errors["amount"] = "An amount goes with a promise date."
        else:
            try:
                promised = parse_promised_amount(amount_text)
            except InvalidInput as exc:
                errors["amount"] = _message(exc)
    if not note_text and not promise_text:
        errors["note"] = "Say what was done, or record a promise to pay."
    if errors:
        return _task_page(page, task_id, errors=errors, values=values, status_code=422)
    try:
        complete_task(
            page.session, item.task, user=page.actor, on=page.today, outcome=note_text or None
        )
        if until is not None:
            plan = promise_for_task(
                page.session, item.task, until=until, on=page.today, amount=promised,
                actor=page.actor,
            )  # fmt: skip
    except RecoupError as exc:
        page.rollback()  # the task stays as it was: nothing of this form is written
        field = FORM_FIELDS.get(exc.field or "", "form")
        return _task_page(
            page, task_id, errors={field: _message(exc)}, values=values,
            status_code=exc.status_code,
        )  # fmt: skip
    message = f"Task {task_id} completed."
    if until is not None:
        message += f" Plan {plan.id} waits for the promise until {until.isoformat()}."
    return page.redirect("/tasks", message=message)


def _message(exc: RecoupError) -> str:
    text = exc.render(lambda field: LABELS.get(field, field))
    return text[:1].upper() + text[1:]
