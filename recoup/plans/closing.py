"""Closing plans: recovered on payment (R8, with R12 restore), unrecovered at the end (R7),
stopped by hand (R10). Services flush; the caller owns the transaction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from recoup.core.clock import utc_now
from recoup.core.log import log_for_plan
from recoup.core.settings import get_settings
from recoup.domain.enums import (
    OPEN_PLAN_STATUSES,
    OPEN_TASK_STATUSES,
    UNFINISHED_INSTANCE_STATUSES,
    Event,
    InstanceStatus,
    InvoiceStatus,
    PlanStatus,
    TaskStatus,
)
from recoup.models import (
    ActionInstance,
    Customer,
    Invoice,
    Plan,
    PolicyRow,
    SettingsRow,
    StatusChange,
    Task,
)


def cancel_pending_work(
    session: Session, plan: Plan, *, on: date, actor: str | None, reason: str
) -> None:
    """Cancel the plan's unfinished action instances and open tasks, each logged."""
    now = utc_now()
    instances = session.scalars(
        select(ActionInstance).where(
            ActionInstance.plan_id == plan.id,
            ActionInstance.status.in_([s.value for s in UNFINISHED_INSTANCE_STATUSES]),
        )
    ).all()
    for instance in instances:
        instance.status = InstanceStatus.cancelled
        instance.error = reason
        instance.finished_at = now
        instance.lease_until = None
        log_for_plan(
            session,
            Event.action_cancelled,
            plan,
            on=on,
            actor=actor,
            level=instance.level,
            action=instance.action,
            reason=reason,
        )
    tasks = session.scalars(
        select(Task).where(
            Task.plan_id == plan.id, Task.status.in_([s.value for s in OPEN_TASK_STATUSES])
        )
    ).all()
    for task in tasks:
        task.status = TaskStatus.cancelled
        task.outcome = reason
        task.completed_at = now
        log_for_plan(
            session,
            Event.task_cancelled,
            plan,
            on=on,
            actor=actor,
            level=task.level,
            action=task.action,
            task_id=task.id,
            reason=reason,
        )


def restore_account_status(session: Session, plan: Plan, *, on: date, actor: str | None) -> None:
    """R12: give back the status this plan changed, unless another open plan also changed it."""
    changes = session.scalars(
        select(StatusChange)
        .where(StatusChange.plan_id == plan.id, StatusChange.restored_at.is_(None))
        .order_by(StatusChange.id)
    ).all()
    if not changes:
        return
    now = utc_now()
    for change in changes:
        change.restored_at = now
    other_open = session.scalar(
        select(StatusChange.id)
        .join(Plan, Plan.id == StatusChange.plan_id)
        .where(
            StatusChange.customer_id == plan.customer_id,
            StatusChange.plan_id != plan.id,
            StatusChange.restored_at.is_(None),
            Plan.status.in_([s.value for s in OPEN_PLAN_STATUSES]),
        )
        .limit(1)
    )
    customer = session.get(Customer, plan.customer_id)
    assert customer is not None
    previous = changes[0].previous_status  # the status before this plan touched it
    if other_open is not None:
        log_for_plan(
            session,
            Event.action_skipped,
            plan,
            on=on,
            actor=actor,
            reason="status not restored: another open plan also changed it",
            status=customer.status,
        )
        # hand the memory of the original status to the plan that still holds it
        session.execute(
            update(StatusChange)
            .where(StatusChange.id == other_open)
            .values(previous_status=previous)
        )
        return
    current = customer.status
    if current == previous:
        return  # the plan's change was a no-op (the status was already set)
    customer.status = previous
    log_for_plan(
        session,
        Event.status_restored,
        plan,
        on=on,
        actor=actor,
        previous=current,
        status=previous,
    )


def close_plan(
    session: Session,
    plan: Plan,
    status: PlanStatus,
    *,
    on: date,
    actor: str | None = None,
    reason: str | None = None,
) -> None:
    if PlanStatus(plan.status).is_final:
        return
    event = {
        PlanStatus.recovered: Event.plan_recovered,
        PlanStatus.unrecovered: Event.plan_unrecovered,
        PlanStatus.stopped: Event.plan_stopped,
    }[status]
    cancel_pending_work(session, plan, on=on, actor=actor, reason=reason or status.value)
    if status is PlanStatus.recovered:
        restore_account_status(session, plan, on=on, actor=actor)
    if plan.status == PlanStatus.paused and plan.paused_on is not None:
        plan.paused_days += max(0, (on - plan.paused_on).days)
    plan.status = status
    plan.closed_on = on
    plan.open_key = None
    plan.next_step_on = None
    if status is PlanStatus.stopped:
        plan.stop_reason = reason
    log_for_plan(
        session,
        event,
        plan,
        on=on,
        actor=actor,
        balance=plan.balance,
        currency=plan.currency,
        reason=reason,
    )
    session.flush()


def customer_plan_balance(
    session: Session, plan: Plan, settings: SettingsRow, today: date
) -> Decimal:
    """Customer mode (R4): eligible invoices of the balance types that have fallen due."""
    types = settings.customer_balance or settings.invoice_types
    rows = session.scalars(
        select(Invoice.amount_due).where(
            Invoice.customer_id == plan.customer_id,
            Invoice.currency == plan.currency,
            Invoice.type.in_(types),
            Invoice.status.in_([InvoiceStatus.open.value, InvoiceStatus.partially_paid.value]),
            Invoice.disputed.is_(False),
            Invoice.due_date <= today,
        )
    ).all()
    return sum((r for r in rows if r > 0), Decimal(0))


def refresh_plans_after_change(
    session: Session, invoice_ids: list[str], *, on: date, actor: str | None = None
) -> list[Plan]:
    """R8: after payments (or re-imported invoices), update the balance of every open plan that
    covers these invoices and close as `recovered` those whose debt is gone. Returns the plans
    closed."""
    if not invoice_ids:
        return []
    settings = get_settings(session)
    open_values = [s.value for s in OPEN_PLAN_STATUSES]
    invoices = session.scalars(select(Invoice).where(Invoice.id.in_(invoice_ids))).all()
    plans: dict[int, Plan] = {}
    by_invoice = session.scalars(
        select(Plan).where(Plan.invoice_id.in_(invoice_ids), Plan.status.in_(open_values))
    ).all()
    for plan in by_invoice:
        plans[plan.id] = plan
    pairs = {(inv.customer_id, inv.currency) for inv in invoices}
    for customer_id, currency in pairs:
        for plan in session.scalars(
            select(Plan).where(
                Plan.customer_id == customer_id,
                Plan.currency == currency,
                Plan.invoice_id.is_(None),
                Plan.status.in_(open_values),
            )
        ):
            plans[plan.id] = plan
    closed: list[Plan] = []
    by_id = {inv.id: inv for inv in invoices}
    for plan in plans.values():
        if plan.invoice_id is not None:
            invoice = by_id[plan.invoice_id]
            plan.balance = (
                invoice.amount_due
                if invoice.status in (InvoiceStatus.open, InvoiceStatus.partially_paid)
                else Decimal(0)
            )
            recovered = plan.balance <= 0
        else:
            plan.balance = customer_plan_balance(session, plan, settings, on)
            policy = session.get(PolicyRow, plan.policy_id)
            threshold = Decimal((policy.min_balance or {}).get(plan.currency, "0")) if policy else 0
            recovered = plan.balance <= 0 or plan.balance < threshold
        if recovered:
            close_plan(session, plan, PlanStatus.recovered, on=on, actor=actor, reason="paid")
            closed.append(plan)
    session.flush()
    return closed


def maybe_close_unrecovered(session: Session, plan: Plan, *, on: date) -> bool:
    """R7: at the end level, once every action and task there is finished, the plan closes
    `unrecovered` if the balance is still due."""
    if plan.status != PlanStatus.active or plan.level is None:
        return False
    policy = session.get(PolicyRow, plan.policy_id)
    if policy is None:
        return False
    end_codes = {lvl.code for lvl in policy.levels if lvl.end}
    if plan.level not in end_codes:
        return False
    if has_pending_work(session, plan.id):
        return False
    if plan.balance <= 0:
        return False
    close_plan(session, plan, PlanStatus.unrecovered, on=on, reason="end level reached")
    return True


def has_pending_work(session: Session, plan_id: int) -> bool:
    unfinished = session.scalar(
        select(ActionInstance.id)
        .where(
            ActionInstance.plan_id == plan_id,
            ActionInstance.status.in_([s.value for s in UNFINISHED_INSTANCE_STATUSES]),
        )
        .limit(1)
    )
    if unfinished is not None:
        return True
    open_task = session.scalar(
        select(Task.id)
        .where(Task.plan_id == plan_id, Task.status.in_([s.value for s in OPEN_TASK_STATUSES]))
        .limit(1)
    )
    return open_task is not None


__all__ = [
    "cancel_pending_work",
    "close_plan",
    "customer_plan_balance",
    "has_pending_work",
    "maybe_close_unrecovered",
    "refresh_plans_after_change",
    "restore_account_status",
]
