"""Fees follow a notice (SPEC §3): on a level with `send_*` actions, a late fee or interest
waits for them and is skipped, with the reason, when none of them was delivered (no address,
a failed send), unless the fee action says `without_notice: true`. A level with no `send_*`
action charges its fees as before.

Two halves of one rule, both about the instances of the fee's own step (its plan, or a
reminder's invoice, and its level):

- `notice_settled(session)` is a condition of the claim: a fee whose level still has an
  unfinished send (pending, backing off, running, or waiting for a person's task) is not
  claimed, so it never runs before its notice, and it stays `pending` without being tried
  again and again while the send retries.
- `notice_decision(ctx)`, when the fee runs: wait (a send came back to pending after the
  claim), skip (nothing was delivered), or go on and charge.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import and_, exists, false, or_, select
from sqlalchemy.orm import Session, aliased

from recoup.actions.context import ActionContext
from recoup.domain.enums import UNFINISHED_INSTANCE_STATUSES, ActionType, InstanceStatus
from recoup.models import ActionInstance, ActionRow

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
_UNFINISHED = tuple(status.value for status in UNFINISHED_INSTANCE_STATUSES)

WAIT: Literal["wait"] = "wait"


def _without_notice_codes(session: Session) -> list[str]:
    """Fee actions that do not wait for a notice (a read of the small actions table)."""
    rows = session.execute(
        select(ActionRow.code, ActionRow.params).where(ActionRow.type.in_(FEE_TYPES))
    )
    return [code for code, params in rows if (params or {}).get("without_notice") is True]


def notice_settled(session: Session) -> Any:
    """Claim condition: the instance is no fee waiting for an unfinished send of its step."""
    send = aliased(ActionInstance)
    unfinished = and_(
        send.level == ActionInstance.level,
        send.type.in_(SEND_TYPES),
        send.status.in_(_UNFINISHED),
    )
    of_plan = and_(
        ActionInstance.plan_id.is_not(None),
        exists().where(unfinished, send.plan_id == ActionInstance.plan_id),
    )
    of_reminder = and_(
        ActionInstance.plan_id.is_(None),
        exists().where(
            unfinished, send.plan_id.is_(None), send.invoice_id == ActionInstance.invoice_id
        ),
    )
    exempt = _without_notice_codes(session)
    return or_(
        ActionInstance.type.not_in(FEE_TYPES),
        ActionInstance.action.in_(exempt) if exempt else false(),
        ~or_(of_plan, of_reminder),
    )


def _notices(ctx: ActionContext) -> list[ActionInstance]:
    """The send instances of the fee's step, in the order they were queued."""
    instance = ctx.instance
    query = select(ActionInstance).where(
        ActionInstance.level == instance.level,
        ActionInstance.type.in_(SEND_TYPES),
        ActionInstance.id != instance.id,
    )
    if instance.plan_id is not None:
        query = query.where(ActionInstance.plan_id == instance.plan_id)
    else:
        query = query.where(
            ActionInstance.plan_id.is_(None), ActionInstance.invoice_id == instance.invoice_id
        )
    return list(ctx.session.scalars(query.order_by(ActionInstance.id)))


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
    if any(n.status in _UNFINISHED for n in notices):
        return WAIT
    if any(n.status == InstanceStatus.done for n in notices):
        return None
    reason = "no notice was delivered: " + "; ".join(_why(n) for n in notices)
    return reason, {"notices": [n.action for n in notices]}


__all__ = ["FEE_TYPES", "SEND_TYPES", "WAIT", "notice_decision", "notice_settled"]
