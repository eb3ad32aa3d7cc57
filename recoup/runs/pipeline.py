"""The chunks of a run, decided and written: chunk N+1 is decided (in a forked process, on
Linux) while chunk N is written by the run's process, one transaction per chunk, in order."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.enums import Mode
from recoup.runs.apply import Batch, settle_changed
from recoup.runs.context import Progress, RunContext
from recoup.runs.units import decide_customer_chunk, decide_invoice_chunk

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def run_chunks(
    factory: sessionmaker[Session],
    ctx: RunContext,
    mode: Mode,
    chunks: list[list[tuple[str, str]]],
    progress: Progress,
) -> None:
    """Decide chunk N+1 (in a second process) while chunk N is written. Each chunk is still
    one transaction that commits its decisions with the markers saying they were made (R13),
    and chunks are written in order by this process. Chunks cover disjoint invoices (or
    customer/currency pairs), so deciding one never needs the uncommitted writes of another.
    Deciding is Python, writing is the database's work: on two cores they overlap."""
    total = len(chunks)
    big_day = sum(len(c) for c in chunks) >= 10 * max((len(c) for c in chunks), default=1)

    def decide(chunk: list[tuple[str, str]]) -> Batch:
        # the chunk's counts travel with its rows and count once written: a run that failed
        # must not report plans and actions it never committed
        before = ctx.stats.counts()
        try:
            with factory() as session:
                if mode is Mode.invoice:
                    items = decide_invoice_chunk(session, ctx, [u[0] for u in chunk])
                else:
                    items = decide_customer_chunk(session, ctx, chunk)
                batch = Batch(ctx, session.get_bind().dialect.name)
                batch.build(session, items)
            batch.stats_delta = ctx.stats.counts_since(before)
            batch.stats_delta["considered"] = len(chunk)
        finally:
            ctx.stats.restore(before)
        return batch

    def write(batch: Batch, number: int, size: int) -> None:
        before = ctx.stats.counts()
        try:
            with factory.begin() as session:
                changed = batch.lock_invoices(session)
                batch.flush(session)  # counts the tasks it creates
                if changed:
                    batch.stats_delta["plans_recovered"] = batch.stats_delta.get(
                        "plans_recovered", 0
                    ) + settle_changed(session, ctx, changed)
        except BaseException:
            ctx.stats.restore(before)  # rolled back: nothing of this chunk happened
            raise
        ctx.stats.add(batch.stats_delta)
        progress.advance(size)
        if big_day and number in (1, 4, 16, 64, 256):
            _refresh_statistics(factory)  # only a big day grows the tables much

    if not can_pipeline(factory) or total < 2:
        for number, chunk in enumerate(chunks, start=1):
            write(decide(chunk), number, len(chunk))
            gc.collect(0)
        return
    _process_pipeline(factory, ctx, chunks, decide, write)


@dataclass
class _DeciderFailed:
    traceback: str


def _process_pipeline(
    factory: sessionmaker[Session],
    ctx: RunContext,
    chunks: list[list[tuple[str, str]]],
    decide: Callable[[list[tuple[str, str]]], Batch],
    write: Callable[[Batch, int, int], None],
) -> None:
    """A forked process decides the chunks and sends their rows; this one writes them, one
    transaction per chunk, in order. The decider only reads (and, on PostgreSQL, draws plan
    ids from the sequence); this process holds the run lock and does every write, so a
    killed run leaves exactly what it had committed."""
    fork = multiprocessing.get_context("fork")
    receiver, sender = fork.Pipe(duplex=False)
    decider = fork.Process(
        target=_decider_main,
        args=(factory, ctx, chunks, decide, sender, receiver, os.getpid()),
        name="recoup-run-decider",
        daemon=True,
    )
    decider.start()
    sender.close()
    try:
        for number, chunk in enumerate(chunks, start=1):
            try:
                message = receiver.recv()
            except EOFError:
                raise RuntimeError("the run's deciding process stopped unexpectedly") from None
            if isinstance(message, _DeciderFailed):
                raise RuntimeError(f"deciding chunk {number} failed:\n{message.traceback}")
            batch: Batch = message
            batch.attach(ctx)
            write(batch, number, len(chunk))
            gc.collect(0)
    finally:
        receiver.close()
        decider.join(timeout=10)
        if decider.is_alive():
            decider.kill()


def _decider_main(
    factory: sessionmaker[Session],
    ctx: RunContext,
    chunks: list[list[tuple[str, str]]],
    decide: Callable[[list[tuple[str, str]]], Batch],
    sender: Any,
    receiver: Any,
    parent: int,
) -> None:
    _die_with(parent)
    receiver.close()  # the parent's end: with it open here, a dead parent would go unnoticed
    engine = factory.kw["bind"]
    engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    try:
        for chunk in chunks:
            sender.send(decide(chunk))
            gc.collect(0)
    except (BrokenPipeError, EOFError):
        pass  # the writing process is gone: nothing to decide for
    except BaseException:
        with contextlib.suppress(Exception):
            sender.send(_DeciderFailed(traceback.format_exc()))
    finally:
        sender.close()


def _die_with(parent: int) -> None:
    """The decider shares the parent's database sockets and lock file: if it outlived a killed
    run, the run lock would stay taken. Linux kills it with its parent (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
        os._exit(1)  # no guarantee, or the parent is already gone


def can_pipeline(factory: sessionmaker[Session]) -> bool:
    """A second process needs Linux (it must die with its parent) and a database it can
    reach on its own: an in-memory SQLite database is private to its connection."""
    engine = factory.kw["bind"]
    if not sys.platform.startswith("linux"):
        return False
    return not (engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"))


def _refresh_statistics(factory: sessionmaker[Session]) -> None:
    """PostgreSQL plans queries from table statistics; a first run grows the dunning tables
    from nothing, and stale statistics would turn index lookups into full scans."""
    with factory.begin() as session:
        if session.connection().dialect.name == "postgresql":
            session.execute(text("ANALYZE action_instances, plans, plan_invoices, tasks"))
