"""`recoup customers` and `recoup customer show ID`: the accounts, what they owe, their status
and which plan changed it. Thin: the queries are recoup.book.customers (and its repository),
the fields recoup.book.schemas."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.panel import Panel

from recoup.book.customers import customer_detail, list_customers
from recoup.book.schemas import CustomerDetailRead, CustomerRead
from recoup.cli.common import (
    JSON_OPTION,
    console,
    handle_errors,
    print_json,
    print_table,
    transaction,
)
from recoup.cli.ops_cmds import (
    CHARGE_FIELDS,
    PLAN_FIELDS,
    charge_row,
    log_row_out,
    plan_row,
    print_log,
)
from recoup.cli.task_cmds import print_invoices

# A table of its own: a customer may owe in several currencies (one line each)
TABLE_FIELDS = ["id", "name", "status", "balance", "plans"]

customer_app = typer.Typer(help="One customer account.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("customers")(customers)
    app.add_typer(customer_app, name="customer")


def _owed(row: dict[str, Any]) -> str:
    lines = [f"{amount} {cur}" for cur, amount in row["balances"].items()]
    return "\n".join(lines) or "0"


@handle_errors
def customers(
    status: str | None = typer.Option(None, "--status", help="Only accounts in this status."),
    search: str | None = typer.Option(
        None, "--search", help="Only accounts whose id, name, email or phone contain TEXT."
    ),
    limit: int = typer.Option(1000, help="At most this many (by id)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Customer accounts: status, what they owe on open invoices, open plans."""
    with transaction() as session:
        summaries, _ = list_customers(session, status=status, search=search, limit=limit)
        rows = [CustomerRead.model_validate(s).model_dump() for s in summaries]
    if as_json:
        print_json(rows)
        return
    table = [
        {
            "id": r["id"],
            "name": r["name"],
            "status": r["status"],
            "balance": _owed(r),
            "plans": r["open_plans"],
        }
        for r in rows
    ]
    print_table(table, TABLE_FIELDS, title="Customers")


@customer_app.command("show")
@handle_errors
def customer_show(customer_id: str, as_json: bool = JSON_OPTION) -> None:
    """One account: its details and status (which plan changed it, from what), its plans, open
    invoices, charges and recent log."""
    with transaction() as session:
        detail = customer_detail(session, customer_id)
        account = CustomerDetailRead.of(detail).model_dump()
        invoices = account.pop("invoices")
        row = {
            **account,
            "plans": [plan_row(p) for p in detail.plans],
            "invoices": invoices,
            "charges": [charge_row(c) for c in detail.charges],
            "log": [log_row_out(e) for e in detail.log],
        }
    if as_json:
        print_json([row])
        return
    _print_customer(row)


def _status_text(row: dict[str, Any]) -> str:
    """The status, and if a plan set it, which one and what it was before (R12)."""
    held = [c for c in row["status_changes"] if c["restored_at"] is None]
    if not held:
        return str(row["status"])
    first = held[-1]  # the oldest change still held: the status before dunning touched it
    plans = ", ".join(str(c["plan_id"]) for c in reversed(held))
    when = row["status_set_on"] or first["changed_at"].date()
    return (
        f"{row['status']} (set by plan {plans} on {when}; was {first['previous_status']}, "
        "restored when paid)"
    )


def _print_customer(row: dict[str, Any]) -> None:
    def line(label: str, value: Any) -> str:
        return f"[bold]{label}[/bold]: {escape(str(value))}"

    lines = [line("name", row["name"]), line("status", _status_text(row))]
    if row["excluded"]:
        lines.append(line("excluded", "yes: never dunned"))
    for label in (
        "email",
        "phone",
        "language",
        "country",
        "currency",
        "category",
        "payment_method",
        "policy",
        "address",
    ):
        if row.get(label):
            lines.append(line(label.replace("_", " "), row[label]))
    owed = ", ".join(f"{amount} {cur}" for cur, amount in row["balances"].items()) or "nothing"
    lines.append(line("owed on open invoices", owed))
    lines.append(line("open plans", row["open_plans"]))
    for key, value in row["attributes"].items():
        lines.append(line(key, value))
    console.print(Panel("\n".join(lines), title=f"Customer {escape(row['id'])}"))
    print_table(row["plans"], PLAN_FIELDS, title="Plans")
    print_invoices(row["invoices"], title="Open invoices")
    print_table(row["charges"], CHARGE_FIELDS, title="Charges")
    print_log(row["log"])
