"""`recoup demo`: build a realistic book in a fresh workspace and dun it day by day."""

from __future__ import annotations

from pathlib import Path

import typer

from recoup.cli.common import console, handle_errors, parse_date
from recoup.demo import summary as demo_summary
from recoup.demo.simulate import DemoOptions, run_demo


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(
    days: int = typer.Option(90, "--days", min=1, max=3650, help="Days to simulate."),
    customers: int = typer.Option(300, "--customers", min=1, help="Customers in the book."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed, the same book."),
    folder: Path = typer.Option(
        Path("demo-data"),
        "--dir",
        help="Demo workspace (its own SQLite database and outbox); wiped on each run.",
    ),
    end: str | None = typer.Option(
        None, "--end", help="Last simulated day (YYYY-MM-DD); default: today."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Simulate a few months of dunning on a generated book, then summarise it.

    The book: customers in EUR, USD, GBP and JPY, speaking English, French and German."""
    options = DemoOptions(
        folder=folder, days=days, customers=customers, seed=seed, end=parse_date(end, "--end")
    )
    result = run_demo(options, console, show_progress=not quiet)
    demo_summary.render(
        result.summary,
        console,
        days=days,
        start=result.start,
        database_url=result.database_url,
        outbox=result.outbox,
        elapsed=result.elapsed,
    )
