"""`recoup demo`: a fresh workspace, a generated book loaded through the CSV import, the demo
policies applied through the config service, then day after day of payments arriving, a
collector working the task list, and the dunning run."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.book.customers import import_customers
from recoup.book.imports import ImportReport
from recoup.book.invoices import import_invoices
from recoup.book.payments import import_payments
from recoup.book.rows import read_csv
from recoup.core.db import make_engine, make_sessionmaker, unit_of_work
from recoup.core.env import EnvConfig
from recoup.core.errors import InvalidInput
from recoup.core.migrate import upgrade
from recoup.demo import summary as demo_summary
from recoup.demo.book import BookFiles, make_book, write_book
from recoup.domain.enums import TaskStatus
from recoup.models import Task
from recoup.policies.service import apply_document
from recoup.policies.yaml_text import load_yaml
from recoup.runs.service import run_dunning
from recoup.settings.service import business_today
from recoup.tasks.service import claim_task, complete_task

POLICIES = Path(__file__).resolve().parent / "policies.yaml"
MARKER = ".recoup-demo"
ACTOR = "demo"
COLLECTOR = "demo-collector"
OUTCOMES = (
    "Called: the customer promised to pay this week.",
    "Left a voicemail and sent the invoice again.",
    "Spoke to accounts payable: payment run on Friday.",
    "Customer disputes nothing; cash-flow issue, agreed to pay in two instalments.",
    "No answer; will try again via the account manager.",
)
Importer = Callable[..., ImportReport]


@dataclass(frozen=True)
class DemoOptions:
    folder: Path
    days: int = 90
    customers: int = 300
    seed: int = 42
    end: date | None = None  # the last simulated day; default: today


@dataclass
class DemoResult:
    summary: demo_summary.Summary
    start: date
    end: date
    database_url: str
    outbox: Path
    elapsed: float


def prepare_folder(folder: Path) -> None:
    """Wipe the demo workspace, refusing to wipe a folder the demo did not create."""
    if folder.exists():
        if not folder.is_dir():
            raise InvalidInput(f"{folder} exists and is not a folder")
        if any(folder.iterdir()) and not (folder / MARKER).exists():
            raise InvalidInput(
                f"{folder} is not empty and was not made by `recoup demo`: refusing to wipe it "
                "(choose another --dir)"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `recoup demo`; wiped on the next run\n")


def import_file(
    factory: sessionmaker[Session], importer: Importer, path: Path, *, on: date
) -> ImportReport:
    """What `recoup import KIND FILE.csv` does: read the file, import it in one transaction."""
    table = read_csv(path)
    with unit_of_work(factory) as session:
        return importer(session, table, actor=ACTOR, on=on)


def work_tasks(factory: sessionmaker[Session], rng: random.Random, day: date) -> int:
    """The collector claims and completes about half of the older open tasks each day."""
    completed = 0
    with unit_of_work(factory) as session:
        tasks = session.scalars(
            select(Task)
            .where(
                Task.is_open,
                Task.created_on < day,
            )
            .order_by(Task.id)
        ).all()
        for task in tasks:
            if rng.random() >= 0.5:
                continue
            if task.status == TaskStatus.open.value:
                claim_task(session, task, user=COLLECTOR, on=day)
            complete_task(session, task, user=COLLECTOR, on=day, outcome=rng.choice(OUTCOMES))
            completed += 1
    return completed


def run_demo(options: DemoOptions, console: Console, *, show_progress: bool = True) -> DemoResult:
    began = time.perf_counter()
    folder = options.folder.resolve()
    prepare_folder(folder)
    database_url = f"sqlite:///{folder / 'recoup.db'}"
    env = EnvConfig(database_url=database_url, data_dir=folder, smtp_url=None, user=ACTOR)
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with unit_of_work(factory) as session:
            document = load_yaml(POLICIES.read_text(encoding="utf-8"), str(POLICIES))
            apply_document(session, document, ACTOR)
            end = options.end or business_today(session)
        start = end - timedelta(days=options.days - 1)
        rng = random.Random(options.seed)
        book = make_book(rng, start=start, end=end, customers=options.customers)
        files = write_book(book, folder / "book")
        console.print(
            f"Demo workspace {folder}: {len(book.customers)} customers, {len(book.invoices)} "
            f"invoices and {len(book.payments)} payments written as CSV under {folder / 'book'}"
        )
        opening = start - timedelta(days=1)
        import_file(factory, import_customers, files.customers, on=opening)
        import_file(factory, import_invoices, files.opening_invoices, on=opening)
        import_file(factory, import_payments, files.opening_payments, on=opening)

        _simulate(factory, env, rng, files, start, options.days, console, show_progress)

        with factory() as session:
            summary = demo_summary.collect(session, as_of=end, outbox=env.outbox_dir)
    finally:
        engine.dispose()
    return DemoResult(
        summary=summary,
        start=start,
        end=end,
        database_url=database_url,
        outbox=env.outbox_dir,
        elapsed=time.perf_counter() - began,
    )


def _simulate(
    factory: sessionmaker[Session],
    env: EnvConfig,
    rng: random.Random,
    files: BookFiles,
    start: date,
    days: int,
    console: Console,
    show_progress: bool,
) -> None:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not show_progress or not console.is_terminal,
        transient=False,
    )
    opened = done = paid = tasks_done = 0
    with bar:
        task = bar.add_task(start.isoformat(), total=days, status="")
        for offset in range(days):
            day = start + timedelta(days=offset)
            bar.update(task, description=day.isoformat())
            if day in files.invoices_by_day:
                import_file(factory, import_invoices, files.invoices_by_day[day], on=day)
            if day in files.payments_by_day:
                report = import_file(factory, import_payments, files.payments_by_day[day], on=day)
                paid += report.created
            tasks_done += work_tasks(factory, rng, day)
            stats = run_dunning(
                factory, as_of=day, env=env, execute=True, actor="system", allow_future=True
            )
            opened += stats.plans_opened
            done += stats.actions_done
            bar.update(
                task,
                advance=1,
                status=(f"paid {paid} · plans {opened} · actions {done} · tasks {tasks_done}"),
            )
