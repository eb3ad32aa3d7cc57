"""Executing automatic action instances: claim, guard, execute, record (R8, R13).

`execute_pending` is an edge, like a worker: it owns its transactions. One transaction claims
a batch of due instances (status `running` with a lease, recoup.actions.claims); then each
instance runs in its own transaction that locks the row, checks the debt is still due
(`guard`), performs the effect (the executor of its type, recoup.actions.registry) and records
the outcome (recoup.actions.outcomes). A failure rolls the effect back and is recorded in a
fresh transaction: retried with backoff, or after MAX_ATTEMPTS `failed` with a task for a
collector (recoup.domain.retry decides when, the outcomes apply it).

A channel whose server cannot be reached (TransportError: connection refused, a timeout, an
SMTP 4xx, an HTTP 5xx) is paused for the rest of the batch: the failing instance backs off
over hours, and the channel's other due instances wait until the same time, logged once as
`channel_down`. Those failures do not use up attempts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.claims import (
    claim_batch,
    find_lost_holders,
    pause_channel,
    recover_lost,
    release_leases,
)
from recoup.actions.context import ActionContext, load_context
from recoup.actions.notice import RECHECK, WAIT, notice_decision
from recoup.actions.outcomes import (
    ActionOutcome,
    ChannelDown,
    PermanentFailure,
    Processed,
    Skipped,
    finish,
    record_failure,
)
from recoup.actions.registry import executor_for
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.core.errors import RecoupError
from recoup.core.locks import holding
from recoup.domain.enums import (
    CANCELLED_ACCOUNT_STATUS,
    ActionMode,
    ActionType,
    InstanceStatus,
    InvoiceStatus,
    PlanStatus,
)
from recoup.messages.email import close_smtp_connections
from recoup.messages.errors import TransportError
from recoup.models import ActionInstance

logger = logging.getLogger(__name__)

BATCH_SIZE = 50


@dataclass
class ExecutionStats:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    deferred: int = 0  # released unexecuted (the plan was paused meanwhile)
    released: int = 0  # leased but never started: handed back when asked to stop
    postponed: int = 0  # not tried: their channel's server was down (see channels_down)
    channels_down: dict[str, ChannelDown] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return (
            self.done + self.failed + self.skipped + self.retried + self.deferred + self.postponed
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "retried": self.retried,
            "deferred": self.deferred,
            "released": self.released,
            "postponed": self.postponed,
        }


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
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    processed = 0
    with holding(engine, token):  # others can tell this process is alive while it holds leases
        while (limit is None or processed < limit) and not (stop is not None and stop()):
            size = batch_size if limit is None else min(batch_size, limit - processed)
            moment = now()
            with factory() as session:
                lost = find_lost_holders(session, token=token, now=moment)
            if lost:  # a dead or hung process's work is finished now, not after its lease
                recovered = recover_lost(
                    factory, lost, env=env, today=today, now=moment, run_id=run_id
                )
                stats.failed += recovered.failed
            with factory() as session, session.begin():
                ids = claim_batch(session, token=token, now=moment, size=size)
            if not ids:
                break
            handed_back: set[int] = set()  # postponed with a channel that went down
            for position, instance_id in enumerate(ids):
                if stop is not None and stop():
                    rest = [i for i in ids[position:] if i not in handed_back]
                    stats.released += release_leases(factory, rest, token=token)
                    return stats
                if instance_id in handed_back:
                    continue
                result = _process(
                    factory,
                    instance_id,
                    token=token,
                    env=env,
                    today=today,
                    now=now,
                    run_id=run_id,
                )
                if result.kind is not None:
                    setattr(stats, result.kind, getattr(stats, result.kind) + 1)
                processed += 1
                if on_progress is not None:
                    on_progress(1)
                if result.down is not None:
                    later = pause_channel(
                        factory,
                        result.down,
                        token=token,
                        unstarted=ids[position + 1 :],
                        today=today,
                        run_id=run_id,
                    )
                    handed_back.update(later)
                    stats.postponed += len(later)
                    stats.channels_down[result.down.channel] = result.down
                    if on_progress is not None and later:
                        on_progress(len(later))
    return stats


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
    return _process(
        factory, instance_id, token=token, env=env, today=today, now=now, run_id=run_id
    ).kind


def _process(
    factory: sessionmaker[Session],
    instance_id: int,
    *,
    token: str,
    env: EnvConfig,
    today: date,
    now: Callable[[], datetime],
    run_id: int | None,
) -> Processed:
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
                return Processed(None)
            kind = _execute(session, instance, env=env, today=today, now=now(), run_id=run_id)
            session.commit()
            return Processed(kind)
        except Exception as exc:  # recorded below, in a fresh transaction
            session.rollback()
            error = exc
    assert error is not None
    # a traceback only for the unexpected: a refusal, a bad setting or a network error is
    # said in one line (and recorded in the log with its reason)
    expected = isinstance(error, (RecoupError, TransportError, OSError, httpx.HTTPError))
    logger.warning(
        "action instance %s failed: %s",
        instance_id,
        env.redact(str(error)),
        exc_info=None if expected else error,
    )
    with factory() as session, session.begin():
        return record_failure(
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
        and not ctx.by_hand  # a person asked for it (recoup.actions.manual): do it now
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
        outcome: ActionOutcome = Skipped(reason)
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
    return finish(ctx, outcome)


def guard(ctx: ActionContext) -> str | None:
    """R8: the reason not to act any more, or None when the debt is still due."""
    customer = ctx.customer
    if customer.excluded:
        return "customer is excluded from dunning"
    if customer.status == CANCELLED_ACCOUNT_STATUS:
        return "customer account is cancelled"
    if ctx.plan is not None:
        plan = ctx.plan
        # a person may act by hand on a paused plan (recoup.actions.manual)
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


def _release(instance: ActionInstance) -> None:
    """Back to pending unexecuted: the claim's attempt is given back."""
    instance.status = InstanceStatus.pending
    instance.leased_by = None
    instance.lease_until = None
    instance.attempts = max(0, instance.attempts - 1)


__all__ = [
    "BATCH_SIZE",
    "ExecutionStats",
    "execute_pending",
    "guard",
    "process_instance",
]
