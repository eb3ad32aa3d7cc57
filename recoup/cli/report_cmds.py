"""`recoup report`: receivables, aging and recovery per currency. Thin: the figures come from
recoup.reports.service."""

from __future__ import annotations

import typer
from rich.table import Table

from recoup.cli.common import (
    JSON_OPTION,
    console,
    handle_errors,
    parse_date,
    plain_table,
    print_json,
)
from recoup.cli.common import transaction as _transaction
from recoup.core.errors import InvalidInput
from recoup.domain.aging import AGING_BUCKETS
from recoup.domain.enums import PlanStatus
from recoup.domain.locales import is_language
from recoup.reports.service import BookReport, book_report
from recoup.reports.text import bar, share, whole
from recoup.settings.service import business_today

LOCALE_OPTION = typer.Option(
    "en_US",
    "--locale",
    envvar="RECOUP_LOCALE",
    help="How amounts are written (Babel locale: en_US, fr_FR, de_DE…).",
)


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@handle_errors
def report(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Age what is owed as of this date (default: today)."
    ),
    locale: str = LOCALE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Receivables per currency: billed, collected, still owed and its aging, and how
    dunning plans ended. --json: one object per currency, exact amounts."""
    if not is_language(locale):
        raise InvalidInput(f"--locale: {locale!r} is not a known locale (like en_US, fr_FR)")
    with _transaction() as session:
        day = parse_date(as_of) or business_today(session)
        result = book_report(session, day)
    if as_json:
        print_json(result.as_rows())
        return
    if not result.currencies:
        console.print("[dim]no invoices yet: `recoup import invoices FILE.csv`[/dim]")
        return
    _print_book(result, locale)
    _print_fees(result, locale)
    _print_aging(result, locale)
    _print_plans(result)


def _table(title: str) -> Table:
    return plain_table(title, title_justify="left")


def _print_book(result: BookReport, locale: str) -> None:
    disputes = any(f.disputed > 0 for f in result.currencies)
    table = _table(f"Receivables on {result.as_of} (whole units)")
    table.add_column("currency")
    labels = ("billed", "collected", "owed", *(["disputed"] if disputes else []), "fees owed")
    for label in labels:
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("collected of due", no_wrap=True)
    for f in result.currencies:
        amounts = [f.billed, f.collected, f.outstanding, *([f.disputed] if disputes else [])]
        table.add_row(
            f.currency,
            *(whole(a, f.currency, locale) for a in [*amounts, f.fees_owed]),
            bar(f.collected_of_due),  # open fees count as due: unpaid, it is not 100 %
        )
    console.print(table)


def _print_fees(result: BookReport, locale: str) -> None:
    """Late fees and interest: charged, waived, handed to billing, still owed (open)."""
    if not any(f.fees > 0 for f in result.currencies):
        return
    table = _table("Late fees and interest (whole units)")
    table.add_column("currency")
    for label in ("charged", "waived", "exported", "still owed", "total owed"):
        table.add_column(label, justify="right", no_wrap=True)
    for f in result.currencies:
        amounts = [f.fees, f.fees_waived, f.fees_exported, f.fees_owed, f.total_owed]
        table.add_row(f.currency, *(whole(a, f.currency, locale) for a in amounts))
    console.print(table)


def _print_aging(result: BookReport, locale: str) -> None:
    table = _table(f"Aging of what is owed, in days past due on {result.as_of}")
    table.add_column("currency")
    table.add_column("days past due")
    table.add_column("owed", justify="right", no_wrap=True)
    table.add_column("invoices", justify="right")
    table.add_column("share of owed", no_wrap=True)
    for f in result.currencies:
        for bucket in AGING_BUCKETS:
            cell = f.aging[bucket.key]
            table.add_row(
                f.currency,
                bucket.label,
                whole(cell.amount, f.currency, locale),
                str(cell.invoices),
                bar(share(cell.amount, f.outstanding)),
            )
        table.add_row(
            f.currency,
            "total",
            whole(f.outstanding, f.currency, locale),  # the buckets add up to what is owed
            str(f.invoices_open),
            "",
            style="bold",
            end_section=True,
        )
    console.print(table)


def _print_plans(result: BookReport) -> None:
    table = _table("Collection plans")
    table.add_column("currency")
    for status in PlanStatus:
        table.add_column(status.value, justify="right")
    table.add_column("recovered of ended", no_wrap=True)
    for f in result.currencies:
        table.add_row(
            f.currency, *(str(f.plans[s.value]) for s in PlanStatus), bar(f.recovery_rate)
        )
    console.print(table)
