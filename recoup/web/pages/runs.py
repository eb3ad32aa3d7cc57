"""Runs: start one (today, or a date; collectors and admins: `Right.operate`), watch it work
(htmx polls a fragment with its progress bar until it ends; without JS the page refreshes
itself), read its summary, and the history (newest first, cursor pages).

A run goes on in the background as POST /api/v1/runs starts it (recoup.runs.background
start_run, its own sessions and transactions); the page answers at once with the run's page."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.datastructures import FormData

from recoup.core.env import load_env
from recoup.core.errors import InvalidInput, RecoupError
from recoup.core.roles import Right
from recoup.runs import repository as run_repository
from recoup.runs.background import start_run
from recoup.runs.history import list_runs, run_detail
from recoup.runs.schemas import RunDetailRead
from recoup.web.page import OperatePage, Page, ReadPage
from recoup.web.pages.forms import field_errors, form_data

router = APIRouter()
FormDep = Annotated[FormData, Depends(form_data)]
PAGE_SIZE = 20
POLL_SECONDS = 1

# the summary's counts in the order `recoup run` prints them, with the page's words
SUMMARY = [
    ("considered", "Invoices considered"),
    ("reminders", "Reminders"),
    ("plans_opened", "Plans opened"),
    ("plans_advanced", "Plans advanced"),
    ("plans_recovered", "Plans recovered"),
    ("plans_unrecovered", "Plans unrecovered"),
    ("levels_skipped", "Levels skipped"),
    ("actions_queued", "Actions queued"),
    ("actions_done", "Actions done"),
    ("actions_failed", "Actions failed"),
    ("actions_skipped", "Actions skipped"),
    ("actions_retried", "Actions to retry"),
    ("actions_postponed", "Actions postponed (channel down)"),
    ("actions_held", "Actions held"),
    ("tasks_created", "Tasks created"),
]


def _history(
    page: Page,
    after: str | None,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    runs = list_runs(page.session, limit=PAGE_SIZE, starting_after=after)
    return page.render(
        "runs.html",
        status_code=status_code,
        runs=runs.items,
        next_cursor=runs.next_cursor,
        after=after,
        values=values,
        errors=errors,
        may_start=page.login is not None and page.login.may(Right.operate),
        today=page.today,
    )


@router.get("/runs")
def runs_page(page: ReadPage, after: str | None = None) -> Response:
    return _history(page, after, values={"as_of": ""}, errors={})


@router.post("/runs")
def start(page: OperatePage, form: FormDep) -> Response:
    text = str(form.get("as_of") or "").strip()
    try:
        try:
            as_of = date.fromisoformat(text) if text else page.today
        except ValueError:
            raise InvalidInput("{field}: not a date (YYYY-MM-DD)", field="as_of") from None
        # the run owns its transactions: on SQLite a second writer would wait for this one
        page.session.commit()
        env = replace(load_env(), database_url=page.request.app.state.database_url)
        run_id = start_run(
            page.request.app.state.session_factory, as_of=as_of, env=env, actor=page.actor
        )
    except RecoupError as exc:
        errors = {
            "as_of" if k in ("as_of", "future") else "form": v for k, v in field_errors(exc).items()
        }
        return _history(
            page, None, values={"as_of": text}, errors=errors, status_code=exc.status_code
        )
    return page.redirect(f"/runs/{run_id}", message=f"Run for {as_of.isoformat()} started.")


def _view(run: RunDetailRead) -> dict[str, Any]:
    done, total = run.units_done or 0, run.units_total or 0
    percent = int(done * 100 / total) if total else (100 if run.status != "running" else 0)
    summary = [(label, run.summary[key]) for key, label in SUMMARY if key in run.summary]
    return {"run": run, "done": done, "total": total, "percent": percent, "summary": summary}


@router.get("/runs/{run_id}")
def run_page(run_id: int, page: ReadPage) -> Response:
    run = run_detail(page.session, run_id)
    return page.render("run.html", poll=POLL_SECONDS, **_view(run))


@router.get("/runs/{run_id}/progress")
def run_progress(run_id: int, page: ReadPage) -> Response:
    """The fragment htmx polls; once the run has ended it stops asking."""
    run_repository.get_or_not_found(page.session, run_id)
    run = run_detail(page.session, run_id)
    return page.render("run_progress.html", poll=POLL_SECONDS, **_view(run))
