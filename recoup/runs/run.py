"""The daily dunning run: find the day's work (R15), evaluate it (pure), apply the decisions in
one transaction per chunk, then execute the queued actions (unless --no-execute)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Engine,
    Integer,
    String,
    any_,
    bindparam,
    cast,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.bulk import (
    TupleFormat,
    bulk_delete,
    bulk_insert,
    bulk_update,
    json_text,
    reserve_ids,
)
from recoup.core.clock import today_in, utc_now
from recoup.core.db import hold_write_lock
from recoup.core.env import EnvConfig
from recoup.core.errors import Conflict, InvalidInput
from recoup.core.locks import run_lock
from recoup.domain.enums import (
    OPEN_PLAN_STATUSES,
    OPEN_TASK_STATUSES,
    PROMISE_PAUSE_REASON,
    UNFINISHED_INSTANCE_STATUSES,
    Event,
    InstanceStatus,
    InvoiceStatus,
    Mode,
    PlanStatus,
    TaskStatus,
)
from recoup.domain.evaluator import (
    ClosePlan,
    CustomerFacts,
    InvoiceFacts,
    JoinInvoices,
    OpenPlan,
    Outcome,
    PlanState,
    QueueReminder,
    ReachLevel,
    ResumePlan,
    SkipLevel,
    SkipReminder,
    Unit,
    UpdatePlan,
    evaluate,
)
from recoup.domain.policy import Action, Config, Level, Policy
from recoup.domain.redact import redact_text
from recoup.domain.rules import Resolution, resolve_policy
from recoup.models import (
    ActionInstance,
    Customer,
    Invoice,
    InvoiceCheck,
    LogEntry,
    Plan,
    PlanInvoice,
    PolicyRow,
    Run,
    Task,
)
from recoup.plans.closing import close_plan, refresh_plans_after_change
from recoup.plans.links import plan_links
from recoup.plans.promise import PromiseCheck, promises_due
from recoup.runs.history import latest_finished_run
from recoup.schedule.service import recheck_invoices
from recoup.settings.service import get_settings

logger = logging.getLogger(__name__)

CHUNK = 2000
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
OPEN_INVOICE_VALUES = (InvoiceStatus.open.value, InvoiceStatus.partially_paid.value)
OPEN_PLAN_VALUES = tuple(s.value for s in OPEN_PLAN_STATUSES)
# stored value -> member by dict lookup (calling the Enum class costs more, per row)
INVOICE_STATUSES = {s.value: s for s in InvoiceStatus}
PLAN_STATUSES = {s.value: s for s in PlanStatus}
NOTHING_DONE: frozenset[tuple[str, str]] = frozenset()


@dataclass
class RunStats:
    run_id: int = 0
    as_of: date | None = None
    considered: int = 0
    reminders: int = 0
    plans_opened: int = 0
    plans_advanced: int = 0
    plans_recovered: int = 0
    plans_unrecovered: int = 0
    levels_skipped: int = 0
    actions_queued: int = 0
    tasks_created: int = 0
    actions_done: int = 0
    actions_failed: int = 0
    actions_skipped: int = 0
    actions_retried: int = 0
    actions_postponed: int = 0  # not tried: their channel's server was down
    actions_held: int = 0  # still being executed by another live worker when the run ended
    executed: bool = True
    # channels whose server was down: channel, reason, error, retry_at, instances
    channels_down: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if type(v) is int and k != "run_id"}

    def counts_since(self, before: dict[str, int]) -> dict[str, int]:
        return {k: v - before.get(k, 0) for k, v in self.counts().items()}

    def add(self, delta: dict[str, int]) -> None:
        for key, value in delta.items():
            setattr(self, key, getattr(self, key) + value)

    def restore(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in vars(self).items()}


@dataclass
class Progress:
    """Callbacks the CLI turns into a progress bar."""

    start: Callable[[str, int], None] = lambda label, total: None
    advance: Callable[[int], None] = lambda n: None


def load_domain_config(session: Session) -> Config:
    from recoup.policies.service import load_config

    return load_config(session)


def customer_fields(customer: Any) -> dict[str, Any]:
    return {
        "id": customer.id,
        "category": customer.category,
        "country": customer.country,
        "currency": customer.currency,
        "is_company": customer.is_company,
        "payment_method": customer.payment_method,
        "language": customer.language,
        "policy": customer.policy,
        "attributes": customer.attributes or {},
    }


@dataclass
class _Context:
    as_of: date
    config: Config
    policy_ids: dict[str, int]
    actions: dict[str, Action]
    run_id: int
    actor: str
    stats: RunStats
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    customers: dict[str, Any] = field(default_factory=dict)
    customer_facts: dict[str, CustomerFacts] = field(default_factory=dict)
    next_plan_id: int | None = None  # SQLite: the next free plan id (see _Batch._plan_ids)

    def facts(self, customer: Any) -> CustomerFacts:
        """The evaluator's view of a customer, built once per run (they repeat per invoice)."""
        facts = self.customer_facts.get(customer.id)
        if facts is None:
            facts = CustomerFacts(customer.id, customer.excluded, customer.status)
            self.customer_facts[customer.id] = facts
        return facts

    def resolve(self, customer: Any) -> Resolution:
        cached = self.resolutions.get(customer.id)
        if cached is None:
            cached = resolve_policy(customer_fields(customer), self.config.policies)
            self.resolutions[customer.id] = cached
        return cached


def run_dunning(
    factory: sessionmaker[Session],
    *,
    as_of: date,
    env: EnvConfig,
    execute: bool = True,
    actor: str = "system",
    progress: Progress | None = None,
    allow_future: bool = False,
) -> RunStats:
    """One run for the business date `as_of`. Safe to repeat and to restart after a crash:
    each chunk commits its decisions together with the markers that say they were made.
    `as_of` may not go back before the latest finished run, nor past tomorrow unless
    `allow_future` (a simulation) says so (R13)."""
    progress = progress or Progress()
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    with run_lock(engine):
        stats = RunStats(as_of=as_of, executed=execute)
        with factory.begin() as session:
            config = load_domain_config(session)
            if not config.policies:
                raise InvalidInput("no policies configured: run `recoup config apply FILE` first")
            settings = get_settings(session)
            check_as_of(session, as_of, timezone=settings.timezone, allow_future=allow_future)
            run = Run(as_of=as_of, execute=execute, status="running", actor=actor)
            session.add(run)
            session.flush()
            stats.run_id = run.id
            rows = session.execute(select(PolicyRow.id, PolicyRow.name)).all()
            policy_ids = {name: pid for pid, name in rows}
            mode = Mode(settings.mode)
        ctx = _Context(
            as_of=as_of,
            config=config,
            policy_ids=policy_ids,
            actions={a.code: a for a in config.actions},
            run_id=stats.run_id,
            actor=actor,
            stats=stats,
        )
        try:
            return _run(factory, ctx, mode, env=env, execute=execute, progress=progress)
        except BaseException as exc:
            _record_run_failure(factory, stats, exc)
            raise


def check_as_of(session: Session, as_of: date, *, timezone: str, allow_future: bool) -> None:
    """R13: a typo in the date must not run the book years ahead (suspending every account)
    nor replay the past over what later runs did."""
    latest = latest_finished_run(session)
    if latest is not None and as_of < latest.as_of:
        raise Conflict(
            f"as-of date {as_of} is earlier than {latest.as_of}, the date of run {latest.id} "
            "(finished): runs only move forward in time (rule R13 in docs/rules.md)"
        )
    tomorrow = today_in(timezone) + timedelta(days=1)
    if as_of > tomorrow and not allow_future:
        raise InvalidInput(
            f"as-of date {as_of} is after tomorrow ({tomorrow} in {timezone}): a run in the "
            "future is a simulation; pass --future if that is what you mean "
            "(rule R13 in docs/rules.md)"
        )


def _record_run_failure(
    factory: sessionmaker[Session], stats: RunStats, error: BaseException
) -> None:
    """The run's row says how it ended, with what it had done (the chunks written are
    committed and stay done; the next run carries on from there)."""
    interrupted = isinstance(error, KeyboardInterrupt | SystemExit)
    with contextlib.suppress(Exception), factory.begin() as session:
        run = session.get(Run, stats.run_id)
        if run is not None:
            run.status = "interrupted" if interrupted else "failed"
            run.finished_at = utc_now()
            said = redact_text(str(error) or type(error).__name__)  # no URL credentials
            run.stats = stats.as_dict() | {"error": said}


def _run(
    factory: sessionmaker[Session],
    ctx: _Context,
    mode: Mode,
    *,
    env: EnvConfig,
    execute: bool,
    progress: Progress,
) -> RunStats:
    stats, as_of = ctx.stats, ctx.as_of
    with factory() as session:
        units = _find_units(session, as_of, mode)
    progress.start("Evaluating", len(units))
    size = int(os.environ.get("RECOUP_RUN_CHUNK", CHUNK))
    chunks = [units[start : start + size] for start in range(0, len(units), size)]
    # The chunk loop allocates millions of short-lived objects that reference counting
    # frees; the cyclic collector would rescan the growing heap again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _run_chunks(factory, ctx, mode, chunks, progress)
    finally:
        if gc_was_enabled:
            gc.enable()
    if execute:
        from recoup.actions.runner import execute_pending

        progress.start("Executing actions", _count_due(factory))
        result = execute_pending(
            factory,
            env=env,
            today=as_of,
            worker_id=f"run-{socket.gethostname()}-{os.getpid()}",
            on_progress=progress.advance,
        )
        stats.actions_done = result.done
        stats.actions_failed = result.failed
        stats.actions_skipped += result.skipped
        stats.actions_retried = result.retried
        stats.actions_postponed = result.postponed
        stats.channels_down = [down.as_dict() for down in result.channels_down.values()]
        from recoup.actions.claims import count_held

        stats.actions_held = count_held(factory)
        from recoup.webhooks.service import has_endpoints, pump

        if has_endpoints(factory):  # webhooks out: deliver this run's events (SPEC §5)
            pump(factory, env=env)
    with factory.begin() as session:
        stats.plans_unrecovered = (
            session.scalar(
                select(func.count())
                .select_from(Plan)
                .where(Plan.status == PlanStatus.unrecovered.value, Plan.closed_on == as_of)
            )
            or 0
        )
        run = session.get(Run, stats.run_id)
        assert run is not None
        run.status = "finished"
        run.finished_at = utc_now()
        run.stats = stats.as_dict()
    return stats


def _run_chunks(
    factory: sessionmaker[Session],
    ctx: _Context,
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

    def decide(chunk: list[tuple[str, str]]) -> _Batch:
        # the chunk's counts travel with its rows and count once written: a run that failed
        # must not report plans and actions it never committed
        before = ctx.stats.counts()
        try:
            with factory() as session:
                if mode is Mode.invoice:
                    items = _decide_invoice_chunk(session, ctx, [u[0] for u in chunk])
                else:
                    items = _decide_customer_chunk(session, ctx, chunk)
                batch = _Batch(ctx, session.get_bind().dialect.name)
                batch.build(session, items)
            batch.stats_delta = ctx.stats.counts_since(before)
            batch.stats_delta["considered"] = len(chunk)
        finally:
            ctx.stats.restore(before)
        return batch

    def write(batch: _Batch, number: int, size: int) -> None:
        before = ctx.stats.counts()
        try:
            with factory.begin() as session:
                changed = batch.lock_invoices(session)
                batch.flush(session)  # counts the tasks it creates
                if changed:
                    batch.stats_delta["plans_recovered"] = batch.stats_delta.get(
                        "plans_recovered", 0
                    ) + _settle_changed(session, ctx, changed)
        except BaseException:
            ctx.stats.restore(before)  # rolled back: nothing of this chunk happened
            raise
        ctx.stats.add(batch.stats_delta)
        progress.advance(size)
        if big_day and number in (1, 4, 16, 64, 256):
            _refresh_statistics(factory)  # only a big day grows the tables much

    if not _can_pipeline(factory) or total < 2:
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
    ctx: _Context,
    chunks: list[list[tuple[str, str]]],
    decide: Callable[[list[tuple[str, str]]], _Batch],
    write: Callable[[_Batch, int, int], None],
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
            batch: _Batch = message
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
    ctx: _Context,
    chunks: list[list[tuple[str, str]]],
    decide: Callable[[list[tuple[str, str]]], _Batch],
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


def _can_pipeline(factory: sessionmaker[Session]) -> bool:
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


def _count_due(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(ActionInstance)
                .where(
                    ActionInstance.status == InstanceStatus.pending.value,
                    ActionInstance.next_attempt_at.is_not(None),
                )
            )
            or 0
        )


def _find_units(session: Session, as_of: date, mode: Mode) -> list[tuple[str, str]]:
    """R15: only invoices whose check date has come and plans whose step date has come."""
    # Core on the session's connection: ORM result processing doubled the time of a first
    # run's 100,000 ids
    connection = session.connection()
    if mode is Mode.invoice:
        ids = set(
            connection.execute(
                select(InvoiceCheck.invoice_id).where(InvoiceCheck.check_on <= as_of)
            ).scalars()
        )
        ids.update(
            connection.execute(
                select(Plan.invoice_id).where(
                    Plan.next_step_on <= as_of,
                    Plan.status.in_(OPEN_PLAN_VALUES),
                    Plan.invoice_id.is_not(None),
                )
            ).scalars()
        )
        return [(i, "") for i in sorted(ids)]
    pairs: set[tuple[str, str]] = set(
        connection.execute(
            select(Invoice.customer_id, Invoice.currency)
            .join(InvoiceCheck, InvoiceCheck.invoice_id == Invoice.id)
            .where(InvoiceCheck.check_on <= as_of)
        )
    )
    pairs.update(
        connection.execute(
            select(Plan.customer_id, Plan.currency).where(
                Plan.next_step_on <= as_of, Plan.status.in_(OPEN_PLAN_VALUES)
            )
        )
    )
    return sorted(pairs)


# --- loading state -------------------------------------------------------------------------


def _invoice_facts(row: Invoice) -> InvoiceFacts:
    return InvoiceFacts(
        id=row.id,
        due_date=row.due_date,
        currency=row.currency,
        amount_due=row.amount_due,
        type=row.type,
        status=INVOICE_STATUSES[row.status],
        disputed=row.disputed,
        number=row.number,
    )


def _among(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """`column IN values` for a chunk of ids. On PostgreSQL one array parameter
    (`= ANY(%s)`): a statement psycopg parses once, not one with thousands of placeholders."""
    if session.get_bind().dialect.name == "postgresql":
        item = Integer() if isinstance(column.type, Integer) else String()
        return column == any_(bindparam(None, list(values), type_=ARRAY(item)))
    return column.in_(values)


def _plan_counts(
    session: Session, plan_ids: Sequence[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Per plan: open tasks (R6 holds the plan) and unfinished action instances (R7)."""
    if not plan_ids:
        return {}, {}

    def count(model: Any, statuses: Iterable[Any]) -> dict[int, int]:
        query = (
            select(model.plan_id, func.count())
            .where(
                _among(session, model.plan_id, plan_ids),
                model.status.in_([s.value for s in statuses]),
            )
            .group_by(model.plan_id)
        )
        return {plan_id: n for plan_id, n in session.connection().execute(query)}

    return count(Task, OPEN_TASK_STATUSES), count(ActionInstance, UNFINISHED_INSTANCE_STATUSES)


def _plan_state(
    plan: Plan, tasks: dict[int, int], unfinished: dict[int, int], joined: frozenset[str]
) -> PlanState:
    return PlanState(
        status=PLAN_STATUSES[plan.status],
        level=plan.level,
        anchor_date=plan.anchor_date,
        balance=plan.balance,
        paused_days=plan.paused_days,
        paused_on=plan.paused_on,
        pause_until=plan.pause_until,
        pause_reason=plan.pause_reason,
        open_tasks=tasks.get(plan.id, 0),
        unfinished_actions=unfinished.get(plan.id, 0),
        joined=joined,
    )


def _reminders_done(
    session: Session, invoice_ids: Sequence[str]
) -> dict[str, set[tuple[str, str]]]:
    done: dict[str, set[tuple[str, str]]] = defaultdict(set)
    if invoice_ids:
        rows = session.connection().execute(
            select(ActionInstance.invoice_id, ActionInstance.level).where(
                _among(session, ActionInstance.invoice_id, invoice_ids),
                ActionInstance.plan_id.is_(None),
            )
        )
        for invoice_id, level in rows:
            if invoice_id is not None:
                done[invoice_id].add((invoice_id, level))
    return done


@dataclass(slots=True)
class _CustomerRec:
    id: str
    excluded: bool
    status: str
    category: str | None
    country: str | None
    currency: str | None
    is_company: bool
    payment_method: str | None
    language: str | None
    policy: str | None
    attributes: dict[str, Any] | None


@dataclass(slots=True)
class _InvoiceRec:
    id: str
    customer_id: str
    number: str
    type: str
    due_date: date
    currency: str
    amount_due: Decimal
    status: str
    disputed: bool
    next_check_on: date | None
    stamp: str  # FACT_STAMP


@dataclass(slots=True)
class _PlanRec:
    """The columns of a plan the run reads and writes, without ORM bookkeeping."""

    id: int
    customer_id: str
    invoice_id: str | None
    currency: str
    status: str
    level: str | None
    balance: Decimal
    anchor_date: date
    paused_days: int
    paused_on: date | None
    pause_until: date | None
    pause_reason: str | None
    next_step_on: date | None


CUSTOMER_COLUMNS = (
    Customer.id,
    Customer.excluded,
    Customer.status,
    Customer.category,
    Customer.country,
    Customer.currency,
    Customer.is_company,
    Customer.payment_method,
    Customer.language,
    Customer.policy,
    Customer.attributes,
)
# What a chunk's decisions rest on, per invoice, as one string the database builds: the
# chunk's write compares it with what the decider read (two short strings per invoice to
# send and compare, no conversions).
FACT_STAMP = (
    cast(Invoice.amount_due, String)
    + "|"
    + Invoice.status
    + "|"
    + cast(Invoice.disputed, String)
    + "|"
    + cast(Invoice.due_date, String)
    + "|"
    + Invoice.customer_id
    + "|"
    + Invoice.currency
    + "|"
    + Invoice.type
).label("stamp")
INVOICE_COLUMNS = (
    Invoice.id,
    Invoice.customer_id,
    Invoice.number,
    Invoice.type,
    Invoice.due_date,
    Invoice.currency,
    Invoice.amount_due,
    Invoice.status,
    Invoice.disputed,
    # one index probe per invoice: an outer join let PostgreSQL hash the whole check table
    # for every chunk
    select(InvoiceCheck.check_on)
    .where(InvoiceCheck.invoice_id == Invoice.id)
    .correlate(Invoice)
    .scalar_subquery()
    .label("check_on"),
    FACT_STAMP,
)
PLAN_COLUMNS = (
    Plan.id,
    Plan.customer_id,
    Plan.invoice_id,
    Plan.currency,
    Plan.status,
    Plan.level,
    Plan.balance,
    Plan.anchor_date,
    Plan.paused_days,
    Plan.paused_on,
    Plan.pause_until,
    Plan.pause_reason,
    Plan.next_step_on,
)
LOG_COLUMNS = (
    "at",
    "on",
    "event",
    "actor",
    "customer_id",
    "invoice_id",
    "plan_id",
    "level",
    "action",
    "run_id",
    "details",
)
INSTANCE_COLUMNS = (
    "key",
    "plan_id",
    "invoice_id",
    "customer_id",
    "policy_id",
    "level",
    "action",
    "type",
    "attempts",
    "due_on",
    "created_at",
    "status",
    "next_attempt_at",
    "error",
    "finished_at",
)
# a new plan's row: the columns set once, then its state (what an update writes)
PLAN_FIXED_COLUMNS = (
    "id",
    "customer_id",
    "invoice_id",
    "currency",
    "mode",
    "policy_id",
    "open_key",
    "opened_on",
    "created_at",
)
PLAN_UPDATE_COLUMNS = (
    "status",
    "level",
    "balance",
    "anchor_date",
    "paused_days",
    "paused_on",
    "pause_until",
    "pause_reason",
    "next_step_on",
    "updated_at",
)
PLAN_INSERT_COLUMNS = PLAN_FIXED_COLUMNS + PLAN_UPDATE_COLUMNS


def _customers(session: Session, ctx: _Context, ids: Iterable[str]) -> dict[str, _CustomerRec]:
    """Customers by id, read once per run (a customer has several invoices)."""
    cache = ctx.customers
    missing = [i for i in set(ids) if i not in cache]
    for start in range(0, len(missing), 5000):
        rows = session.connection().execute(
            select(*CUSTOMER_COLUMNS).where(
                _among(session, Customer.id, missing[start : start + 5000])
            )
        )
        for row in rows:
            cache[row[0]] = _CustomerRec(*row)
    return cache


def _decide_invoice_chunk(session: Session, ctx: _Context, invoice_ids: list[str]) -> list[_Item]:
    invoices = [
        _InvoiceRec(*row)
        for row in session.connection().execute(
            select(*INVOICE_COLUMNS).where(_among(session, Invoice.id, invoice_ids))
        )
    ]
    customers = _customers(session, ctx, {inv.customer_id for inv in invoices})
    plans: dict[str, _PlanRec] = {}
    for row in session.connection().execute(
        select(*PLAN_COLUMNS).where(_among(session, Plan.invoice_id, invoice_ids)).order_by(Plan.id)
    ):
        plan = _PlanRec(*row)
        if plan.invoice_id is not None:
            plans[plan.invoice_id] = plan  # the latest plan of the invoice wins
    tasks, unfinished = _plan_counts(session, [p.id for p in plans.values()])
    done = _reminders_done(session, invoice_ids)
    items: list[_Item] = []
    for invoice in invoices:
        customer = customers[invoice.customer_id]
        resolution = ctx.resolve(customer)
        plan = plans.get(invoice.id)
        reminders = done.get(invoice.id)
        unit = Unit(
            today=ctx.as_of,
            settings=ctx.config.settings,
            customer=ctx.facts(customer),
            currency=invoice.currency,
            invoices=(_invoice_facts(invoice),),
            policy=resolution.policy,
            policy_reason=resolution.reason,
            plan=_plan_state(plan, tasks, unfinished, frozenset({invoice.id})) if plan else None,
            reminders_done=frozenset(reminders) if reminders else NOTHING_DONE,
            actions=ctx.actions,
            explain=False,
        )
        items.append((unit, evaluate(unit), plan, customer.id, (invoice,), ()))
    return items


def _decide_customer_chunk(
    session: Session, ctx: _Context, pairs: list[tuple[str, str]]
) -> list[_Item]:
    customer_ids = sorted({c for c, _ in pairs})
    wanted = set(pairs)
    customers = _customers(session, ctx, customer_ids)
    by_pair: dict[tuple[str, str], list[_InvoiceRec]] = defaultdict(list)
    for row in session.connection().execute(
        select(*INVOICE_COLUMNS).where(
            _among(session, Invoice.customer_id, customer_ids),
            or_(
                Invoice.status.in_(OPEN_INVOICE_VALUES),
                exists().where(InvoiceCheck.invoice_id == Invoice.id),
            ),
        )
    ):
        invoice = _InvoiceRec(*row)
        if (invoice.customer_id, invoice.currency) in wanted:
            by_pair[(invoice.customer_id, invoice.currency)].append(invoice)
    open_plans: dict[tuple[str, str], _PlanRec] = {}
    for row in session.connection().execute(
        select(*PLAN_COLUMNS).where(
            _among(session, Plan.customer_id, customer_ids),
            Plan.status.in_(OPEN_PLAN_VALUES),
        )
    ):
        plan = _PlanRec(*row)
        open_plans[(plan.customer_id, plan.currency)] = plan
    all_invoice_ids = [inv.id for invs in by_pair.values() for inv in invs]
    # invoices already dunned by a plan (an invoice is covered by one plan, ever)
    covered: dict[str, int] = {}
    if all_invoice_ids:
        links = plan_links()
        for invoice_id, plan_id in session.connection().execute(
            select(links.c.invoice_id, links.c.plan_id).where(
                _among(session, links.c.invoice_id, all_invoice_ids)
            )
        ):
            covered[invoice_id] = plan_id
    tasks, unfinished = _plan_counts(session, [p.id for p in open_plans.values()])
    done = _reminders_done(session, all_invoice_ids)
    items: list[_Item] = []
    for pair in pairs:
        customer = customers.get(pair[0])
        if customer is None:
            continue
        resolution = ctx.resolve(customer)
        plan = open_plans.get(pair)
        invoices = [
            inv
            for inv in by_pair.get(pair, [])
            if inv.id not in covered or (plan is not None and covered[inv.id] == plan.id)
        ]
        joined = frozenset(
            inv.id for inv in invoices if plan is not None and covered.get(inv.id) == plan.id
        )
        reminders: set[tuple[str, str]] = set()
        for inv in invoices:
            reminders |= done.get(inv.id, set())
        unit = Unit(
            today=ctx.as_of,
            settings=ctx.config.settings,
            customer=ctx.facts(customer),
            currency=pair[1],
            invoices=tuple(_invoice_facts(inv) for inv in invoices),
            policy=resolution.policy,
            policy_reason=resolution.reason,
            plan=_plan_state(plan, tasks, unfinished, joined) if plan else None,
            reminders_done=frozenset(reminders),
            actions=ctx.actions,
            explain=False,
        )
        # invoices no longer open (or covered by another plan) need no further checks
        kept = {inv.id for inv in invoices}
        stale = [inv for inv in by_pair.get(pair, []) if inv.id not in kept]
        items.append((unit, evaluate(unit), plan, customer.id, invoices, stale))
    return items


# an evaluated unit and what applying it needs: unit, outcome, plan, customer id, its
# invoices, and invoices that need no further checks (customer mode)
_Item = tuple[Unit, Outcome, _PlanRec | None, str, Sequence[_InvoiceRec], Iterable[_InvoiceRec]]


# --- applying decisions --------------------------------------------------------------------


LOCK_TRIES = 200  # 50 ms apart: 10 s before waiting with some locks held
LOCK_NOT_AVAILABLE = "55P03"


def _share_locked(session: Session, query: Any, run_id: int) -> Sequence[Any]:
    """PostgreSQL: the rows of `query`, FOR SHARE (it blocks their updates until the chunk
    commits), all at once or none: waiting for one while holding others could deadlock with
    an import updating the same invoices in another order. A writer holding some of them
    commits soon; the locks are tried again."""
    for attempt in range(LOCK_TRIES):
        try:
            with session.begin_nested():
                return (
                    session.connection()
                    .execute(query.with_for_update(read=True, nowait=True))
                    .all()
                )
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            if attempt == 0:
                logger.info("run %s: a chunk's invoices are being changed; waiting", run_id)
            time.sleep(0.05)
    logger.info("run %s: a chunk's invoices still changing after 10 s; waiting on them", run_id)
    return session.connection().execute(query.with_for_update(read=True)).all()


def _settle_changed(session: Session, ctx: _Context, invoice_ids: list[str]) -> int:
    """Invoices that changed after their chunk was decided (a payment, an import or a dispute
    committed in between): the chunk's rows are written as decided, then what the change
    would have done to them, had it come after the write, is done here, in the same
    transaction: plans whose debt is gone close `recovered` (R8) and the invoices are looked
    at again. Returns the plans recovered."""
    logger.info(
        "run %s: %d invoice(s) changed while their chunk was decided (%s): their plans are "
        "settled again (rule R8 in docs/rules.md) and they are checked again",
        ctx.run_id,
        len(invoice_ids),
        ", ".join(invoice_ids[:5]) + (", ..." if len(invoice_ids) > 5 else ""),
    )
    recovered = refresh_plans_after_change(session, invoice_ids, on=ctx.as_of, actor=ctx.actor)
    recheck_invoices(session, invoice_ids)
    session.flush()
    return len(recovered)


class _Batch:
    """A chunk's decisions turned into rows (`build`, while the previous chunk is written),
    then written in bulk in the chunk's transaction (`flush`)."""

    def __init__(self, ctx: _Context, dialect: str) -> None:
        self.ctx = ctx
        self.dialect = dialect
        self.stats_delta: dict[str, int] = {}
        # the facts (FACT_COLUMNS) of every invoice the chunk was decided on
        self.seen: list[tuple[Any, ...]] = []
        self.logs: list[tuple[Any, ...]] = []
        self.instances: list[tuple[Any, ...]] = []
        self._formats()
        # plans reaching a final status: closed through the ORM once the rows are written
        self.closings: list[tuple[int, ClosePlan]] = []
        self.manual_keys: dict[str, dict[str, Any]] = {}
        # invoices whose check row goes (cleared or replaced), and the new rows
        self.checks_gone: list[str] = []
        self.checks_new: list[dict[str, Any]] = []
        self.plan_invoices: list[dict[str, Any]] = []
        # new plans: their insert-only columns until `build` ends, then whole rows
        self.new_plans: list[tuple[tuple[Any, ...], _PlanRec]] = []
        # promises to pay whose date has come (R10): how each stands, and the plans whose
        # promise ends with this chunk
        self.promises: dict[int, PromiseCheck] = {}
        self.promises_ended: list[int] = []
        self.plan_rows: list[tuple[Any, ...]] = []
        self.dirty_plans: dict[int, _PlanRec] = {}
        self.plan_updates: list[dict[str, Any]] = []
        self.now = utc_now()
        # constants in the driver's format, computed once per chunk
        self.now_db = self.log_format.value("at", self.now)
        self.today_db = self.log_format.value("on", ctx.as_of)

    def _formats(self) -> None:
        self.log_format = TupleFormat(self.dialect, LogEntry.__table__, LOG_COLUMNS)
        self.instance_format = TupleFormat(self.dialect, ActionInstance.__table__, INSTANCE_COLUMNS)
        self.plan_format = TupleFormat(self.dialect, Plan.__table__, PLAN_INSERT_COLUMNS)

    def __getstate__(self) -> dict[str, Any]:
        # sent to the writing process without the run's context and table formats
        state = dict(vars(self))
        for name in ("ctx", "log_format", "instance_format", "plan_format"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._formats()

    def attach(self, ctx: _Context) -> None:
        """In the writing process: the run's context (the decider's counts are added once
        the chunk is committed)."""
        self.ctx = ctx

    def build(self, session: Session, items: list[_Item]) -> None:
        """Give the chunk's new plans their ids (they key the actions), then apply."""
        openings = [
            (index, decision)
            for index, (_u, outcome, *_rest) in enumerate(items)
            for decision in outcome.decisions
            if isinstance(decision, OpenPlan)
        ]
        ids = self._plan_ids(session, len(openings))
        opened: dict[int, _PlanRec] = {}
        for (index, decision), plan_id in zip(openings, ids, strict=True):
            unit, _outcome, _plan, customer_id, invoices, _stale = items[index]
            opened[index] = self._new_plan(plan_id, unit, decision, customer_id, invoices)
        as_of = self.ctx.as_of
        promised = [
            plan.id
            for item in items
            if (plan := item[2]) is not None
            and plan.pause_reason == PROMISE_PAUSE_REASON
            and plan.pause_until is not None
            and plan.pause_until <= as_of
        ]
        if promised:  # rare: one query for the chunk's promises that came due
            self.promises = promises_due(session, promised)
        seen = self.seen
        for index, (unit, outcome, plan, customer_id, invoices, stale) in enumerate(items):
            self.apply(unit, outcome, opened.get(index, plan), customer_id, invoices, stale)
            seen.extend((inv.id, inv.stamp) for inv in invoices)
            seen.extend((inv.id, inv.stamp) for inv in stale)
        self._plan_rows()
        self.promises = {}  # used by apply only; not sent to the writing process

    def _plan_rows(self) -> None:
        """The plans' rows as the driver stores them: new plans with their final state (they
        need no update), changed plans as updates. Built here, where the chunk is decided, so
        that plain tuples and dicts cross to the writing process (pickling the records costs
        more than building the rows)."""
        converters = [self.plan_format.value_converter(name) for name in PLAN_UPDATE_COLUMNS]
        for fixed, rec in self.new_plans:
            self.dirty_plans.pop(rec.id, None)
            state = [getattr(rec, name) for name in PLAN_UPDATE_COLUMNS[:-1]]
            state.append(self.now)
            converted = [convert(v) for convert, v in zip(converters, state, strict=True)]
            self.plan_rows.append((*fixed, *converted))
        self.new_plans = []
        self.plan_updates = [
            {"id": rec.id, "updated_at": self.now}
            | {name: getattr(rec, name) for name in PLAN_UPDATE_COLUMNS[:-1]}
            for rec in self.dirty_plans.values()
        ]
        self.dirty_plans = {}

    def _plan_ids(self, session: Session, count: int) -> list[int]:
        """Ids for new plans. PostgreSQL: from the sequence. SQLite: counted on from the
        largest id, read once per run, because the previous chunk may not be committed yet
        when this one is decided; only the run, which holds the run lock, creates plans."""
        ctx = self.ctx
        if count == 0 or self.dialect == "postgresql":
            return reserve_ids(session, Plan.__table__, count)
        if ctx.next_plan_id is None:
            ctx.next_plan_id = reserve_ids(session, Plan.__table__, 1)[0]
        first = ctx.next_plan_id
        ctx.next_plan_id += count
        return list(range(first, first + count))

    def _new_plan(
        self,
        plan_id: int,
        unit: Unit,
        decision: OpenPlan,
        customer_id: str,
        invoices: Sequence[_InvoiceRec],
    ) -> _PlanRec:
        assert unit.policy is not None
        invoice_mode = unit.settings.mode is Mode.invoice
        invoice_id = invoices[0].id if invoice_mode else None
        # PLAN_FIXED_COLUMNS; the state columns are the record's final state, added by
        # _plan_rows
        fixed = (
            plan_id,
            customer_id,
            invoice_id,
            unit.currency,
            unit.settings.mode.value,
            self.ctx.policy_ids[unit.policy.name],
            f"inv:{invoice_id}" if invoice_mode else f"cust:{customer_id}:{unit.currency}",
            self.today_db,
            self.now_db,
        )
        rec = _PlanRec(
            plan_id,
            customer_id,
            invoice_id,
            unit.currency,
            PlanStatus.active.value,
            None,
            decision.balance,
            decision.anchor_date,
            0,
            None,
            None,
            None,
            None,
        )
        self.new_plans.append((fixed, rec))
        return rec

    def _log(
        self,
        event: Event,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        plan_id: int | None = None,
        level: str | None = None,
        action: str | None = None,
        **details: Any,
    ) -> None:
        """A log row built directly (the hot path): callers pass JSON-ready details."""
        self.logs.append(
            (
                self.now_db,
                self.today_db,
                event.value,
                self.ctx.actor,
                customer_id,
                invoice_id,
                plan_id,
                level,
                action,
                self.ctx.run_id,
                json_text(details),
            )
        )

    def _queue_level(
        self,
        *,
        key_prefix: str,
        level: Level,
        policy: Policy,
        customer_id: str,
        plan_id: int | None,
        invoice_id: str | None,
        run_actions: bool,
        reason: str | None = None,
    ) -> list[str]:
        """Queue (or record as skipped) the level's actions; returns their codes. The level's
        log entry lists them, so a step costs one log row, not one per action."""
        queued: list[str] = []
        policy_id = self.ctx.policy_ids[policy.name]
        for code in level.actions:
            action = self.ctx.actions.get(code)
            if action is None:
                continue
            key = f"{key_prefix}:{level.code}:{code}"
            queued.append(code)
            status = InstanceStatus.pending.value
            next_attempt: Any = self.now_db
            error = finished = None
            if not run_actions:
                status, next_attempt, error, finished = (
                    InstanceStatus.skipped.value,
                    None,
                    reason,
                    self.now_db,
                )
                self.ctx.stats.actions_skipped += 1
            elif action.is_manual:
                next_attempt = None  # for people, not machines
                self.manual_keys[key] = {
                    "role": action.role or "collector",
                    "instructions": action.instructions,
                    "plan_id": plan_id,
                    "level": level.code,
                    "action": code,
                    "customer_id": customer_id,
                    "invoice_id": invoice_id,
                }
                self.ctx.stats.actions_queued += 1
            else:
                self.ctx.stats.actions_queued += 1
            self.instances.append(
                (
                    key,
                    plan_id,
                    invoice_id,
                    customer_id,
                    policy_id,
                    level.code,
                    code,
                    action.type.value,
                    0,
                    self.today_db,
                    self.now_db,
                    status,
                    next_attempt,
                    error,
                    finished,
                )
            )
        return queued

    def apply(
        self,
        unit: Unit,
        outcome: Outcome,
        plan: _PlanRec | None,
        customer_id: str,
        invoices: Sequence[_InvoiceRec],
        stale: Iterable[_InvoiceRec] = (),
    ) -> None:
        ctx = self.ctx
        policy = unit.policy
        invoice_mode = unit.settings.mode is Mode.invoice
        invoice_id = invoices[0].id if invoice_mode and invoices else None
        for inv in invoices:
            nxt = outcome.invoice_next_check.get(inv.id)
            if inv.next_check_on != nxt:
                self._check(inv, nxt)
        for inv in stale:
            if inv.next_check_on is not None:
                self._check(inv, None)
        if not outcome.decisions and plan is None:
            return
        assert policy is not None or not outcome.decisions
        plan_updates: dict[str, Any] = {}
        opening = next((d for d in outcome.decisions if isinstance(d, OpenPlan)), None)
        # A plan opening today records in its own log entry the reminders and levels it passed
        # over (one log row per new plan instead of up to four on a first run over a book).
        folded: list[dict[str, str]] = []
        levels_passed: list[dict[str, Any]] = []
        if opening is not None:
            levels_passed = [
                {"level": d.level.code, "reason": d.reason, "actions": list(d.level.actions)}
                for d in outcome.decisions
                if isinstance(d, SkipLevel)
            ]
        for decision in outcome.decisions:
            assert policy is not None
            if isinstance(decision, QueueReminder):
                ctx.stats.reminders += 1
                actions = self._queue_level(
                    key_prefix=f"inv:{decision.invoice_id}",
                    level=decision.level,
                    policy=policy,
                    customer_id=customer_id,
                    plan_id=None,
                    invoice_id=decision.invoice_id,
                    run_actions=True,
                )
                self._log(
                    Event.level_reached,
                    customer_id=customer_id,
                    invoice_id=decision.invoice_id,
                    level=decision.level.code,
                    reminder=True,
                    actions=actions,
                )
            elif isinstance(decision, SkipReminder):
                ctx.stats.levels_skipped += 1
                actions = list(decision.level.actions)
                if opening is not None:
                    # a plan opens for this debt today: its entry records the reminder skipped
                    # (one log row per new plan instead of two on a first run)
                    folded.append({"level": decision.level.code, "reason": decision.reason})
                    continue
                if plan is None:
                    # the record that keeps this reminder from being decided again; an
                    # invoice a plan covers never looks at its reminders again
                    actions = self._queue_level(
                        key_prefix=f"inv:{decision.invoice_id}",
                        level=decision.level,
                        policy=policy,
                        customer_id=customer_id,
                        plan_id=None,
                        invoice_id=decision.invoice_id,
                        run_actions=False,
                        reason=decision.reason,
                    )
                self._log(
                    Event.level_skipped,
                    customer_id=customer_id,
                    invoice_id=decision.invoice_id,
                    level=decision.level.code,
                    reason=decision.reason,
                    reminder=True,
                    actions=actions,
                )
            elif isinstance(decision, OpenPlan):
                assert plan is not None  # created in one batch by write()
                ctx.stats.plans_opened += 1
                if not invoice_mode:  # an invoice-mode plan covers its own invoice (links.py)
                    self.plan_invoices.extend(
                        {"plan_id": plan.id, "invoice_id": i, "joined_on": ctx.as_of}
                        for i in decision.invoice_ids
                    )
                self._log(
                    Event.plan_opened,
                    customer_id=customer_id,
                    invoice_id=invoice_id,
                    plan_id=plan.id,
                    policy=policy.name,
                    balance=str(decision.balance),
                    currency=unit.currency,
                    anchor_date=decision.anchor_date.isoformat(),
                    **({"reminders_skipped": folded} if folded else {}),
                    **({"levels_skipped": levels_passed} if levels_passed else {}),
                )
            elif isinstance(decision, JoinInvoices):
                assert plan is not None
                self.plan_invoices.extend(
                    {"plan_id": plan.id, "invoice_id": i, "joined_on": ctx.as_of}
                    for i in decision.invoice_ids
                )
                for i in decision.invoice_ids:
                    self._log(
                        Event.invoice_joined, customer_id=customer_id, invoice_id=i, plan_id=plan.id
                    )
            elif isinstance(decision, UpdatePlan):
                plan_updates.update(anchor_date=decision.anchor_date, balance=decision.balance)
            elif isinstance(decision, ResumePlan):
                assert plan is not None
                plan_updates.update(
                    status=PlanStatus.active.value,
                    paused_days=plan.paused_days + decision.paused_days,
                    paused_on=None,
                    pause_until=None,
                    pause_reason=None,
                )
                promise = self.promises.get(plan.id) if self.promises else None
                self._log(
                    Event.plan_resumed,
                    customer_id=customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    reason=decision.reason,
                    paused_days=decision.paused_days,
                    **({"promise": promise.details()} if promise is not None else {}),
                )
                if promise is not None:
                    self.promises_ended.append(plan.id)
                    if not promise.kept:  # R10: it escalates from the level where it stood
                        self._log(
                            Event.promise_broken,
                            customer_id=customer_id,
                            invoice_id=plan.invoice_id,
                            plan_id=plan.id,
                            level=plan.level,
                            **promise.details(),
                        )
            elif isinstance(decision, ReachLevel):
                assert plan is not None
                plan_updates["level"] = decision.level.code
                ctx.stats.plans_advanced += 1
                actions = self._queue_level(
                    key_prefix=f"plan:{plan.id}",
                    level=decision.level,
                    policy=policy,
                    customer_id=customer_id,
                    plan_id=plan.id,
                    invoice_id=plan.invoice_id,
                    run_actions=True,
                )
                self._log(
                    Event.level_reached,
                    customer_id=customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    level=decision.level.code,
                    days_overdue=decision.days_overdue,
                    actions=actions,
                )
            elif isinstance(decision, SkipLevel):
                assert plan is not None
                plan_updates["level"] = decision.level.code
                ctx.stats.levels_skipped += 1
                ctx.stats.actions_skipped += len(decision.level.actions)
                if opening is not None:
                    continue  # recorded in the plan_opened entry
                self._log(
                    Event.level_skipped,
                    customer_id=customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    level=decision.level.code,
                    reason=decision.reason,
                    actions=list(decision.level.actions),
                )
            elif isinstance(decision, ClosePlan):
                assert plan is not None
                self._apply_plan_updates(plan, plan_updates)
                self.closings.append((plan.id, decision))
                if decision.status is PlanStatus.recovered:
                    ctx.stats.plans_recovered += 1
                return
        if plan is not None:
            plan_updates["next_step_on"] = outcome.plan_next_step
            self._apply_plan_updates(plan, plan_updates)

    def _check(self, invoice: _InvoiceRec, when: date | None) -> None:
        if invoice.next_check_on is not None:  # it has a row to replace or clear
            self.checks_gone.append(invoice.id)
        if when is not None:
            self.checks_new.append({"invoice_id": invoice.id, "check_on": when})

    def _apply_plan_updates(self, plan: _PlanRec, updates: dict[str, Any]) -> None:
        for key, value in updates.items():
            if getattr(plan, key) != value:
                setattr(plan, key, value)
                self.dirty_plans[plan.id] = plan

    def lock_invoices(self, session: Session) -> list[str]:
        """First in the chunk's write transaction: lock the invoices the chunk was decided on
        and return those that changed since. A payment or import that commits before this
        is seen here; one that comes later waits for the chunk's commit (PostgreSQL: the row
        locks, in id order as a payment takes them; SQLite: the write lock) and then finds
        the chunk's plans to close."""
        if not self.seen:
            return []
        ids = [fact[0] for fact in self.seen]
        if self.dialect == "postgresql":
            query = select(Invoice.id, FACT_STAMP).where(_among(session, Invoice.id, ids))
            rows = _share_locked(session, query.order_by(Invoice.id), self.ctx.run_id)
        else:
            hold_write_lock(session)
            # the ids as one JSON parameter: binding thousands of them cost more than the read
            each = func.json_each(bindparam("ids", json_text(ids))).table_valued("value")
            query = select(Invoice.id, FACT_STAMP).where(Invoice.id.in_(select(each.c.value)))
            rows = session.connection().execute(query).all()
        now = dict(rows)
        seen, self.seen = self.seen, []
        return sorted(invoice_id for invoice_id, stamp in seen if now.get(invoice_id) != stamp)

    def flush(self, session: Session) -> None:
        if self.plan_rows:
            self.plan_format.insert(session, self.plan_rows)
            self.plan_rows = []
        if self.plan_updates:
            bulk_update(session, Plan.__table__, PLAN_UPDATE_COLUMNS, self.plan_updates)
            self.plan_updates = []
        if self.promises_ended:  # a promise ends with its pause
            session.execute(
                update(Plan)
                .where(Plan.id.in_(self.promises_ended))
                .values(promise_amount=None, promise_made_on=None)
            )
            self.promises_ended = []
        if self.plan_invoices:
            bulk_insert(session, PlanInvoice.__table__, self.plan_invoices)
            self.plan_invoices = []
        if self.instances:
            self.instance_format.insert(session, self.instances)
            self.instances = []
        if self.manual_keys:
            ids = dict(
                session.execute(
                    select(ActionInstance.key, ActionInstance.id).where(
                        ActionInstance.key.in_(list(self.manual_keys))
                    )
                ).all()
            )
            task_rows = []
            for key, info in self.manual_keys.items():
                task_rows.append(
                    {
                        "plan_id": info["plan_id"],
                        "action_instance_id": ids[key],
                        "level": info["level"],
                        "action": info["action"],
                        "role": info["role"],
                        "instructions": info["instructions"],
                        "status": TaskStatus.open.value,
                        "created_on": self.ctx.as_of,
                        "created_at": self.now,
                    }
                )
                self._log(
                    Event.task_created,
                    customer_id=info["customer_id"],
                    invoice_id=info["invoice_id"],
                    plan_id=info["plan_id"],
                    level=info["level"],
                    action=info["action"],
                    role=info["role"],
                )
                self.ctx.stats.tasks_created += 1
            bulk_insert(session, Task.__table__, task_rows)
            self.manual_keys = {}
        bulk_delete(session, InvoiceCheck.__table__.c.invoice_id, self.checks_gone)
        bulk_insert(session, InvoiceCheck.__table__, self.checks_new)
        self.checks_gone, self.checks_new = [], []
        if self.logs:
            self.log_format.insert(session, self.logs)
            self.logs = []
        for plan_id, decision in self.closings:  # after the plan's own rows and log entries
            row = session.get(Plan, plan_id)
            assert row is not None
            close_plan(
                session,
                row,
                decision.status,
                on=self.ctx.as_of,
                actor=self.ctx.actor,
                reason=decision.reason,
            )
        if self.closings:
            session.flush()
            self.closings = []
