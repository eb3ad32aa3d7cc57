"""`recoup init`, `recoup run` and `recoup runs`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from recoup.cli.common import (
    JSON_OPTION,
    USER_OPTION,
    actor_name,
    console,
    env,
    err_console,
    handle_errors,
    output,
    parse_date,
    print_json,
    session_factory,
)
from recoup.core.clock import utc_now
from recoup.core.migrate import upgrade
from recoup.runs.context import Progress as RunProgress
from recoup.runs.context import RunStats
from recoup.runs.history import channel_notes, list_runs
from recoup.runs.service import NoPolicies, run_dunning
from recoup.settings.service import business_today, get_settings


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("run")(run)
    app.command("runs")(runs)


@handle_errors
def init() -> None:
    """Create the database schema, or upgrade it to this version."""
    engine = session_factory().kw["bind"]
    upgrade(engine)
    console.print(f"database ready: {engine.url.render_as_string(hide_password=True)}")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[RunProgress]:
    """A Rich progress bar on stderr, one task per phase of the run."""
    bar = Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,  # a cron log gets the summary alone
        transient=False,
    )
    state: dict[str, int] = {}

    def start(label: str, total: int) -> None:
        state["task"] = bar.add_task(label, total=total)

    def advance(n: int) -> None:
        if "task" in state:
            bar.advance(state["task"], n)

    with bar:
        yield RunProgress(start=start, advance=advance)


@handle_errors
def run(
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help=(
            "Business date to run for (YYYY-MM-DD); default: today. Not before the latest "
            "finished run; after tomorrow only with --future."
        ),
    ),
    no_execute: bool = typer.Option(
        False, "--no-execute", help="Only decide and queue; leave execution to `recoup worker`."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON: an array holding one object."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    user: str | None = USER_OPTION,
    future: bool = typer.Option(
        False, "--future", help="Allow an --as-of date after tomorrow (a simulation)."
    ),
) -> None:
    """Run the day's dunning: reminders, plans, levels, actions."""
    day = parse_date(as_of)
    factory = session_factory()
    if day is None:
        with factory() as session:
            day = business_today(session)
    with progress_bar(enabled=not (quiet or as_json)) as progress:
        try:
            stats = run_dunning(
                factory,
                as_of=day,
                env=env(),
                execute=not no_execute,
                actor=actor_name(user),
                progress=progress,
                allow_future=future,
            )
        except NoPolicies as exc:  # the service names no face; here the command is known
            raise NoPolicies(f"{exc.message}: run `recoup config apply FILE` first") from None
    if as_json:
        print_json([stats.as_dict()])
        return
    print_summary(stats)


def print_summary(stats: RunStats) -> None:
    table = Table(title=f"Run {stats.run_id} for {stats.as_of}", show_header=True)
    table.add_column("", style="bold")
    table.add_column("count", justify="right")
    rows = [
        ("invoices considered", stats.considered),
        ("reminders", stats.reminders),
        ("plans opened", stats.plans_opened),
        ("plans advanced", stats.plans_advanced),
        ("plans recovered", stats.plans_recovered),
        ("plans unrecovered", stats.plans_unrecovered),
        ("levels skipped", stats.levels_skipped),
        ("actions queued", stats.actions_queued),
        ("tasks created", stats.tasks_created),
        ("actions done", stats.actions_done),
        ("actions failed", stats.actions_failed),
        ("actions skipped", stats.actions_skipped),
        ("actions to retry", stats.actions_retried),
    ]
    if stats.actions_postponed:
        rows.append(("actions postponed", stats.actions_postponed))
    if stats.actions_held:
        rows.append(("held by another worker", stats.actions_held))
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    if not stats.executed:
        console.print("[dim]--no-execute: queued actions wait for `recoup worker`.[/dim]")
    if stats.actions_failed:
        console.print(
            f"{stats.actions_failed} action(s) failed: `recoup log --event action_failed` says "
            "why; a collector task was opened for each.",
            highlight=False,
        )
    if stats.tasks_created:
        console.print(f"{stats.tasks_created} task(s) wait for a person: `recoup tasks`.")
    _print_execution_notes(stats)


def _print_execution_notes(stats: RunStats) -> None:
    """Channels whose server was down, and actions another live worker still holds."""
    if stats.channels_down:
        with session_factory()() as session:
            zone = get_settings(session).timezone
        for note in channel_notes(stats.channels_down, zone=zone, now=utc_now()):
            console.print(note + " (`recoup actions retry` to try sooner)", highlight=False)
    if stats.actions_held:
        console.print(
            f"{stats.actions_held} action(s) are still being executed by another worker; "
            "it will record how they end.",
            highlight=False,
        )


RUN_TABLE = [
    "id",
    "as_of",
    "status",
    "started_at",
    "considered",
    "plans_opened",
    "actions_done",
    "actions_failed",
    "error",
]


@handle_errors
def runs(
    limit: int = typer.Option(20, help="At most this many (newest first)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The runs so far and how each ended.

    finished; failed (with the error; the chunks it had written stay done); interrupted
    (killed: the next run carries on); or running now."""
    with session_factory()() as session:
        page = list_runs(session, limit=limit)
        zone = get_settings(session).timezone
    if as_json:
        print_json([run.model_dump(mode="json") for run in page.items])
        return
    rows = [run.model_dump() for run in page.items]
    columns = RUN_TABLE
    if not any(row["error"] for row in rows):
        columns = [c for c in columns if c != "error"]  # the room for what there is
    output(rows, columns, as_json=False, title="Runs")
    now = utc_now()  # channels that were down, under the table: too long for a column
    for row in rows:
        for note in channel_notes(row["channels_down"], zone=zone, now=now):
            console.print(f"run {row['id']}: {note}", highlight=False, soft_wrap=True)
