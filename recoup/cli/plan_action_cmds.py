"""Manual actions on a plan: `recoup plan email|letter|status ID` (recoup.actions.manual)."""

from __future__ import annotations

import typer
from rich.markup import escape

from recoup.actions.manual import ManualKind, ManualOutcome, perform_manual_action
from recoup.actions.schemas import ManualActionRead
from recoup.cli.common import (
    JSON_ONE_OPTION,
    ON_OPTION,
    USER_OPTION,
    actor_name,
    console,
    env,
    err_console,
    handle_errors,
    parse_date,
    print_json,
    session_factory,
)
from recoup.cli.ops_cmds import plan_app

TEMPLATE_OPTION = typer.Option(
    None, "--template", help="Another active template of the channel (default: the level's)."
)


def register(app: typer.Typer) -> None:
    """The commands hang on `recoup plan` (ops_cmds registers that group)."""


def _run(
    plan_id: int,
    kind: ManualKind,
    *,
    user: str | None,
    as_json: bool,
    template: str | None = None,
    status: str | None = None,
    on: str | None = None,
) -> None:
    outcome = perform_manual_action(
        session_factory(),
        plan_id,
        kind,
        actor=actor_name(user),
        env=env(),
        template=template,
        status=status,
        today=parse_date(on, "--on"),
    )
    if as_json:
        print_json([_row(outcome)])
    else:
        _print(outcome)
    if not outcome.succeeded:
        raise typer.Exit(1)


def _row(outcome: ManualOutcome) -> dict[str, object]:
    return ManualActionRead.model_validate(outcome).model_dump()


def _describe(outcome: ManualOutcome) -> str:
    result = outcome.result
    if outcome.kind is ManualKind.email:
        where = result.get("path") or result.get("delivery") or ""
        return (
            f"email {result.get('template')} ({result.get('language')}) sent to "
            f"{result.get('to')}" + (f" [{where}]" if where else "")
        )
    if outcome.kind is ManualKind.letter:
        extra = result.get("path") or result.get("document_id") or ""
        return "letter generated" + (f": {extra}" if extra else "")
    if result.get("changed") is False:
        return f"account status already {result.get('status')} (recorded for this plan)"
    return f"account status {result.get('previous_status')} → {result.get('status')}"


def _print(outcome: ManualOutcome) -> None:
    head = escape(f"plan {outcome.plan_id}, level {outcome.level}, action {outcome.action}")
    if outcome.succeeded:
        console.print(
            f"{head}: {_describe(outcome)}", markup=False, highlight=False, soft_wrap=True
        )
        return
    if outcome.status == "skipped":
        reason = escape(str(outcome.result.get("reason", "")))
        message = f"[yellow]skipped:[/yellow] {head}: {reason}"
    elif outcome.status == "pending":
        message = (
            f"[yellow]not done yet:[/yellow] {head}: {escape(outcome.error or '')}; "
            f"a worker retries it at {outcome.next_attempt_at}"
        )
    elif outcome.status == "failed":
        message = (
            f"[red]failed:[/red] {head}: {escape(outcome.error or '')} "
            "(a task was opened for a collector)"
        )
    else:
        message = f"[yellow]{outcome.status}:[/yellow] {head}: taken over by a worker"
    err_console.print(message, highlight=False, soft_wrap=True)


@plan_app.command("email")
@handle_errors
def plan_email(
    plan_id: int,
    template: str | None = TEMPLATE_OPTION,
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
    as_json: bool = JSON_ONE_OPTION,
) -> None:
    """Send an email now, with the current level's email action (or another template)."""
    _run(plan_id, ManualKind.email, user=user, as_json=as_json, template=template, on=on)


@plan_app.command("letter")
@handle_errors
def plan_letter(
    plan_id: int,
    template: str | None = TEMPLATE_OPTION,
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
    as_json: bool = JSON_ONE_OPTION,
) -> None:
    """Generate a letter now, with the current level's letter action (or another template)."""
    _run(plan_id, ManualKind.letter, user=user, as_json=as_json, template=template, on=on)


@plan_app.command("status")
@handle_errors
def plan_status(
    plan_id: int,
    status: str | None = typer.Option(
        None, "--status", help="The account status to set (default: the level's)."
    ),
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
    as_json: bool = JSON_ONE_OPTION,
) -> None:
    """Change the customer's account status now (restored when the plan is recovered)."""
    _run(plan_id, ManualKind.status, user=user, as_json=as_json, status=status, on=on)
