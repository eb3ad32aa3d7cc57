"""What the demo shows at the end: the book, the dunning and the aging, in words a finance
person reads, with money formatted by Babel."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from recoup.domain.aging import AGING_BUCKETS
from recoup.domain.enums import InstanceStatus, InvoiceStatus, PlanStatus, TaskStatus
from recoup.models import (
    ActionInstance,
    Document,
    Invoice,
    LogEntry,
    Plan,
    Task,
)
from recoup.reports import text
from recoup.reports.service import book_report
from recoup.reports.text import bar, share

LOCALE = "en_US"


def money(amount: Decimal, currency: str) -> str:
    return text.money(amount, currency, LOCALE)


def whole(amount: Decimal, currency: str) -> str:
    return text.whole(amount, currency, LOCALE)


@dataclass
class Summary:
    as_of: date
    invoices: int = 0
    invoices_paid: int = 0
    invoices_open: int = 0
    billed: dict[str, Decimal] = field(default_factory=dict)
    collected: dict[str, Decimal] = field(default_factory=dict)
    outstanding: dict[str, Decimal] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=dict)
    aging: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> bucket key
    plans: Counter[str] = field(default_factory=Counter)
    plans_total: int = 0
    reminders: int = 0
    emails_sent: int = 0
    eml_files: int = 0
    letters: int = 0
    suspensions: int = 0
    tasks: Counter[str] = field(default_factory=Counter)
    example_invoice: str | None = None
    example_plan: int | None = None

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.billed) | set(self.fees))


def collect(session: Session, *, as_of: date, outbox: Path) -> Summary:
    summary = Summary(as_of=as_of)
    for figures in book_report(session, as_of).currencies:
        currency = figures.currency
        summary.invoices += figures.invoices
        summary.invoices_open += figures.invoices_open
        summary.billed[currency] = figures.billed
        summary.collected[currency] = figures.collected
        summary.outstanding[currency] = figures.outstanding
        summary.fees[currency] = figures.fees
        if figures.invoices_open:
            summary.aging[currency] = {key: cell.amount for key, cell in figures.aging.items()}
    summary.invoices_paid = (
        session.scalar(
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.status == InvoiceStatus.paid.value)
        )
        or 0
    )
    summary.plans = Counter(
        {status: count for status, count in session.execute(_count_by(Plan.status))}
    )
    summary.plans_total = sum(summary.plans.values())
    summary.tasks = Counter(
        {status: count for status, count in session.execute(_count_by(Task.status))}
    )
    done_only = ActionInstance.status == InstanceStatus.done.value
    done = {
        kind: count for kind, count in session.execute(_count_by(ActionInstance.type, done_only))
    }
    summary.emails_sent = done.get("send_email", 0)
    summary.suspensions = _accounts_changed(session)
    summary.reminders = (
        session.scalar(
            select(func.count())
            .select_from(ActionInstance)
            .where(
                ActionInstance.plan_id.is_(None),
                ActionInstance.status == InstanceStatus.done.value,
            )
        )
        or 0
    )
    summary.letters = session.scalar(select(func.count()).select_from(Document)) or 0
    summary.eml_files = len(list(outbox.glob("*.eml"))) if outbox.is_dir() else 0
    summary.example_plan, summary.example_invoice = _example(session)
    return summary


def _accounts_changed(session: Session) -> int:
    """Accounts whose status dunning changed: one customer suspended by two plans (or by a
    retried action) is one account."""
    return (
        session.scalar(
            select(func.count(func.distinct(ActionInstance.customer_id))).where(
                ActionInstance.type == "change_account_status",
                ActionInstance.status == InstanceStatus.done.value,
            )
        )
        or 0
    )


def _count_by(column: Any, *where: Any) -> Select[tuple[Any, int]]:
    return select(column, func.count()).where(*where).group_by(column)


def _example(session: Session) -> tuple[int | None, str | None]:
    """The plan with the richest history, preferring one still running: the best to explain."""
    for statuses in (
        (PlanStatus.active.value,),
        (PlanStatus.unrecovered.value, PlanStatus.recovered.value),
    ):
        row = session.execute(
            select(Plan.id, Plan.invoice_id, func.count(LogEntry.id).label("events"))
            .join(LogEntry, LogEntry.plan_id == Plan.id)
            .where(Plan.status.in_(statuses), Plan.invoice_id.is_not(None))
            .group_by(Plan.id, Plan.invoice_id)
            .order_by(func.count(LogEntry.id).desc(), Plan.id)
            .limit(1)
        ).first()
        if row is not None:
            return row.id, row.invoice_id
    return None, None


def _command() -> str:
    """How to call recoup from here: on PATH, or the virtual environment's script."""
    if shutil.which("recoup"):
        return "recoup"
    script = Path(sys.executable).parent / "recoup"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def render(
    summary: Summary,
    console: Console,
    *,
    days: int,
    start: date,
    database_url: str,
    outbox: Path,
    elapsed: float,
) -> None:
    console.print()
    console.print(  # a rule as wide as a terminal, not as a piped console
        Rule(f"[bold]Recoup demo: {days} days of dunning, {start} → {summary.as_of}"),
        width=min(console.width, 100),
    )
    book = Table(title="The book", title_justify="left")
    book.add_column("currency")
    for label in ("billed", "collected", "outstanding", "late fees charged"):
        book.add_column(label, justify="right")
    for currency in summary.currencies:
        book.add_row(
            currency,
            money(summary.billed.get(currency, Decimal(0)), currency),
            money(summary.collected.get(currency, Decimal(0)), currency),
            money(summary.outstanding.get(currency, Decimal(0)), currency),
            money(summary.fees.get(currency, Decimal(0)), currency),
        )
    console.print(book)
    console.print(
        f"{summary.invoices} invoices: {summary.invoices_paid} paid, "
        f"{summary.invoices_open} still open."
    )

    dunning = Table(title="Dunning", title_justify="left", show_header=False)
    dunning.add_column("", style="bold")
    dunning.add_column("", justify="right")
    plans = summary.plans
    rows = [
        ("collection plans opened", summary.plans_total),
        ("  recovered (paid after dunning)", plans.get(PlanStatus.recovered.value, 0)),
        ("  unrecovered (reached the last level)", plans.get(PlanStatus.unrecovered.value, 0)),
        ("  still active", plans.get(PlanStatus.active.value, 0)),
        ("  paused", plans.get(PlanStatus.paused.value, 0)),
        ("reminders sent before the due date", summary.reminders),
        ("emails written", summary.emails_sent),
        ("letters printed (PDF)", summary.letters),
        ("accounts suspended", summary.suspensions),
        ("collector tasks completed", summary.tasks.get(TaskStatus.completed.value, 0)),
        (
            "collector tasks open",
            summary.tasks.get(TaskStatus.open.value, 0)
            + summary.tasks.get(TaskStatus.claimed.value, 0),
        ),
    ]
    for label, value in rows:
        dunning.add_row(label, str(value))
    console.print(dunning)

    aging = Table(
        title=f"Aging of what is still owed on {summary.as_of} (days past due)",
        title_justify="left",
    )
    aging.add_column("days past due")
    currencies = sorted(summary.aging)
    for currency in currencies:
        aging.add_column(currency, justify="right")
    for bucket in AGING_BUCKETS:
        aging.add_row(bucket.label, *(whole(summary.aging[c][bucket.key], c) for c in currencies))
    aging.add_section()
    aging.add_row(
        "total",
        *(whole(summary.outstanding[c], c) for c in currencies),
        style="bold",
    )
    console.print(aging)

    # charts: the two numbers a finance team looks at first
    charts = Table(
        title="At a glance: share of billed collected, share of what is owed by age",
        title_justify="left",
    )
    charts.add_column("", no_wrap=True)
    for currency in currencies:
        charts.add_column(currency, no_wrap=True)
    charts.add_row(
        "collected",
        *(
            bar(share(summary.collected.get(c, Decimal(0)), summary.billed.get(c, Decimal(0))))
            for c in currencies
        ),
    )
    charts.add_section()
    for bucket in AGING_BUCKETS:
        charts.add_row(
            f"owed {bucket.label}",
            *(bar(share(summary.aging[c][bucket.key], summary.outstanding[c])) for c in currencies),
        )
    console.print(charts)

    env = f"RECOUP_DATABASE_URL={database_url} {_command()}"
    console.print("[bold]Where to look next[/bold]")
    console.print(f"  emails ({summary.eml_files} .eml files): {outbox}")
    if summary.letters:
        console.print(f"  letters ({summary.letters} PDF): {outbox.parent / 'documents'}")
    console.print(f"  {env} plans", soft_wrap=True, highlight=False)
    if summary.example_invoice is not None:
        console.print(f"  {env} explain {summary.example_invoice}", soft_wrap=True, highlight=False)
    if summary.example_plan is not None:
        console.print(f"  {env} log --plan {summary.example_plan}", soft_wrap=True, highlight=False)
    console.print(f"  {env} tasks", soft_wrap=True, highlight=False)
    console.print(f"  {env} charges", soft_wrap=True, highlight=False)
    console.print(f"  {env} report", soft_wrap=True, highlight=False)
    console.print(f"[dim]simulated in {elapsed:.1f} s[/dim]")
