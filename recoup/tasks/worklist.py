"""The collector's work list (Openbravo's task list): each task with what a person needs to act
on it — the customer and their phone, the invoices, the balance, how late it is — and, for one
task, its plan's invoices and history. Queries only; nothing here changes anything."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from recoup.core.errors import NotFound
from recoup.domain.enums import OPEN_TASK_STATUSES, PlanStatus
from recoup.models import ActionInstance, Customer, Invoice, LogEntry, Plan, PlanInvoice, Task

WAITING = tuple(s.value for s in OPEN_TASK_STATUSES)  # what `recoup tasks` shows by default


@dataclass(frozen=True)
class WorkItem:
    task: Task
    plan: Plan | None
    customer: Customer | None
    invoice_ids: tuple[str, ...]
    days_overdue: int | None  # R1 on the business date asked for; None once the plan closed


@dataclass(frozen=True)
class TaskDetail:
    item: WorkItem
    invoices: list[Invoice] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)


def days_overdue(plan: Plan, today: date) -> int | None:
    """R1 for an open plan: today − its anchor date, less the days it spent paused (the
    current pause too)."""
    if PlanStatus(plan.status).is_final:
        return None
    paused = plan.paused_days
    if plan.status == PlanStatus.paused and plan.paused_on is not None:
        paused += max(0, (today - plan.paused_on).days)
    return (today - plan.anchor_date).days - paused


def work_list(
    session: Session,
    *,
    today: date,
    statuses: Collection[str] | None = WAITING,
    role: str | None = None,
    claimed_by: str | None = None,
    task_ids: Sequence[int] | None = None,
) -> list[WorkItem]:
    """Tasks, oldest first, with their plan, customer and invoices (a few queries for the
    whole list, not one per task). `statuses=None`: every status."""
    query = (
        select(Task, Plan, Customer, ActionInstance.invoice_id)
        .outerjoin(Plan, Plan.id == Task.plan_id)
        .outerjoin(ActionInstance, ActionInstance.id == Task.action_instance_id)
        # a task of a reminder level has no plan: its action instance names the customer
        .outerjoin(
            Customer, Customer.id == func.coalesce(Plan.customer_id, ActionInstance.customer_id)
        )
        .options(lazyload(Plan.policy))
        .order_by(Task.created_on, Task.created_at, Task.id)
    )
    if statuses is not None:
        query = query.where(Task.status.in_(list(statuses)))
    if role:
        query = query.where(Task.role == role)
    if claimed_by:
        query = query.where(Task.claimed_by == claimed_by)
    if task_ids is not None:
        query = query.where(Task.id.in_(list(task_ids)))
    rows = session.execute(query).all()
    customer_plans = sorted({p.id for _t, p, _c, _i in rows if p is not None and not p.invoice_id})
    joined: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(customer_plans), 1000):
        for plan_id, invoice_id in session.execute(
            select(PlanInvoice.plan_id, PlanInvoice.invoice_id)
            .where(PlanInvoice.plan_id.in_(customer_plans[start : start + 1000]))
            .order_by(PlanInvoice.joined_on, PlanInvoice.invoice_id)
        ):
            joined[plan_id].append(invoice_id)
    items = []
    for task, plan, customer, instance_invoice in rows:
        if plan is None:
            invoice_ids: tuple[str, ...] = (instance_invoice,) if instance_invoice else ()
        elif plan.invoice_id:
            invoice_ids = (plan.invoice_id,)
        else:
            invoice_ids = tuple(joined.get(plan.id, ()))
        overdue = days_overdue(plan, today) if plan is not None else None
        items.append(WorkItem(task, plan, customer, invoice_ids, overdue))
    return items


def task_detail(session: Session, task_id: int, *, today: date) -> TaskDetail:
    """One task with its plan's invoices and history (the plan's log, oldest first)."""
    found = work_list(session, today=today, statuses=None, task_ids=[task_id])
    if not found:
        raise NotFound(f"task {task_id} not found")
    item = found[0]
    invoices = (
        list(
            session.scalars(
                select(Invoice)
                .options(lazyload(Invoice.customer))
                .where(Invoice.id.in_(item.invoice_ids))
                .order_by(Invoice.due_date, Invoice.id)
            )
        )
        if item.invoice_ids
        else []
    )
    if item.plan is not None:
        history = select(LogEntry).where(LogEntry.plan_id == item.plan.id)
    else:  # a reminder's task: what happened to its invoice
        history = select(LogEntry).where(LogEntry.invoice_id.in_(item.invoice_ids or ("",)))
    log = list(session.scalars(history.order_by(LogEntry.id)))
    return TaskDetail(item, invoices, log)


__all__ = ["WAITING", "TaskDetail", "WorkItem", "days_overdue", "task_detail", "work_list"]
