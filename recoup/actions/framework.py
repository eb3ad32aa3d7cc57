"""Executing automatic action instances: claim, guard, execute, record (R8, R13).

`execute_pending` is an edge, like a worker: it owns its transactions. One transaction claims
a batch of due instances (status `running` with a lease); then each instance runs in its own
transaction that locks the row, checks the debt is still due, performs the effect and records
the outcome. A failure rolls the effect back and is recorded in a fresh transaction: retried
with backoff, or after MAX_ATTEMPTS `failed` with a task for a collector.

Instances of paused plans are not claimed: they stay `pending` with their `next_attempt_at`
and run on the first execution after the plan resumes, with nothing to re-arm. Manual
instances (`next_attempt_at` NULL) are never claimed: people do them through their task.
"""

from __future__ import annotations

import importlib
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.context import MANUAL_REQUEST, ActionContext, load_context, manual_request
from recoup.actions.email import close_smtp_connections
from recoup.actions.notice import RECHECK, WAIT, notice_decision, wake_fees
from recoup.core.clock import utc_now
from recoup.core.config import EnvConfig
from recoup.core.errors import RecoupError
from recoup.core.log import log
from recoup.domain.enums import (
    CANCELLED_ACCOUNT_STATUS,
    ActionMode,
    ActionType,
    Event,
    InstanceStatus,
    InvoiceStatus,
    PlanStatus,
)
from recoup.models import ActionInstance, Plan, Task
from recoup.plans.closing import maybe_close_unrecovered

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=60)
BACKOFF_CAP = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # RECOUP_LEASE_SECONDS overrides it (tests use a short one)
BATCH_SIZE = 50
FAILURE_ROLE = "collector"
# Modules whose import registers executors; a missing optional module is ignored.
EXECUTOR_MODULES = (
    "recoup.actions.executors",
    "recoup.actions.letter",
    "recoup.actions.sms",
    "recoup.actions.webhook",
)


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    result: dict[str, Any] = field(default_factory=dict)
    reminder_sent: bool = False  # an email or message actually went out for a reminder


@dataclass(frozen=True)
class Skipped:
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


Outcome = Done | Skipped


class PermanentFailure(RecoupError):
    """An error retrying cannot fix (bad configuration, refused recipient): fail at once."""


Executor = Callable[[ActionContext], Outcome]
EXECUTORS: dict[str, Executor] = {}
_loaded = False


def register(action_type: ActionType | str) -> Callable[[Executor], Executor]:
    def decorator(fn: Executor) -> Executor:
        EXECUTORS[str(action_type)] = fn
        return fn

    return decorator


def executor_for(action_type: str) -> Executor | None:
    global _loaded
    if not _loaded:
        for name in EXECUTOR_MODULES:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
        _loaded = True
    return EXECUTORS.get(action_type)


@dataclass
class ExecutionStats:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    deferred: int = 0  # released unexecuted (the plan was paused meanwhile)
    released: int = 0  # leased but never started: handed back when asked to stop

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.skipped + self.retried + self.deferred

    def as_dict(self) -> dict[str, int]:
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "retried": self.retried,
            "deferred": self.deferred,
            "released": self.released,
        }


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after `attempts` failed ones: 1, 2, 4, 8 min… ≤ 1 h."""
    delay: timedelta = BACKOFF_BASE * (2 ** max(0, attempts - 1))
    return min(delay, BACKOFF_CAP)


def lease_duration() -> timedelta:
    """How long a claim holds its instances: LEASE, or RECOUP_LEASE_SECONDS when set."""
    raw = os.environ.get("RECOUP_LEASE_SECONDS", "").strip()
    if not raw:
        return LEASE
    try:
        seconds = float(raw)
    except ValueError:
        raise RecoupError(f"RECOUP_LEASE_SECONDS: {raw!r} is not a number of seconds") from None
    if seconds <= 0:
        raise RecoupError(f"RECOUP_LEASE_SECONDS: {raw!r} must be positive")
    return timedelta(seconds=seconds)


# --- claiming ------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return or_(
        and_(
            ActionInstance.status == InstanceStatus.pending.value,
            ActionInstance.next_attempt_at.is_not(None),
            ActionInstance.next_attempt_at <= now,
        ),
        and_(  # a dead worker's lease
            ActionInstance.status == InstanceStatus.running.value,
            ActionInstance.lease_until < now,
        ),
    )


def _not_paused() -> Any:
    return or_(
        ActionInstance.plan_id.is_(None),
        ~exists().where(Plan.id == ActionInstance.plan_id, Plan.status == PlanStatus.paused.value),
    )


def claim_batch(session: Session, *, token: str, now: datetime, size: int) -> list[int]:
    """Lease up to `size` due instances to `token`; returns their ids. PostgreSQL skips rows
    another worker holds (row locks taken by the SELECT are kept until the claim commits, and
    a row another claim committed meanwhile is re-checked against `_due` when locked); SQLite
    has a single writer and the conditional UPDATE re-checks."""
    query = (
        select(ActionInstance.id)
        .where(_due(now), _not_paused())
        .order_by(ActionInstance.next_attempt_at, ActionInstance.id)
        .limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=ActionInstance)
    ids = list(session.scalars(query).all())
    if not ids:
        return []
    claimed = (
        session.execute(
            update(ActionInstance)
            .where(ActionInstance.id.in_(ids), _due(now))
            .values(
                status=InstanceStatus.running.value,
                leased_by=token,
                lease_until=now + lease_duration(),
            )
            .returning(ActionInstance.id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    return sorted(claimed)


# --- the loop ------------------------------------------------------------------------------


def execute_pending(
    factory: sessionmaker[Session],
    *,
    env: EnvConfig,
    today: date,
    worker_id: str = "run",
    limit: int | None = None,
    now: Callable[[], datetime] = utc_now,
    on_progress: Callable[[int], None] | None = None,
    run_id: int | None = None,
    batch_size: int = BATCH_SIZE,
    stop: Callable[[], bool] | None = None,
) -> ExecutionStats:
    """Execute every due automatic instance, each in its own transaction. Returns counts.
    `on_progress(1)` is called after each instance (an increment, like a progress bar's
    `advance`). `batch_size` instances are claimed at a time. When `stop()` turns true (a
    worker asked to shut down) the instance under way finishes, the claimed ones not started
    are released at once for another worker, and the loop returns."""
    try:
        return _execute_pending(
            factory,
            env=env,
            today=today,
            worker_id=worker_id,
            limit=limit,
            now=now,
            on_progress=on_progress,
            run_id=run_id,
            batch_size=batch_size,
            stop=stop,
        )
    finally:
        close_smtp_connections()  # the batch reused one connection; hang up at the end


def _execute_pending(
    factory: sessionmaker[Session],
    *,
    env: EnvConfig,
    today: date,
    worker_id: str,
    limit: int | None,
    now: Callable[[], datetime],
    on_progress: Callable[[int], None] | None,
    run_id: int | None,
    batch_size: int,
    stop: Callable[[], bool] | None,
) -> ExecutionStats:
    stats = ExecutionStats()
    token = f"{worker_id}#{uuid.uuid4().hex[:12]}"
    processed = 0
    while (limit is None or processed < limit) and not (stop is not None and stop()):
        size = batch_size if limit is None else min(batch_size, limit - processed)
        with factory() as session, session.begin():
            ids = claim_batch(session, token=token, now=now(), size=size)
        if not ids:
            break
        for position, instance_id in enumerate(ids):
            if stop is not None and stop():
                stats.released += release_leases(factory, ids[position:], token=token)
                return stats
            outcome = process_instance(
                factory,
                instance_id,
                token=token,
                env=env,
                today=today,
                now=now,
                run_id=run_id,
            )
            if outcome is not None:
                setattr(stats, outcome, getattr(stats, outcome) + 1)
            processed += 1
            if on_progress is not None:
                on_progress(1)
    return stats


def release_leases(factory: sessionmaker[Session], ids: list[int], *, token: str) -> int:
    """Hand back instances leased to `token` and not started: due again at once, for any
    worker. Returns how many were released."""
    if not ids:
        return 0
    with factory() as session, session.begin():
        released = session.execute(
            update(ActionInstance)
            .where(
                ActionInstance.id.in_(ids),
                ActionInstance.leased_by == token,
                ActionInstance.status == InstanceStatus.running.value,
            )
            .values(status=InstanceStatus.pending.value, leased_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return int(released.rowcount or 0)


def process_instance(
    factory: sessionmaker[Session],
    instance_id: int,
    *,
    token: str,
    env: EnvConfig,
    today: date,
    now: Callable[[], datetime] = utc_now,
    run_id: int | None = None,
) -> str | None:
    """Run one leased instance; returns the ExecutionStats field to count, None if the lease
    was lost to another worker."""
    error: BaseException | None = None
    with factory() as session:
        try:
            instance = session.get(ActionInstance, instance_id, with_for_update=True)
            if (
                instance is None
                or instance.status != InstanceStatus.running
                or instance.leased_by != token
            ):
                session.rollback()
                return None
            kind = _execute(session, instance, env=env, today=today, now=now(), run_id=run_id)
            session.commit()
            return kind
        except Exception as exc:  # recorded below, in a fresh transaction
            session.rollback()
            error = exc
    assert error is not None
    # a traceback only for the unexpected: a refusal, a bad setting or a network error is
    # said in one line (and recorded in the log with its reason)
    expected = isinstance(error, (RecoupError, OSError, httpx.HTTPError))
    logger.warning(
        "action instance %s failed: %s",
        instance_id,
        env.redact(str(error)),
        exc_info=None if expected else error,
    )
    with factory() as session, session.begin():
        return _record_failure(
            session,
            instance_id,
            error,
            token=token,
            env=env,
            today=today,
            now=now(),
            run_id=run_id,
        )


def _execute(
    session: Session,
    instance: ActionInstance,
    *,
    env: EnvConfig,
    today: date,
    now: datetime,
    run_id: int | None,
) -> str:
    ctx = load_context(session, instance, env=env, today=today, now=now, run_id=run_id)
    if ctx.plan is not None and ctx.plan.status == PlanStatus.paused and not ctx.by_hand:
        _release(instance)  # keeps next_attempt_at: claimed again once the plan resumes
        session.flush()
        return "deferred"
    if (
        ctx.action is not None
        and not ctx.by_hand  # a person asked for it (recoup.plans.manual): do it now
        and (ctx.action.mode == ActionMode.manual or ctx.action.type == ActionType.manual)
    ):
        _release(instance)
        instance.next_attempt_at = None  # a person does it, through the task
        session.flush()
        return "deferred"
    reason = guard(ctx)
    notice = notice_decision(ctx) if reason is None else None
    if notice == WAIT:  # fees follow a notice: parked till a send of the step finishes
        _release(instance)
        instance.next_attempt_at = now + RECHECK
        session.flush()
        return "deferred"
    if reason is not None:
        outcome: Outcome = Skipped(reason)
    elif isinstance(notice, tuple):  # fees follow a notice (SPEC §3)
        outcome = Skipped(*notice)
    else:
        if ctx.action is None:
            raise PermanentFailure(f"action {instance.action} no longer exists")
        # the action as it is now (R14): its params belong to its current type
        action_type = ctx.action.type
        executor = executor_for(action_type)
        if executor is None:
            raise PermanentFailure(f"no executor for action type {action_type}")
        outcome = executor(ctx)
    return _finish(ctx, outcome)


def guard(ctx: ActionContext) -> str | None:
    """R8: the reason not to act any more, or None when the debt is still due."""
    customer = ctx.customer
    if customer.excluded:
        return "customer is excluded from dunning"
    if customer.status == CANCELLED_ACCOUNT_STATUS:
        return "customer account is cancelled"
    if ctx.plan is not None:
        plan = ctx.plan
        # a person may act by hand on a paused plan (recoup.plans.manual)
        if plan.status != PlanStatus.active and not (
            ctx.by_hand and plan.status == PlanStatus.paused
        ):
            return f"plan is {plan.status}"
        if plan.balance <= 0:
            return f"nothing left to collect (balance {plan.balance} {plan.currency})"
        if plan.invoice_id is not None and ctx.invoice is not None:
            return _invoice_reason(ctx)
        return None
    if ctx.invoice is None:
        return "reminder has no invoice"
    reason = _invoice_reason(ctx)
    if reason is None and max(ctx.today, ctx.executing_on or ctx.today) >= ctx.invoice.due_date:
        return f"due date {ctx.invoice.due_date} passed before the reminder was sent"
    return reason


def _invoice_reason(ctx: ActionContext) -> str | None:
    invoice = ctx.invoice
    assert invoice is not None
    if invoice.status == InvoiceStatus.paid:
        return f"invoice {invoice.number} is paid"
    if invoice.status == InvoiceStatus.cancelled:
        return f"invoice {invoice.number} is cancelled"
    if invoice.disputed:
        return f"invoice {invoice.number} is disputed"
    if invoice.amount_due <= 0:
        return f"invoice {invoice.number} has nothing due"
    return None


_RESERVED = frozenset(
    {
        "on",
        "actor",
        "customer_id",
        "invoice_id",
        "plan_id",
        "level",
        "action",
        "run_id",
        "type",
        "reason",
        "event",
    }
)


def _details(values: dict[str, Any]) -> dict[str, Any]:
    """Result fields for a log entry's details, minus names the log row itself uses."""
    return {k: v for k, v in values.items() if k not in _RESERVED}


def _release(instance: ActionInstance) -> None:
    instance.status = InstanceStatus.pending
    instance.leased_by = None
    instance.lease_until = None


def _finish(ctx: ActionContext, outcome: Outcome) -> str:
    session, instance = ctx.session, ctx.instance
    request = manual_request(instance)  # read before the result is replaced
    instance.attempts += 1
    instance.leased_by = None
    instance.lease_until = None
    instance.finished_at = ctx.now
    if isinstance(outcome, Done):
        instance.status = InstanceStatus.done
        instance.result = outcome.result
        instance.error = None
        details = _details(outcome.result)
        log(session, Event.action_done, **ctx.log_kwargs(), type=instance.type, **details)
        if ctx.is_reminder and outcome.reminder_sent:
            log(session, Event.reminder_sent, **ctx.log_kwargs(), **details)
        kind = "done"
    else:
        instance.status = InstanceStatus.skipped
        instance.result = {"reason": outcome.reason, **outcome.details}
        log(
            session,
            Event.action_skipped,
            **ctx.log_kwargs(),
            type=instance.type,
            reason=outcome.reason,
            **_details(outcome.details),
        )
        kind = "skipped"
    if request is not None:  # keep who asked for it by hand, and what they chose
        instance.result = {**instance.result, MANUAL_REQUEST: request}
    session.flush()
    wake_fees(ctx, ctx.now)
    if ctx.plan is not None:
        maybe_close_unrecovered(session, ctx.plan, on=ctx.today)
    return kind


def _record_failure(
    session: Session,
    instance_id: int,
    error: BaseException,
    *,
    token: str,
    env: EnvConfig,
    today: date,
    now: datetime,
    run_id: int | None,
) -> str | None:
    instance = session.get(ActionInstance, instance_id, with_for_update=True)
    if instance is None or instance.status != InstanceStatus.running or instance.leased_by != token:
        return None
    ctx = load_context(session, instance, env=env, today=today, now=now, run_id=run_id)
    message = _describe(error, env)
    instance.attempts += 1
    instance.error = message
    instance.leased_by = None
    instance.lease_until = None
    permanent = isinstance(error, RecoupError)  # PermanentFailure, template errors…
    if not permanent and instance.attempts < MAX_ATTEMPTS:
        instance.status = InstanceStatus.pending
        instance.next_attempt_at = now + backoff(instance.attempts)
        log(
            session,
            Event.action_retry,
            **ctx.log_kwargs(),
            type=instance.type,
            error=message,
            attempt=instance.attempts,
            next_attempt_at=instance.next_attempt_at.isoformat(),
        )
        session.flush()
        return "retried"
    instance.status = InstanceStatus.failed
    instance.finished_at = now
    log(
        session,
        Event.action_failed,
        **ctx.log_kwargs(),
        type=instance.type,
        error=message,
        attempts=instance.attempts,
    )
    _open_failure_task(ctx, message)
    session.flush()
    wake_fees(ctx, now)
    if ctx.plan is not None:
        maybe_close_unrecovered(session, ctx.plan, on=ctx.today)
    return "failed"


def _describe(error: BaseException, env: EnvConfig) -> str:
    """The error in one message for the instance, the log and the task: without the
    configuration's secrets or any URL's credentials (issue 8.5)."""
    text = str(error) or type(error).__name__
    if not isinstance(error, RecoupError):
        text = f"{type(error).__name__}: {text}"
    return env.redact(text)[:2000]


def _open_failure_task(ctx: ActionContext, message: str) -> None:
    """A person looks at what the machine could not do. One task per instance (the unique
    action_instance_id): a second failure of the same instance reuses it."""
    session, instance = ctx.session, ctx.instance
    existing = session.scalar(select(Task).where(Task.action_instance_id == instance.id))
    if existing is not None:
        return
    where = (
        f"plan {instance.plan_id}"
        if instance.plan_id is not None
        else (f"invoice {instance.invoice_id} (reminder)")
    )
    task = Task(
        plan_id=instance.plan_id,
        action_instance_id=instance.id,
        level=instance.level,
        action=instance.action,
        role=FAILURE_ROLE,
        instructions=(
            f"Action {instance.action} ({instance.type}) on {where}, level {instance.level}, "
            f"failed after {instance.attempts} attempt(s): {message}. "
            "Do it by hand or fix the cause, then complete this task."
        ),
        status="open",
        created_on=ctx.today,
    )
    session.add(task)
    session.flush()
    log(
        session,
        Event.task_created,
        **ctx.log_kwargs(),
        task_id=task.id,
        role=FAILURE_ROLE,
        reason="action failed",
    )


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "EXECUTORS",
    "LEASE",
    "MAX_ATTEMPTS",
    "Done",
    "ExecutionStats",
    "Outcome",
    "PermanentFailure",
    "Skipped",
    "backoff",
    "claim_batch",
    "execute_pending",
    "executor_for",
    "guard",
    "lease_duration",
    "process_instance",
    "register",
    "release_leases",
]
