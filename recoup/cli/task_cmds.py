"""The collector's work list: `recoup tasks`, `task show|release ID`, and a promise to pay,
`plan promise ID DATE` (R10; `task complete --promise` records one too). Thin: the queries are
recoup.tasks.repository, the changes recoup.tasks.service and recoup.plans.promise; `--json`
prints recoup.tasks.schemas."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import typer
from rich.markup import escape
from rich.panel import Panel

from recoup.cli.common import (
    JSON_OPTION,
    USER_OPTION,
    _cell,
    _header,
    actor_name,
    console,
    handle_errors,
    on_date,
    parse_date,
    plain_table,
    print_json,
    print_table,
    transaction,
)
from recoup.cli.ops_cmds import plan_app, print_log, task_app
from recoup.core.clock import utc_now
from recoup.core.errors import InvalidInput
from recoup.domain.enums import SYSTEM_ACTOR, TaskStatus
from recoup.domain.money import money_text
from recoup.plans import repository as plan_repository
from recoup.plans.promise import check_person, make_promise, parse_promised_amount
from recoup.tasks import repository as task_repository
from recoup.tasks.repository import WAITING, WorkItem, task_detail, waited, work_list
from recoup.tasks.schemas import TaskDetailRead, WorkItemRead
from recoup.tasks.service import release_task

# `--json`: WorkItemRead's fields, SPEC §5's first, in their order, then what a collector needs
# The table: its own short columns (the JSON keeps the fields above)
# (in 80 columns: the days overdue under the balance, the claimer under the status)
WORK_COLUMNS = ["id", "status", "customer", "invoices", "balance", "waited", "todo"]
WORK_HEADERS = {"balance": "balance\noverdue", "todo": "to do"}
# read whole or not at all; the customer and the instructions wrap
WORK_WHOLE = frozenset({"id", "status", "invoices", "balance", "waited"})
WORK_RIGHT = frozenset({"id", "balance", "waited"})


def register(app: typer.Typer) -> None:
    """`tasks` here; `task show|release` and `plan promise` hang on the groups of ops_cmds."""
    app.command("tasks")(tasks)


def _table_cells(row: dict[str, Any], item: WorkItem, today: date, now: datetime) -> list[str]:
    status = row["status"]
    if row["claimed_by"] and status != TaskStatus.open:
        status = f"{status}\n{row['claimed_by']}"
    who = "\n".join(part for part in (row["customer_name"], row["phone"]) if part)
    balance = (
        f"{money_text(row['balance'], row['currency'])} {row['currency']}"
        if row["balance"] is not None
        else ""
    )
    if row["days_overdue"] is not None:
        balance += f"\n{row['days_overdue']} d"
    todo = ": ".join(part for part in (row["role"], row["instructions"] or row["action"]) if part)
    values = [
        str(row["id"]),
        status,
        who or (row["customer_id"] or ""),
        "\n".join(row["invoice_ids"]),
        balance,
        waited(item.task, today, now),
        todo,
    ]
    return [_cell(v) for v in values]


def print_worklist(rows: list[dict[str, Any]], items: list[WorkItem], today: date) -> None:
    """The work list in a terminal: ids, statuses, invoices, amounts and ages whole; the
    customer and the instructions wrap to fit. Narrower than the whole values need, the lines
    get longer (the terminal wraps them) rather than a value being cut."""
    if not rows:
        console.print("[dim]no tasks waiting[/dim]")
        return
    now = utc_now()
    cells = [_table_cells(row, item, today, now) for row, item in zip(rows, items, strict=True)]
    headers = [WORK_HEADERS.get(c, _header(c)) for c in WORK_COLUMNS]
    table = plain_table("Tasks")
    needed = 2 * (len(WORK_COLUMNS) - 1)
    for index, (column, header) in enumerate(zip(WORK_COLUMNS, headers, strict=True)):
        lines = [part for line in cells for part in line[index].split("\n")]
        head = max(len(part) for part in header.split("\n"))
        least = None
        if column in WORK_WHOLE:
            needed += max(head, *(len(part) for part in lines))
        else:  # a wrapping column keeps its longest word whole (up to 16 characters)
            words = [word for part in lines for word in part.split()]
            least = min(16, max(head, *(len(word) for word in words or [""])))
            needed += least
        table.add_column(
            header,
            justify="right" if column in WORK_RIGHT else "left",
            no_wrap=column in WORK_WHOLE,
            overflow="fold",
            min_width=least,
        )
    for line in cells:
        table.add_row(*line)
    width = console.width
    if needed > width:
        console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


@handle_errors
def tasks(
    status: str | None = typer.Option(None, help="open, claimed, completed or cancelled."),
    show_all: bool = typer.Option(
        False, "--all", help="Also the finished tasks (completed, cancelled)."
    ),
    role: str | None = typer.Option(None, help="Only tasks for this role."),
    mine: bool = typer.Option(False, "--mine", help="Only the tasks I claimed (--user)."),
    on: str | None = typer.Option(
        None, "--on", help="Business date for days overdue and waited (default: today)."
    ),
    user: str | None = USER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The work list: tasks waiting for people (open and claimed), oldest first, with the
    customer and phone, invoices, balance, days overdue and instructions."""
    if status is not None and status not in {s.value for s in TaskStatus}:
        known = ", ".join(s.value for s in TaskStatus)
        raise InvalidInput(f"--status {status!r}: a task is {known}")
    claimed_by = None
    if mine:
        claimed_by = actor_name(user)
        if claimed_by == SYSTEM_ACTOR:
            raise InvalidInput(
                "--mine needs to know who you are: pass --user NAME or set RECOUP_USER"
            )
    statuses: tuple[str, ...] | None = WAITING
    if status is not None:
        statuses = (status,)
    elif show_all:
        statuses = None
    with transaction() as session:
        today = on_date(session, on)
        items = work_list(session, today=today, statuses=statuses, role=role, claimed_by=claimed_by)
        shown = [WorkItemRead.of(item) for item in items]
        if as_json:
            print_json([row.model_dump(mode="json") for row in shown])
        else:
            print_worklist([row.model_dump() for row in shown], items, today)


@task_app.command("show")
@handle_errors
def task_show(
    task_id: int,
    on: str | None = typer.Option(
        None, "--on", help="Business date for days overdue and waited (default: today)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Everything about one task: its plan, the customer, the invoices, the balance, the
    instructions and the history."""
    with transaction() as session:
        today = on_date(session, on)
        detail = task_detail(session, task_id, today=today)
        shown = TaskDetailRead.of_detail(detail, waited=waited(detail.item.task, today, utc_now()))
    if as_json:
        print_json([shown.model_dump(mode="json")])
        return
    _print_task(shown.model_dump())


def _print_task(row: dict[str, Any]) -> None:
    def line(label: str, value: Any) -> str:
        return f"[bold]{label}[/bold]: {escape(str(value))}"

    who = row["claimed_by"]
    lines = [
        line("status", row["status"] + (f" (by {who})" if who else "")),
        line("role", row["role"]),
        line("waited", row["waited"]),
    ]
    if row["instructions"]:
        lines.append(line("instructions", row["instructions"]))
    if row["outcome"]:
        lines.append(line("outcome", row["outcome"]))
    if row["customer_id"]:
        contact = ", ".join(v for v in (row["phone"], row["email"]) if v) or "no phone or email"
        lines.append(
            line(
                "customer",
                f"{row['customer_name']} ({row['customer_id']}), {contact}; "
                f"account {row['customer_status']}",
            )
        )
    if row["plan_id"] is not None:
        state = f"{row['plan_status']}, level {row['plan_level'] or '(none yet)'}"
        if row["pause_reason"]:
            until = f" until {row['pause_until']}" if row["pause_until"] else ""
            state += f", paused ({row['pause_reason']}){until}"
        if row["promise_amount"] is not None:
            promised = money_text(row["promise_amount"], row["currency"])
            state += f", {promised} {row['currency']} promised"
        lines.append(line("plan", f"{row['plan_id']} ({row['policy']}): {state}"))
        lines.append(
            line("balance", f"{money_text(row['balance'], row['currency'])} {row['currency']}")
        )
    if row["days_overdue"] is not None:
        lines.append(line("days overdue", row["days_overdue"]))
    console.print(Panel("\n".join(lines), title=f"Task {row['id']}: {escape(row['action'] or '')}"))
    print_invoices(row["invoices"], title="Invoices")
    print_log(row["log"])


def print_invoices(invoices: list[dict[str, Any]], *, title: str) -> None:
    """Invoices as a table: the amount due with its currency in one column (80 columns)."""
    rows = [
        {
            **inv,
            "invoice_id": inv["id"],
            "amount": inv["amount_due"],
            "disputed": "disputed" if inv["disputed"] else "",
        }
        for inv in invoices
    ]
    columns = ["invoice_id", "number", "due_date", "amount", "currency", "status", "disputed"]
    print_table(rows, columns, title=title)


@task_app.command("release")
@handle_errors
def task_release(
    task_id: int,
    note: str | None = typer.Option(None, "--note", help="Why (recorded in the log)."),
    on: str | None = typer.Option(None, "--on", help="Business date (default: today)."),
    user: str | None = USER_OPTION,
) -> None:
    """Give a claimed task back: it is open again, for anyone to claim."""
    with transaction() as session:
        task = task_repository.get_or_not_found(session, task_id)
        release_task(session, task, user=actor_name(user), on=on_date(session, on), note=note)
    console.print(f"task {task_id} released: open again")


@plan_app.command("promise")
@handle_errors
def plan_promise(
    plan_id: int,
    until: str = typer.Argument(..., metavar="DATE", help="The date the customer will pay by."),
    amount: str | None = typer.Option(
        None, "--amount", help="The amount promised (default: the whole balance)."
    ),
    note: str | None = typer.Option(None, "--note", help="What was agreed (recorded in the log)."),
    on: str | None = typer.Option(None, "--on", help="Business date (default: today)."),
    user: str | None = USER_OPTION,
) -> None:
    """Record a promise to pay: the plan pauses until DATE. Paid in time, it closes
    recovered; not paid, it resumes then, logs promise_broken and escalates."""
    actor = check_person(actor_name(user))
    day = parse_date(until, "DATE")
    assert day is not None
    promised = parse_promised_amount(amount)
    with transaction() as session:
        plan = plan_repository.get_or_not_found(session, plan_id)
        make_promise(
            session,
            plan,
            until=day,
            amount=promised,
            on=on_date(session, on),
            actor=actor,
            note=note,
        )
        what = f"{money_text(plan.promise_amount or Decimal(0), plan.currency)} {plan.currency}"
    console.print(f"plan {plan_id} paused until {day}: {what} promised")
