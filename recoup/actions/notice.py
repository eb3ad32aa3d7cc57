"""Fees follow a notice (SPEC §3): on a level with `send_*` actions, a late fee or interest
waits for them and is skipped, with the reason, when none of them was delivered (no address,
a failed send), unless the fee action says `without_notice: true`. A level with no `send_*`
action charges its fees as before.

Both halves look at the instances of the fee's own step (its plan, or a reminder's invoice,
and its level), and cost nothing to instances that are neither fees nor sends:

- `notice_decision(ctx)`, when a fee runs: wait (a send of its step is unfinished: pending,
  backing off, running, or left to a person's task), skip (nothing was delivered), or charge.
  A waiting fee stays `pending`, parked until RECHECK from now (not tried again and again
  while its send backs off).
- `wake_fees(ctx, now)`, when a send finishes (done, skipped or failed): the
  fees parked on its step are due again at once, so a run charges them in the same pass.
  RECHECK is only the fallback (a send finished by a person's task, a race between workers).

A claim condition (NOT EXISTS an unfinished send) would say the same in one place, but it is
evaluated for every due row of every claim: it made claiming a large queue three times slower
on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update

from recoup.actions.context import ActionContext
from recoup.domain.enums import ActionType, InstanceStatus
from recoup.models import ActionInstance

FEE_TYPES = (
    ActionType.late_fee_fixed.value,
    ActionType.late_fee_percent.value,
    ActionType.interest.value,
)
SEND_TYPES = (
    ActionType.send_email.value,
    ActionType.send_letter.value,
    ActionType.send_sms.value,
)

WAIT: Literal["wait"] = "wait"


RECHECK = timedelta(minutes=10)


def step_instances(query: Any, instance: ActionInstance) -> Any:
    """The other instances of `instance`'s step: same plan (a reminder: same invoice), level."""
    query = query.where(ActionInstance.level == instance.level, ActionInstance.id != instance.id)
    if instance.plan_id is not None:
        return query.where(ActionInstance.plan_id == instance.plan_id)
    return query.where(
        ActionInstance.plan_id.is_(None), ActionInstance.invoice_id == instance.invoice_id
    )


def wake_fees(ctx: ActionContext, now: datetime) -> None:
    """A send of the step has finished: its parked fees are due now (one indexed update;
    none when the send is its level's only action)."""
    instance = ctx.instance
    if instance.type not in SEND_TYPES:
        return
    if ctx.level is not None and not ctx.by_hand and len(ctx.level.actions or []) < 2:
        return
    ctx.session.execute(
        step_instances(update(ActionInstance), instance)
        .where(
            ActionInstance.type.in_(FEE_TYPES),
            ActionInstance.status == InstanceStatus.pending.value,
            ActionInstance.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


def _notices(ctx: ActionContext) -> list[ActionInstance]:
    """The send instances of the fee's step, in the order they were queued."""
    query = select(ActionInstance).where(ActionInstance.type.in_(SEND_TYPES))
    query = step_instances(query, ctx.instance).order_by(ActionInstance.id)
    return list(ctx.session.scalars(query))


def _why(notice: ActionInstance) -> str:
    reason = (notice.result or {}).get("reason") or notice.error
    return f"{notice.action} {notice.status}" + (f" ({reason})" if reason else "")


def notice_decision(ctx: ActionContext) -> tuple[str, dict[str, Any]] | Literal["wait"] | None:
    """For a fee or interest instance: WAIT while a notice of its level is unfinished,
    (reason, details) to skip it when none was delivered, None to charge."""
    action = ctx.action
    if action is None or action.type not in FEE_TYPES:
        return None
    if (action.params or {}).get("without_notice") is True:
        return None
    notices = _notices(ctx)
    if not notices:  # a level with no send action charges as before
        return None
    if any(n.is_unfinished for n in notices):
        return WAIT
    if any(n.status == InstanceStatus.done for n in notices):
        return None
    reason = "no notice was delivered: " + "; ".join(_why(n) for n in notices)
    return reason, {"notices": [n.action for n in notices]}


__all__ = [
    "FEE_TYPES",
    "RECHECK",
    "SEND_TYPES",
    "WAIT",
    "notice_decision",
    "step_instances",
    "wake_fees",
]
