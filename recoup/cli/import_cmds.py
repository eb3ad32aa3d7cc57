"""`recoup import customers|invoices|payments FILE.csv` and `recoup invoice dispute|undispute`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recoup.book import customers, imports, invoices, payments
from recoup.book.rows import CsvTable, read_csv
from recoup.cli.common import (
    ON_OPTION,
    USER_OPTION,
    actor_name,
    console,
    err_console,
    handle_errors,
    parse_date,
)
from recoup.cli.common import transaction as _transaction
from recoup.core.errors import Conflict, InvalidInput, RecoupError
from recoup.domain.money import money_text

PROGRESS_THRESHOLD = 1000  # rows: show a progress bar above this

import_app = typer.Typer(
    help="Import customers, invoices or payments from a CSV file (all rows or none).",
    no_args_is_help=True,
)
invoice_app = typer.Typer(help="Disputes on invoices.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.add_typer(invoice_app, name="invoice")


FILE_ARGUMENT = typer.Argument(
    ..., metavar="FILE.csv", help="A CSV file with a header row.", show_default=False
)


def _read(path: Path) -> CsvTable:
    if not path.is_file():
        raise RecoupError(f"{path}: no such file")
    table = read_csv(path)
    if table.errors and not table.header:
        raise InvalidInput(f"{path}: cannot read the file", details=[str(e) for e in table.errors])
    return table


@contextmanager
def _progress(rows: int) -> Iterator[imports.Progress | None]:
    if rows <= PROGRESS_THRESHOLD:
        yield None
        return
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("checking", total=rows)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        yield update


def _run(
    path: Path,
    user: str | None,
    importer: Callable[..., imports.ImportReport],
) -> imports.ImportReport:
    table = _read(path)
    refused: list[Conflict] = []  # a rule of the import refused: printed as it is
    try:
        with _progress(len(table.rows)) as progress, _transaction() as session:
            try:
                report = importer(session, table, actor=actor_name(user), progress=progress)
            except Conflict as exc:
                refused.append(exc)
                raise
    except Conflict as exc:
        if refused:
            raise
        # the unit of work's: two imports of the same new rows at once, the database kept one
        raise Conflict(
            f"{path}: the same rows were changed at the same time by someone else; "
            "nothing was imported, run the import again",
            details=exc.details,
        ) from None
    _print_report(report)
    return report


def _print_report(report: imports.ImportReport) -> None:
    if report.kind == "payments":
        console.print(
            f"payments: {report.created} recorded, {report.unchanged} unchanged "
            f"(already recorded); {report.allocations} invoice allocation"
            f"{'s' if report.allocations != 1 else ''}"
        )
        for item in report.unallocated:
            amount = money_text(item.amount, item.currency)
            console.print(
                f"  unallocated: payment {item.payment_id} (customer {item.customer_id}) "
                f"{amount} {item.currency} beyond what was due"
            )
    else:
        console.print(
            f"{report.kind}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged"
        )
    if report.plans_recovered:
        console.print(
            f"plans recovered: {len(report.plans_recovered)} ({_plan_ids(report.plans_recovered)})"
        )
    if report.plans_paused:
        console.print(f"plans paused for dispute: {_plan_ids(report.plans_paused)}")
    if report.plans_resumed:
        console.print(f"plans resumed: {_plan_ids(report.plans_resumed)}")
    for warning in report.warnings:  # names from the file: no rich markup in them
        console.print(f"note: {warning}", markup=False, highlight=False)


CUSTOMERS_HELP = (
    "Create or update customers, matched by id.\n\n"
    "Columns: id, name, email, phone, language, country, currency, category, "
    "is_company, payment_method, policy, status, excluded, optional address; other "
    "columns become attributes. A file with any bad row imports nothing."
)


@import_app.command("customers", help=CUSTOMERS_HELP)
@handle_errors
def import_customers(path: Path = FILE_ARGUMENT, user: str | None = USER_OPTION) -> None:
    """Create or update customers, matched by id."""
    _run(path, user, customers.import_customers)


INVOICES_HELP = (
    "Create or update invoices, matched by id.\n\n"
    "Columns: id, customer_id, number, type, issue_date, due_date, currency, amount, "
    "amount_due, status, disputed, optional pdf_path (relative to RECOUP_INVOICE_DIR). "
    "Plans of invoices now paid close as recovered. A file with any bad row imports nothing."
)


@import_app.command("invoices", help=INVOICES_HELP)
@handle_errors
def import_invoices(path: Path = FILE_ARGUMENT, user: str | None = USER_OPTION) -> None:
    """Create or update invoices, matched by id."""
    _run(path, user, invoices.import_invoices)


PAYMENTS_HELP = (
    "Record payments; plans whose debt is paid close as recovered.\n\n"
    "Columns: id, customer_id, invoice_id (empty: the oldest due invoices are paid "
    "first), amount, currency, date. Payments are immutable. A file with any bad row "
    "imports nothing."
)


@import_app.command("payments", help=PAYMENTS_HELP)
@handle_errors
def import_payments(path: Path = FILE_ARGUMENT, user: str | None = USER_OPTION) -> None:
    """Record payments; plans whose debt is paid close as recovered."""
    _run(path, user, payments.import_payments)


@invoice_app.command("dispute")
@handle_errors
def dispute(
    invoice_id: str = typer.Argument(..., metavar="ID", help="The invoice id."),
    reason: str | None = typer.Option(None, "--reason", help="Why the customer disputes it."),
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
) -> None:
    """Mark an invoice disputed: its plan pauses until the dispute is cleared."""
    day = parse_date(on, "--on")
    with _transaction() as session:
        result = invoices.dispute_invoice(
            session, invoice_id, reason=reason, actor=actor_name(user), on=day
        )
    console.print(f"invoice {invoice_id} disputed")
    _print_dispute(result)


@invoice_app.command("undispute")
@handle_errors
def undispute(
    invoice_id: str = typer.Argument(..., metavar="ID", help="The invoice id."),
    reason: str | None = typer.Option(None, "--reason", help="How the dispute was settled."),
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
) -> None:
    """Clear the dispute on an invoice: the plan paused for it resumes."""
    day = parse_date(on, "--on")
    with _transaction() as session:
        result = invoices.undispute_invoice(
            session, invoice_id, reason=reason, actor=actor_name(user), on=day
        )
    console.print(f"invoice {invoice_id} no longer disputed")
    _print_dispute(result)


def _print_dispute(result: invoices.DisputeResult) -> None:
    for plan_id in result.plans_paused:
        console.print(f"plan {plan_id} paused (dispute)")
    for plan_id in result.plans_resumed:
        console.print(f"plan {plan_id} resumed")
    for plan_id in result.plans_recovered:
        console.print(f"plan {plan_id} closed: recovered")
    for plan_id in result.plans_untouched:
        console.print(f"plan {plan_id} left as it is (paused for another reason)")


def _plan_ids(ids: list[int]) -> str:
    return ("plan " if len(ids) == 1 else "plans ") + ", ".join(map(str, ids))
