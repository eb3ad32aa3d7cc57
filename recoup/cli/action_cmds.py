"""`recoup worker`: execute queued actions (after `recoup run --no-execute`, or retries)."""

from __future__ import annotations

import logging

import typer

from recoup.cli.common import console, env, err_console, handle_errors, print_json, session_factory
from recoup.core.clock import utc_now
from recoup.runs.history import channel_notes
from recoup.worker import (
    BatchReport,
    StopFlag,
    WorkerOptions,
    WorkerTotals,
    default_worker_id,
    run_worker,
    stop_on_signals,
)
from recoup.worker.service import DEFAULT_POLL


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def _counts(values: dict[str, int]) -> str:
    """done/failed/skipped/retried always; deferred, released, postponed when there are some."""
    shown = ["done", "failed", "skipped", "retried"]
    shown += [name for name in ("deferred", "released", "postponed") if values.get(name)]
    return "  ".join(f"{name} {values.get(name, 0)}" for name in shown)


@handle_errors
def worker(
    once: bool = typer.Option(False, "--once", help="Drain what is due, then exit."),
    batch: int = typer.Option(50, "--batch", min=1, help="Instances claimed at a time."),
    poll: float = typer.Option(
        DEFAULT_POLL, "--poll", min=0, help="Seconds to sleep when nothing is due."
    ),
    worker_id: str | None = typer.Option(
        None, "--id", help="Name of this worker in leases and logs (default: host-pid)."
    ),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="Stop after this many seconds."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="No line per batch; print the totals as JSON at the end (an array of one object).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final line."),
) -> None:
    """Execute queued actions (emails, letters, fees…) until stopped.

    SIGTERM or Ctrl-C finish the action under way and hand the rest back. On PostgreSQL run
    as many workers as you like."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = WorkerOptions(
        once=once,
        batch=batch,
        poll=poll,
        worker_id=worker_id or default_worker_id(),
        max_seconds=max_seconds,
    )
    factory = session_factory()
    url = factory.kw["bind"].url.render_as_string(hide_password=True)
    verbose = not (as_json or quiet)
    if verbose:
        mode = "once" if once else f"polling every {poll:g}s"
        err_console.print(
            f"worker {options.worker_id} on {url} ({mode}, batch {batch})",
            highlight=False,
            soft_wrap=True,
        )

    def on_batch(report: BatchReport) -> None:
        if verbose:
            console.print(
                f"batch {report.number:>4}  {report.today}  {_counts(report.stats.as_dict())}"
                f"  ({report.seconds:.2f}s)",
                highlight=False,
                soft_wrap=True,
            )
        downs = [down.as_dict() for down in report.stats.channels_down.values()]
        for note in channel_notes(downs, zone="UTC", now=utc_now()):
            err_console.print(note, highlight=False, soft_wrap=True)  # even with --quiet

    with stop_on_signals(StopFlag()) as stop:
        totals = run_worker(factory, env=env(), options=options, stop=stop, on_batch=on_batch)
    if as_json:
        print_json([{"worker": options.worker_id, **totals.as_dict()}])
        return
    console.print(_summary(options, totals), highlight=False, soft_wrap=True)


def _summary(options: WorkerOptions, totals: WorkerTotals) -> str:
    values = totals.as_dict()
    rate = (totals.done / totals.seconds) if totals.seconds > 0 else 0.0
    return (
        f"worker {options.worker_id} ended ({totals.reason}) after {totals.seconds:.1f}s: "
        f"{_counts(values)}  in {totals.batches} batch(es), {rate:.1f} done/s"
    )
