"""`recoup worker`: execute queued action instances until told to stop (SPEC §5).

The loop is an edge, like `execute_pending` which it calls: each instance commits on its own.
On PostgreSQL any number of workers, on any number of machines, share the database: claims
skip the rows another worker holds (FOR UPDATE SKIP LOCKED); a hung worker's leases expire
(`lease_duration()`, RECOUP_LEASE_SECONDS) and are claimed again. SQLite has one writer: one
worker at a time, held by a file lock next to the database.

Each worker holds a liveness lock while it executes (recoup.core.locks.holding): the leases of
a worker that died are taken over at once, not after they expire.

A stop request (SIGTERM, SIGINT) lets the instance under way finish, hands the claimed but
unstarted instances back at once, and ends the loop normally.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from types import FrameType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.runner import BATCH_SIZE, ExecutionStats, execute_pending
from recoup.core.env import EnvConfig
from recoup.core.errors import InvalidInput, RunInProgress
from recoup.core.locks import run_lock
from recoup.runs.repository import latest_run_date
from recoup.settings.service import business_today, get_settings
from recoup.webhooks.service import has_endpoints, pump

logger = logging.getLogger(__name__)

DEFAULT_POLL = 5.0
# consecutive database errors (a locked SQLite file, a PostgreSQL restart) tolerated in a row
MAX_DB_ERRORS = 5


class WorkerAlreadyRunning(RunInProgress):
    """SQLite: another worker holds the database."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    once: bool = False  # drain what is due, then exit
    batch: int = BATCH_SIZE  # instances claimed at a time
    poll: float = DEFAULT_POLL  # seconds to sleep when nothing is due
    worker_id: str = field(default_factory=default_worker_id)
    max_seconds: float | None = None  # stop after this long

    def validate(self) -> None:
        if self.batch < 1:
            raise InvalidInput(f"{{field}} must be at least 1, not {self.batch}", field="batch")
        if self.poll < 0:
            raise InvalidInput(f"{{field}} must not be negative, not {self.poll}", field="poll")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise InvalidInput(
                f"{{field}} must be positive, not {self.max_seconds}", field="max_seconds"
            )
        if not self.worker_id.strip():
            # the worker's name: `id` in the faces (the CLI's --id)
            raise InvalidInput("{field} must not be empty", field="id")


@dataclass(frozen=True)
class BatchReport:
    """One pass of the loop: what `execute_pending` did with one claimed batch."""

    number: int
    today: date
    stats: ExecutionStats
    seconds: float


@dataclass
class WorkerTotals:
    batches: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    deferred: int = 0
    released: int = 0
    postponed: int = 0  # not tried: their channel's server was down
    errors: int = 0  # passes lost to a database error, retried after `poll` seconds
    seconds: float = 0.0
    reason: str = ""  # why the loop ended: drained, stopped, max-seconds

    def add(self, stats: ExecutionStats) -> None:
        for name, value in stats.as_dict().items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class StopFlag:
    """Set by a signal handler or by code; the sleep between polls wakes up when it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def set(self, signal_name: str | None = None) -> None:
        self.signal_name = self.signal_name or signal_name
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        # short slices: a signal handler runs between them even on platforms where a blocked
        # wait is not interrupted
        deadline = time.monotonic() + seconds
        while not self._event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._event.wait(min(left, 0.2))


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """SIGTERM and SIGINT ask the loop to stop after the current instance; a second one
    stops the process at once (the default action)."""
    signals = [signal.SIGTERM, signal.SIGINT]
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        logger.info("worker: %s received, stopping after the current instance", name)
        flag.set(name)
        for sig in signals:  # a second signal is not graceful any more
            signal.signal(sig, signal.SIG_DFL)

    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals can only be handled by the main thread
        return
    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def worker_lock(engine: Engine) -> Iterator[None]:
    """SQLite: one worker per database file. PostgreSQL: no lock, workers share the work."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(engine, name="worker"))
        except RunInProgress:
            raise WorkerAlreadyRunning(
                "another worker is already running on this SQLite database "
                f"({engine.url.database}); SQLite allows one worker at a time: stop it "
                "first, or use PostgreSQL to run several workers"
            ) from None
        yield


def ensure_settings(factory: sessionmaker[Session]) -> None:
    """Refuse to start on a database that was never migrated (no settings row), rather than
    failing every instance it claims. The row itself comes from migration 0007."""
    with factory.begin() as session:
        get_settings(session)


def run_worker(
    factory: sessionmaker[Session],
    *,
    env: EnvConfig,
    options: WorkerOptions,
    stop: StopFlag | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_idle: Callable[[WorkerTotals], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> WorkerTotals:
    """Loop until stopped: claim and execute due instances in batches of `options.batch`,
    sleep `options.poll` seconds when none is due. Returns the totals and why it ended."""
    options.validate()
    stop = stop or StopFlag()
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    totals = WorkerTotals()
    started = clock()

    def expired() -> bool:
        return options.max_seconds is not None and clock() - started >= options.max_seconds

    def should_stop() -> bool:
        return stop.is_set() or expired()

    errors_in_a_row = 0
    with worker_lock(engine):
        logger.info("worker %s started on %s", options.worker_id, engine.url.render_as_string())
        ensure_settings(factory)
        while True:
            if stop.is_set():
                totals.reason = f"stopped ({stop.signal_name})" if stop.signal_name else "stopped"
                break
            if expired():
                totals.reason = "max-seconds"
                break
            begun = clock()
            try:
                with factory() as session:
                    # the engine's business date (a simulation's day), not the wall clock
                    today = latest_run_date(session) or business_today(session)
                stats = execute_pending(
                    factory,
                    env=env,
                    today=today,
                    worker_id=options.worker_id,
                    limit=options.batch,
                    batch_size=options.batch,
                    stop=should_stop,
                )
            except OperationalError as exc:
                errors_in_a_row += 1
                totals.errors += 1
                if errors_in_a_row >= MAX_DB_ERRORS:
                    raise
                logger.warning(
                    "worker %s: database error (%d in a row), retrying in %.1fs: %s",
                    options.worker_id,
                    errors_in_a_row,
                    options.poll,
                    exc.orig if exc.orig is not None else exc,
                )
                stop.sleep(max(options.poll, 0.5))
                continue
            errors_in_a_row = 0
            if stats.processed or stats.released:
                totals.batches += 1
                totals.add(stats)
                if on_batch is not None:
                    on_batch(BatchReport(totals.batches, today, stats, clock() - begun))
                continue  # more may be due: claim again at once
            # webhooks out: deliver what the executed actions logged, and due retries
            if has_endpoints(factory):
                pump(factory, env=env)
            if options.once:
                totals.reason = "drained"
                break
            if on_idle is not None:
                on_idle(totals)
            remaining = (
                options.poll
                if options.max_seconds is None
                else min(options.poll, max(0.0, options.max_seconds - (clock() - started)))
            )
            stop.sleep(remaining)
    totals.seconds = clock() - started
    logger.info("worker %s ended (%s): %s", options.worker_id, totals.reason, totals.as_dict())
    return totals


__all__ = [
    "BatchReport",
    "StopFlag",
    "WorkerAlreadyRunning",
    "WorkerOptions",
    "WorkerTotals",
    "default_worker_id",
    "run_worker",
    "stop_on_signals",
    "worker_lock",
]
