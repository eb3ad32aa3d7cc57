"""Operating commands (SPEC §5): plans, plan show, pause/resume/stop, tasks, task claim/complete,
charges, log, explain. Listings print a table, or a JSON array with `--json`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.panel import Panel

from recoup.charges import repository as charge_repository
from recoup.charges.schemas import ChargeRead
from recoup.cli.common import (
    JSON_ONE_OPTION,
    JSON_OPTION,
    ON_OPTION,
    USER_OPTION,
    actor_name,
    console,
    handle_errors,
    on_date,
    output,
    parse_date,
    print_json,
    print_table,
    transaction,
)
from recoup.core.errors import InvalidInput
from recoup.domain.money import money_text
from recoup.log import repository as log_repository
from recoup.log.repository import LogFilter
from recoup.log.schemas import LogEntryRead
from recoup.plans import repository as plan_repository
from recoup.plans.promise import parse_promised_amount, promise_for_task
from recoup.plans.schemas import PlanAction, PlanDetail, PlanDocument, PlanRead
from recoup.plans.service import check_reason, pause_plan, resume_plan, stop_plan
from recoup.runs.explain import SETTLED, explain_invoice
from recoup.settings.service import business_today
from recoup.tasks import repository as task_repository
from recoup.tasks.schemas import TaskRead
from recoup.tasks.service import claim_task, complete_task

if TYPE_CHECKING:
    from recoup.models import Charge, LogEntry, Plan, Task

# The columns of the tables: the read schemas' fields (SPEC §5), which `--json` prints whole
PLAN_FIELDS = list(PlanRead.model_fields)
LOG_FIELDS = list(LogEntryRead.model_fields)
CHARGE_FIELDS = list(ChargeRead.model_fields)
TASK_FIELDS = list(TaskRead.model_fields)
ACTION_FIELDS = list(PlanAction.model_fields)
DOCUMENT_FIELDS = list(PlanDocument.model_fields)
# The table a person reads: the business date, what happened and to what, and the details in
# one line (`--json` gives every field of LogEntryRead, details as an object).
LOG_TABLE_FIELDS = ["on", "event", "invoice", "plan", "step", "details"]

plan_app = typer.Typer(help="One collection plan.", no_args_is_help=True)
task_app = typer.Typer(help="One task for a person.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("plans")(plans)
    app.add_typer(plan_app, name="plan")
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("stop")(stop)
    app.add_typer(task_app, name="task")
    app.command("charges")(charges)
    app.command("log")(show_log)
    app.command("explain")(explain)


def plan_row(plan: Plan) -> dict[str, Any]:
    return PlanRead.model_validate(plan).model_dump(mode="json")


def charge_row(charge: Charge) -> dict[str, Any]:
    return ChargeRead.model_validate(charge).model_dump(mode="json")


def log_row_out(entry: LogEntry) -> dict[str, Any]:
    return LogEntryRead.model_validate(entry).model_dump(mode="json")


def task_row(task: Task) -> dict[str, Any]:
    return TaskRead.model_validate(task).model_dump(mode="json")


def log_table_row(row: dict[str, Any]) -> dict[str, Any]:
    step = " / ".join(part for part in (row["level"], row["action"]) if part)
    details = summarize(row["details"])
    if row["actor"] and row["actor"] != "system":  # what people did says who
        details = f"by {row['actor']}" + (f"; {details}" if details else "")
    return {
        "on": row["on"],
        "event": row["event"],
        "invoice": row["invoice_id"],
        "plan": row["plan_id"],
        "step": step,
        "details": details,
    }


def summarize(value: Any) -> str:
    """Details in one line: `reason: …; actions: a, b; levels_skipped: first (passed over …)`."""
    if isinstance(value, dict):
        if set(value) >= {"level", "reason"}:  # a level or reminder passed over
            return f"{value['level']} ({value['reason']})"
        return "; ".join(
            f"{key}: {summarize(item)}"
            for key, item in value.items()
            if item not in (None, "", [], {})  # nothing to read
        )
    if isinstance(value, list | tuple):
        return ", ".join(summarize(item) for item in value)
    return "" if value is None else str(value)


@handle_errors
def plans(
    status: str | None = typer.Option(None, help="Only plans in this status."),
    customer: str | None = typer.Option(None, help="Only this customer's plans."),
    limit: int = typer.Option(1000, help="At most this many (newest first)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List collection plans."""
    with transaction() as session:
        found = plan_repository.list_plans(
            session, status=status, customer_id=customer, limit=limit
        )
        rows = [plan_row(p) for p in found]
    output(rows, PLAN_FIELDS, as_json=as_json, title="Plans")


@plan_app.command("show")
@handle_errors
def plan_show(plan_id: int, as_json: bool = JSON_ONE_OPTION) -> None:
    """A plan with its invoices, actions, tasks, charges and log."""
    with transaction() as session:
        shown = PlanDetail.of(plan_repository.get_parts(session, plan_id))
    if as_json:
        print_json([shown.model_dump(mode="json")])
        return
    detail = shown.model_dump()
    summary = "\n".join(
        f"[bold]{k}[/bold]: {v}"
        for k, v in detail.items()
        if k not in ("actions", "tasks", "charges", "documents", "log") and v is not None
    )
    console.print(Panel(summary, title=f"Plan {plan_id}"), width=min(console.width, 120))
    print_table(detail["actions"], ACTION_FIELDS, title="Actions")
    print_table(detail["tasks"], TASK_FIELDS, title="Tasks")
    print_table(detail["charges"], CHARGE_FIELDS, title="Charges")
    print_table(detail["documents"], DOCUMENT_FIELDS, title="Documents")
    print_log(detail["log"])


@handle_errors
def pause(
    plan_id: int,
    reason: str = typer.Option(..., "--reason", help="Why the plan is paused."),
    until: str | None = typer.Option(None, "--until", help="Resume on this date (YYYY-MM-DD)."),
    on: str | None = typer.Option(None, "--on", help="Business date (default: today)."),
    user: str | None = USER_OPTION,
) -> None:
    """Pause an active plan; paused days do not count as overdue."""
    check_reason(reason)
    with transaction() as session:
        plan = plan_repository.get_or_not_found(session, plan_id)
        pause_plan(
            session,
            plan,
            reason=reason,
            until=parse_date(until, "--until"),
            on=on_date(session, on),
            actor=actor_name(user),
        )
    console.print(f"plan {plan_id} paused")


@handle_errors
def resume(
    plan_id: int,
    on: str | None = typer.Option(None, "--on", help="Business date (default: today)."),
    user: str | None = USER_OPTION,
) -> None:
    """Resume a paused plan."""
    with transaction() as session:
        plan = plan_repository.get_or_not_found(session, plan_id)
        resume_plan(session, plan, on=on_date(session, on), actor=actor_name(user))
    console.print(f"plan {plan_id} resumed")


@handle_errors
def stop(
    plan_id: int,
    reason: str = typer.Option(..., "--reason", help="Why dunning stops for good."),
    on: str | None = typer.Option(None, "--on", help="Business date (default: today)."),
    user: str | None = USER_OPTION,
) -> None:
    """Stop a plan for good; its pending work is cancelled."""
    check_reason(reason)
    with transaction() as session:
        plan = plan_repository.get_or_not_found(session, plan_id)
        stop_plan(session, plan, reason=reason, on=on_date(session, on), actor=actor_name(user))
    console.print(f"plan {plan_id} stopped")


@task_app.command("claim")
@handle_errors
def task_claim(task_id: int, on: str | None = ON_OPTION, user: str | None = USER_OPTION) -> None:
    """Claim an open task."""
    with transaction() as session:
        task = task_repository.get_or_not_found(session, task_id)
        claim_task(session, task, user=actor_name(user), on=on_date(session, on))
    console.print(f"task {task_id} claimed by {actor_name(user)}")


@task_app.command("complete")
@handle_errors
def task_complete(
    task_id: int,
    note: str | None = typer.Option(None, "--note", help="What was done (the outcome)."),
    promise: str | None = typer.Option(
        None,
        "--promise",
        metavar="DATE",
        help="The customer promised to pay by DATE (rule R10 in docs/rules.md).",
    ),
    amount: str | None = typer.Option(
        None, "--amount", help="With --promise: the amount promised (default: the balance)."
    ),
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
) -> None:
    """Complete a task; its plan may then move on (or, with --promise, wait for the money)."""
    if amount is not None and promise is None:
        raise InvalidInput("--amount goes with --promise DATE")
    until, promised = parse_date(promise, "--promise"), parse_promised_amount(amount)
    with transaction() as session:
        task = task_repository.get_or_not_found(session, task_id)
        day = on_date(session, on)
        complete_task(session, task, user=actor_name(user), on=day, outcome=note)
        if until is not None:
            plan = promise_for_task(
                session, task, until=until, on=day, amount=promised, actor=actor_name(user)
            )
    if until is not None:
        console.print(f"task {task_id} completed; plan {plan.id} paused until {until} (promise)")
    else:
        console.print(f"task {task_id} completed")


@handle_errors
def charges(
    customer: str | None = typer.Option(None, help="Only this customer's charges."),
    status: str | None = typer.Option(None, help="open, exported or waived."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List late fees and interest charged, with their status (open, exported, waived)."""
    with transaction() as session:
        found = charge_repository.list_charges(session, customer_id=customer, status=status)
        rows = [charge_row(c) for c in found]
    output(rows, CHARGE_FIELDS, as_json=as_json, title="Charges")


@handle_errors
def show_log(
    plan: int | None = typer.Option(None, "--plan", help="Only this plan."),
    invoice: str | None = typer.Option(None, "--invoice", help="Only this invoice."),
    customer: str | None = typer.Option(None, "--customer", help="Only this customer."),
    event: str | None = typer.Option(None, "--event", help="Only this event."),
    limit: int = typer.Option(200, help="At most this many (newest last)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The log: everything that happened, and why."""
    filters = LogFilter(plan_id=plan, invoice_id=invoice, customer_id=customer, event=event)
    with transaction() as session:
        rows = [log_row_out(e) for e in log_repository.recent(session, filters, limit=limit)]
    if as_json:
        output(rows, LOG_FIELDS, as_json=True, title="Log")
    else:
        print_log(rows)


def print_log(rows: list[dict[str, Any]]) -> None:
    """Log entries as a table: the step (level / action) and the details in words."""
    table = [log_table_row(r) for r in rows]
    columns = LOG_TABLE_FIELDS
    if console.width < 110:  # a narrow terminal: the step goes at the head of the details
        columns = [c for c in LOG_TABLE_FIELDS if c != "step"]
        for line in table:
            if line["step"]:
                line["details"] = f"[{line['step']}] {line['details']}".rstrip()
    output(table, columns, as_json=False, title="Log", wrap="details")


@handle_errors
def explain(
    invoice_id: str,
    as_of: str | None = typer.Option(None, "--as-of", help="Explain as of this date."),
    as_json: bool = JSON_ONE_OPTION,
) -> None:
    """Why an invoice is (or is not) being dunned, and what happens next."""
    with transaction() as session:
        day = parse_date(as_of) or business_today(session)
        result = explain_invoice(session, invoice_id, day)
    if as_json:
        print_json([result.as_dict()])
        return
    # the data escaped: an id or a reason in brackets is text, not Rich markup
    lines = [
        f"[bold]Invoice {escape(result.invoice_id)}[/bold] of customer "
        f"{escape(result.customer_id)}, as of {result.as_of}",
        f"Policy: {escape(result.policy or 'none')} ({escape(result.policy_reason)})",
    ]
    if result.invoice_status in SETTLED:
        lines.append(f"{result.invoice_status.capitalize()}: nothing is owed on this invoice")
    elif result.days_overdue is not None:
        lines.append(f"Days overdue: {result.days_overdue}")
    lines.append(f"Balance: {money_text(result.balance, result.currency)} {result.currency}")
    if result.plan_id:
        level = escape(result.level) if result.level else "(none yet)"
        lines.append(f"Plan {result.plan_id}: {result.plan_status}, level {level}")
    else:
        lines.append("Plan: none")
    if result.today:
        lines.append("[bold]On this date the run would:[/bold]")
        lines += [f"  • {escape(line)}" for line in result.today]
    else:
        lines.append("[bold]On this date the run would do nothing.[/bold]")
    if result.next_level and result.next_on:
        lines.append(f"Next: level {escape(repr(result.next_level))} on {result.next_on}")
    lines.append("[bold]Why:[/bold]")
    lines += [f"  - {escape(r)}" for r in result.reasons] or ["  - no policy step applies"]
    console.print("\n".join(lines), highlight=False)
