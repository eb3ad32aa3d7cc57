"""What executing an action instance comes to, and recording it (R8, R13).

An executor returns `Done(result)` or `Skipped(reason)` (an `ActionOutcome`), or raises:
`PermanentFailure` (or any RecoupError: a refusal, a bad setting) fails at once, a
TransportError (the channel's server is down) backs off over hours and pauses the channel,
anything else is retried a few times. `finish` records a Done or a Skipped; `record_failure`
classifies the error (`failure_kind`) and applies the pure decision of recoup.domain.retry:
pending again with its next attempt, or `fail` — `failed` for good, logged, with a task for a
collector.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from recoup.actions.context import MANUAL_REQUEST, ActionContext, load_context, manual_request
from recoup.actions.notice import wake_fees
from recoup.actions.repository import failure_task
from recoup.core.env import EnvConfig
from recoup.core.errors import RecoupError
from recoup.domain.enums import ActionType, Event, InstanceStatus
from recoup.domain.retry import FailureKind, GiveUp, RetryAt, retry_decision
from recoup.log.service import log
from recoup.messages.errors import TransportError
from recoup.models import ActionInstance, Task
from recoup.plans.closing import maybe_close_unrecovered

FAILURE_ROLE = "collector"


@dataclass(frozen=True)
class Done:
    result: dict[str, Any] = field(default_factory=dict)
    reminder_sent: bool = False  # an email or message actually went out for a reminder


@dataclass(frozen=True)
class Skipped:
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


ActionOutcome = Done | Skipped


class PermanentFailure(RecoupError):
    """An error retrying cannot fix (bad configuration, refused recipient): fail at once."""


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


@dataclass(frozen=True)
class Processed:
    """What became of one leased instance."""

    kind: str | None  # the ExecutionStats field to count; None: the lease was lost
    down: ChannelDown | None = None  # a transport failure: the channel is paused


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


def finish(ctx: ActionContext, outcome: ActionOutcome) -> str:
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


def record_failure(
    session: Session,
    instance_id: int,
    error: BaseException,
    *,
    token: str,
    env: EnvConfig,
    today: date,
    now: datetime,
    run_id: int | None,
) -> Processed:
    instance = session.get(ActionInstance, instance_id, with_for_update=True)
    if instance is None or instance.status != InstanceStatus.running or instance.leased_by != token:
        return Processed(None)
    ctx = load_context(session, instance, env=env, today=today, now=now, run_id=run_id)
    message = describe(error, env)
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
        return Processed("retried", down)
    fail(ctx, message, decision)
    return Processed("failed")


def fail(ctx: ActionContext, message: str, decision: GiveUp) -> None:
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


def describe(error: BaseException, env: EnvConfig) -> str:
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
    existing = failure_task(session, instance.id)
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
    "FAILURE_ROLE",
    "ActionOutcome",
    "ChannelDown",
    "Done",
    "PermanentFailure",
    "Processed",
    "Skipped",
    "channel_of",
    "describe",
    "fail",
    "failure_kind",
    "finish",
    "record_failure",
]
