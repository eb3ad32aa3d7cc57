"""Executing automatic action instances: claim, guard, execute, record (R8, R13).

`execute_pending` is an edge, like a worker: it owns its transactions. One transaction claims
a batch of due instances (status `running` with a lease); then each instance runs in its own
transaction that locks the row, checks the debt is still due, performs the effect and records
the outcome. A failure rolls the effect back and is recorded in a fresh transaction: retried
with backoff, or after MAX_ATTEMPTS `failed` with a task for a collector (recoup.domain.retry
decides when).

An attempt is counted when an instance is claimed, in the claiming UPDATE, so a process that
dies in the middle of an action still uses one up. Every executing process holds a liveness
lock named by its lease token (recoup.core.locks.holding): a lease whose holder's lock is
free is taken over at once, without waiting for it to expire (`recover_lost`). The instance
the dead process was executing has its crash counted — after MAX_ATTEMPTS it is `failed`,
with its collector task — and is executed after the rest of its next batch; the others it
had claimed were never started and go back unblamed. One poison action that kills its
process every time never holds back the others.

A channel whose server cannot be reached (TransportError: connection refused, a timeout, an
SMTP 4xx, an HTTP 5xx) is paused for the rest of the batch: the failing instance backs off
over hours, and the channel's other due instances wait until the same time, logged once as
`channel_down`. Those failures do not use up attempts.

Instances of paused plans are not claimed: they stay `pending` with their `next_attempt_at`
and run on the first execution after the plan resumes, with nothing to re-arm. Manual
instances (`next_attempt_at` NULL) are never claimed: people do them through their task.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, and_, case, exists, func, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.context import MANUAL_REQUEST, ActionContext, load_context, manual_request
from recoup.actions.email import close_smtp_connections
from recoup.actions.errors import TransportError
from recoup.actions.notice import RECHECK, WAIT, notice_decision, wake_fees
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.core.errors import RecoupError
from recoup.core.locks import dead_holders, holding
from recoup.domain.enums import (
    CANCELLED_ACCOUNT_STATUS,
    ActionMode,
    ActionType,
    Event,
    InstanceStatus,
    InvoiceStatus,
    PlanStatus,
)
from recoup.domain.retry import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_ATTEMPTS,
    FailureKind,
    GiveUp,
    RetryAt,
    backoff,
    retry_decision,
)
from recoup.log.service import log
from recoup.models import ActionInstance, Plan, Task
from recoup.plans.closing import maybe_close_unrecovered

logger = logging.getLogger(__name__)

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


CHANNELS = {
    ActionType.send_email.value: "email",
    ActionType.send_sms.value: "sms",
    ActionType.send_letter.value: "letter",
    ActionType.retry_payment.value: "billing",
}


def channel_of(action_type: str, action: str) -> str:
    """The server an instance talks to: one per channel, one per webhook action (its url)."""
    if action_type == ActionType.webhook.value:
        return f"webhook {action}"
    return CHANNELS.get(action_type, action_type)


@dataclass
class ChannelDown:
    """A channel paused for the rest of a batch: its server could not be reached."""

    channel: str
    action_type: str
    action: str | None  # a webhook's action code; None: every action of the type
    reason: str  # short: "server unreachable"
    error: str
    retry_at: datetime
    transport_failures: int = 0  # of the instance that failed: how far into the outage
    instances: int = 0  # waiting for retry_at: the failed one and those postponed with it

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "reason": self.reason,
            "error": self.error,
            "retry_at": self.retry_at.isoformat(),
            "instances": self.instances,
        }


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
    return and_(
        ActionInstance.status == InstanceStatus.pending.value,
        ActionInstance.next_attempt_at.is_not(None),
        ActionInstance.next_attempt_at <= now,
    )


def _not_paused() -> Any:
    return or_(
        ActionInstance.plan_id.is_(None),
        ~exists().where(Plan.id == ActionInstance.plan_id, Plan.status == PlanStatus.paused.value),
    )


def find_dead_holders(session: Session, *, token: str, now: datetime) -> set[str]:
    """The lease tokens of running instances whose process is gone (its liveness lock is
    free), leases still unexpired; `token` (this process) excluded."""
    tokens = session.scalars(
        select(ActionInstance.leased_by)
        .where(
            ActionInstance.status == InstanceStatus.running.value,
            ActionInstance.leased_by.is_not(None),
            ActionInstance.leased_by != token,
            ActionInstance.lease_until >= now,
        )
        .distinct()
    ).all()
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return dead_holders(engine, [t for t in tokens if t])


DIED = "died"


def find_lost_holders(session: Session, *, token: str, now: datetime) -> dict[str, str]:
    """Holders whose leases are to be taken over, with why: their process died, or it did
    not finish within its lease (hung)."""
    expired = session.scalars(
        select(ActionInstance.leased_by)
        .where(
            ActionInstance.status == InstanceStatus.running.value,
            ActionInstance.leased_by.is_not(None),
            ActionInstance.leased_by != token,
            ActionInstance.lease_until < now,
        )
        .distinct()
    ).all()
    lost = {t: "did not finish within its lease" for t in expired if t}
    lost.update((t, DIED) for t in find_dead_holders(session, token=token, now=now))
    return lost


def count_held(factory: sessionmaker[Session], *, now: datetime | None = None) -> int:
    """Instances still being executed by another live process (its lease unexpired, its
    liveness lock held)."""
    moment = now or utc_now()
    with factory() as session:
        dead = find_dead_holders(session, token="", now=moment)
        query = (
            select(func.count())
            .select_from(ActionInstance)
            .where(
                ActionInstance.status == InstanceStatus.running.value,
                ActionInstance.lease_until >= moment,
            )
        )
        if dead:
            query = query.where(ActionInstance.leased_by.not_in(sorted(dead)))
        return int(session.scalar(query) or 0)


def _suspects_last() -> Any:
    """The order a batch is executed in: instances that were executing when a process died
    come after the others, so a poison action cannot take the rest of its batch down."""
    return case((ActionInstance.crashes > 0, 1), else_=0)


def claim_batch(session: Session, *, token: str, now: datetime, size: int) -> list[int]:
    """Lease up to `size` due instances to `token`, counting an attempt for each; returns
    their ids in the order to execute them (`_suspects_last`). PostgreSQL skips rows another
    worker holds (row locks taken by the SELECT are kept until the claim commits, and a row
    another claim committed meanwhile is re-checked against `_due` when locked); SQLite has a
    single writer and the conditional UPDATE re-checks."""
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
    claimed = session.execute(
        update(ActionInstance)
        .where(ActionInstance.id.in_(ids), _due(now))
        .values(
            status=InstanceStatus.running.value,
            leased_by=token,
            lease_until=now + lease_duration(),
            attempts=ActionInstance.attempts + 1,
        )
        .returning(ActionInstance.id, ActionInstance.crashes)
        .execution_options(synchronize_session=False)
    ).all()
    return [row.id for row in sorted(claimed, key=lambda r: (r.crashes > 0, r.id))]


@dataclass
class Recovered:
    released: int = 0  # claimed by the lost holder but never started: due again
    retried: int = 0  # the one it was executing: pending again, its crash counted
    failed: int = 0  # the one it was executing, out of attempts: failed, with a task


def recover_lost(
    factory: sessionmaker[Session],
    lost: dict[str, str],
    *,
    env: EnvConfig,
    today: date,
    now: datetime,
    run_id: int | None = None,
) -> Recovered:
    """Take over the leases of holders that are gone (`find_lost_holders`), one transaction
    each. A holder executes its batch in a known order (`claim_batch`), one instance at a
    time: the first of its instances still running is the one it was executing when it died
    — its crash is counted (logged `action_retry`, or past MAX_ATTEMPTS `failed` with a
    collector task) — and the others were never started: they are handed back with their
    claim's attempt given back, due at once."""
    recovered = Recovered()
    for holder, why in sorted(lost.items()):
        with factory() as session, session.begin():
            mine = and_(
                ActionInstance.status == InstanceStatus.running.value,
                ActionInstance.leased_by == holder,
                # a live holder keeps what it holds until each lease runs out
                ActionInstance.lease_until < now if why != DIED else true(),
            )
            culprit = session.scalar(
                select(ActionInstance)
                .where(mine)
                .order_by(_suspects_last(), ActionInstance.id)
                .limit(1)
                .with_for_update()
            )
            if culprit is None or culprit.leased_by != holder:
                continue  # another worker took them over first
            unstarted = session.execute(
                update(ActionInstance)
                .where(mine, ActionInstance.id != culprit.id)
                .values(
                    **_HANDED_BACK,
                )
                .execution_options(synchronize_session=False)
            )
            recovered.released += int(unstarted.rowcount or 0)
            culprit.crashes += 1
            error = f"the process executing it ({holder}) {why}"
            logger.warning(
                "action instance %s taken over: %s (%d other lease(s) handed back)",
                culprit.id,
                error,
                unstarted.rowcount or 0,
            )
            ctx = load_context(session, culprit, env=env, today=today, now=now, run_id=run_id)
            decision = retry_decision(culprit.attempts, FailureKind.crashed, now)
            if isinstance(decision, GiveUp):
                times = "once" if culprit.crashes == 1 else f"{culprit.crashes} times"
                _fail(
                    ctx,
                    f"{error}; the process executing it died {times} "
                    f"in {culprit.attempts} attempt(s)",
                    GiveUp(f"the process executing it died {times}"),
                )
                recovered.failed += 1
                continue
            culprit.status = InstanceStatus.pending
            culprit.leased_by = None
            culprit.lease_until = None
            culprit.error = error
            culprit.next_attempt_at = now  # the others first (_suspects_last), then again
            log(
                session,
                Event.action_retry,
                **ctx.log_kwargs(),
                type=culprit.type,
                kind=FailureKind.crashed.value,
                error=error,
                attempt=culprit.attempts,
                crashes=culprit.crashes,
                next_attempt_at=now.isoformat(),
            )
            recovered.retried += 1
    return recovered


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
                    later = _pause_channel(
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


# An instance handed back unexecuted: pending again, its lease dropped and the attempt its
# claim counted given back.
_HANDED_BACK: dict[str, Any] = {
    "status": InstanceStatus.pending.value,
    "leased_by": None,
    "lease_until": None,
    "attempts": ActionInstance.attempts - 1,
}


def release_leases(factory: sessionmaker[Session], ids: list[int], *, token: str) -> int:
    """Hand back instances leased to `token` and not started: due again at once, for any
    worker, their claim's attempt given back. Returns how many were released."""
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
            .values(
                **_HANDED_BACK,
            )
            .execution_options(synchronize_session=False)
        )
        return int(released.rowcount or 0)


def _pause_channel(
    factory: sessionmaker[Session],
    down: ChannelDown,
    *,
    token: str,
    unstarted: list[int],
    today: date,
    run_id: int | None,
) -> list[int]:
    """The channel's server is down: its other instances wait until `down.retry_at` — those
    of this batch not started (handed back, their attempt given back) and those due before
    then — as far into the outage as the one that failed (`transport_failures`), so they all
    give up together at the horizon. Logged once. Returns the ids of this batch handed back."""
    same = ActionInstance.type == down.action_type
    if down.action is not None:
        same = and_(same, ActionInstance.action == down.action)
    with factory() as session, session.begin():
        shared = down.transport_failures
        outage = case(
            (ActionInstance.transport_failures < shared, shared),
            else_=ActionInstance.transport_failures,
        )
        mine = (
            session.execute(
                update(ActionInstance)
                .where(
                    ActionInstance.id.in_(unstarted),
                    same,
                    ActionInstance.leased_by == token,
                    ActionInstance.status == InstanceStatus.running.value,
                )
                .values(
                    **_HANDED_BACK,
                    next_attempt_at=down.retry_at,
                    transport_failures=outage,
                )
                .returning(ActionInstance.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        waiting = session.execute(
            update(ActionInstance)
            .where(
                same,
                ActionInstance.status == InstanceStatus.pending.value,
                ActionInstance.next_attempt_at.is_not(None),  # manual ones stay with people
                ActionInstance.next_attempt_at < down.retry_at,
            )
            .values(next_attempt_at=down.retry_at, transport_failures=outage)
            .execution_options(synchronize_session=False)
        )
        down.instances = 1 + len(mine) + int(waiting.rowcount or 0)
        logger.warning(
            "%s: %s; %d action(s) will be retried from %s",
            down.channel,
            down.error,
            down.instances,
            down.retry_at.isoformat(),
        )
        log(
            session,
            Event.channel_down,
            on=today,
            run_id=run_id,
            channel=down.channel,
            type=down.action_type,
            reason=down.reason,
            error=down.error,
            retry_at=down.retry_at.isoformat(),
            instances=down.instances,
        )
    return list(mine)


@dataclass(frozen=True)
class _Processed:
    kind: str | None  # the ExecutionStats field to count; None: the lease was lost
    down: ChannelDown | None = None  # a transport failure: the channel is paused


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
) -> _Processed:
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
                return _Processed(None)
            kind = _execute(session, instance, env=env, today=today, now=now(), run_id=run_id)
            session.commit()
            return _Processed(kind)
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
    """Back to pending unexecuted: the claim's attempt is given back."""
    instance.status = InstanceStatus.pending
    instance.leased_by = None
    instance.lease_until = None
    instance.attempts = max(0, instance.attempts - 1)


def _finish(ctx: ActionContext, outcome: Outcome) -> str:
    session, instance = ctx.session, ctx.instance
    request = manual_request(instance)  # read before the result is replaced
    # the attempt was counted when the instance was claimed
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


def failure_kind(error: BaseException) -> FailureKind:
    if isinstance(error, RecoupError):  # PermanentFailure, template errors, bad settings…
        return FailureKind.permanent
    if isinstance(error, TransportError):
        return FailureKind.transport
    return FailureKind.transient


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
) -> _Processed:
    instance = session.get(ActionInstance, instance_id, with_for_update=True)
    if instance is None or instance.status != InstanceStatus.running or instance.leased_by != token:
        return _Processed(None)
    ctx = load_context(session, instance, env=env, today=today, now=now, run_id=run_id)
    message = _describe(error, env)
    kind = failure_kind(error)
    instance.error = message
    instance.leased_by = None
    instance.lease_until = None
    if kind is FailureKind.transport:
        # an outage, not a verdict on the message: the claim's attempt is given back
        instance.attempts = max(0, instance.attempts - 1)
        instance.transport_failures += 1
    else:
        instance.transport_failures = 0  # the server answered
    decision = retry_decision(
        instance.attempts,
        kind,
        now,
        transport_failures=instance.transport_failures,
        jitter=random.uniform(-1.0, 1.0),
    )
    if isinstance(decision, RetryAt):
        instance.status = InstanceStatus.pending
        instance.next_attempt_at = decision.at
        log(
            session,
            Event.action_retry,
            **ctx.log_kwargs(),
            type=instance.type,
            kind=kind.value,
            error=message,
            attempt=instance.attempts,
            transport_failures=instance.transport_failures or None,
            next_attempt_at=decision.at.isoformat(),
        )
        session.flush()
        down = None
        if kind is FailureKind.transport:
            assert isinstance(error, TransportError)
            down = ChannelDown(
                channel=channel_of(instance.type, instance.action),
                action_type=instance.type,
                action=instance.action if instance.type == ActionType.webhook.value else None,
                reason=error.reason,
                error=message,
                retry_at=decision.at,
                transport_failures=instance.transport_failures,
            )
        return _Processed("retried", down)
    _fail(ctx, message, decision)
    return _Processed("failed")


def _fail(ctx: ActionContext, message: str, decision: GiveUp) -> None:
    """`failed` for good: logged, and a task for a collector."""
    session, instance = ctx.session, ctx.instance
    instance.status = InstanceStatus.failed
    instance.error = message
    instance.leased_by = None
    instance.lease_until = None
    instance.finished_at = ctx.now
    log(
        session,
        Event.action_failed,
        **ctx.log_kwargs(),
        type=instance.type,
        error=message,
        attempts=instance.attempts,
        gave_up=decision.reason,
        crashes=instance.crashes or None,
        transport_failures=instance.transport_failures or None,
    )
    _open_failure_task(ctx, message, decision.reason)
    session.flush()
    wake_fees(ctx, ctx.now)
    if ctx.plan is not None:
        maybe_close_unrecovered(session, ctx.plan, on=ctx.today)


def _describe(error: BaseException, env: EnvConfig) -> str:
    """The error in one message for the instance, the log and the task: without the
    configuration's secrets or any URL's credentials (issue 8.5)."""
    text = str(error) or type(error).__name__
    if not isinstance(error, RecoupError | TransportError):  # those say what happened
        text = f"{type(error).__name__}: {text}"
    return env.redact(text)[:2000]


def _open_failure_task(ctx: ActionContext, message: str, why: str) -> None:
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
            f"failed ({why}; {instance.attempts} attempt(s)): {message}. "
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
    "ChannelDown",
    "Done",
    "ExecutionStats",
    "Outcome",
    "PermanentFailure",
    "Skipped",
    "TransportError",
    "backoff",
    "channel_of",
    "claim_batch",
    "count_held",
    "execute_pending",
    "executor_for",
    "find_lost_holders",
    "recover_lost",
    "failure_kind",
    "find_dead_holders",
    "guard",
    "lease_duration",
    "process_instance",
    "register",
    "release_leases",
]
