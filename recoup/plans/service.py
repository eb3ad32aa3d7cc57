"""Pause, resume and stop plans by hand or on dispute (R10). Services flush, never commit."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from recoup.core.errors import Conflict, InvalidInput
from recoup.domain.enums import Event, PlanStatus
from recoup.log.service import log_for_plan
from recoup.models import Plan
from recoup.plans import repository
from recoup.plans.closing import close_plan
from recoup.schedule.service import CHECK_NOW


def get_plan(session: Session, plan_id: int) -> Plan:
    """The plan, or NotFound (recoup.plans.repository.get_or_not_found)."""
    return repository.get_or_not_found(session, plan_id)


def check_reason(reason: str) -> str:
    """A pause or a stop says why."""
    if not reason.strip():
        raise InvalidInput("{field} must not be empty", field="reason")
    return reason


def pause_plan(
    session: Session,
    plan: Plan,
    *,
    reason: str,
    until: date | None,
    on: date,
    actor: str | None = None,
) -> None:
    check_reason(reason)
    if plan.status != PlanStatus.active:
        raise Conflict(f"plan {plan.id} is {plan.status}: only an active plan can be paused")
    if until is not None and until <= on:
        raise InvalidInput(f"{{field}} {until} must be after {on}", field="until")
    # a pause dated before the plan opened (a dispute recorded late) counts from the opening:
    # paused days are never more than the plan's life, and never negative
    on = max(on, plan.opened_on) if plan.opened_on is not None else on
    plan.status = PlanStatus.paused
    plan.paused_on = on
    plan.pause_reason = reason
    plan.pause_until = until
    plan.next_step_on = until  # R15: nothing to look at before the until date
    log_for_plan(
        session,
        Event.plan_paused,
        plan,
        on=on,
        actor=actor,
        level=plan.level,
        reason=reason,
        until=until,
    )
    session.flush()


def resume_plan(
    session: Session, plan: Plan, *, on: date, actor: str | None = None, reason: str = "by hand"
) -> None:
    if plan.status != PlanStatus.paused:
        raise Conflict(f"plan {plan.id} is {plan.status}: only a paused plan can be resumed")
    resumed_on = min(on, plan.pause_until) if plan.pause_until else on
    paused = max(0, (resumed_on - plan.paused_on).days) if plan.paused_on else 0
    plan.paused_days += paused
    plan.status = PlanStatus.active
    plan.paused_on = None
    plan.pause_reason = None
    plan.pause_until = None
    plan.promise_amount = plan.promise_made_on = None  # a promise ends with its pause
    plan.next_step_on = CHECK_NOW
    log_for_plan(
        session,
        Event.plan_resumed,
        plan,
        on=on,
        actor=actor,
        level=plan.level,
        reason=reason,
        paused_days=paused,
    )
    session.flush()


def stop_plan(
    session: Session, plan: Plan, *, reason: str, on: date, actor: str | None = None
) -> None:
    check_reason(reason)
    if not plan.is_open:
        raise Conflict(f"plan {plan.id} is {plan.status}: it cannot be stopped")
    close_plan(session, plan, PlanStatus.stopped, on=on, actor=actor, reason=reason)
