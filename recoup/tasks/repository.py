"""Every query of tasks. The collector's work list (Openbravo's task list): each task with what
a person needs to act on it — the customer and their phone, the invoices, the balance, how late
it is — and, for one task, its plan's invoices and history; a task by id; a plan's open tasks.
Queries only; nothing here changes anything."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, literal, select, tuple_
from sqlalchemy.orm import Session, lazyload

from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import DEFAULT_LIMIT, Keyset, check_limit, decode_cursor
from recoup.domain.enums import OPEN_TASK_VALUES, PlanStatus
from recoup.log import repository as log_repository
from recoup.models import ActionInstance, Customer, Invoice, LogEntry, Plan, PlanInvoice, Task

WAITING = OPEN_TASK_VALUES  # what `recoup tasks` shows by default


def get_or_not_found(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def open_of_plan(session: Session, plan_id: int) -> list[Task]:
    """The plan's open (and claimed) tasks."""
    return list(session.scalars(select(Task).where(Task.plan_id == plan_id, Task.is_open)))


def has_open(session: Session, plan_id: int) -> bool:
    found = session.scalar(select(Task.id).where(Task.plan_id == plan_id, Task.is_open).limit(1))
    return found is not None


def count_waiting(session: Session, *, roles: Collection[str] | None = None) -> int:
    """How many tasks wait for people (open and claimed) for these roles (None: any role): the
    back office's counter."""
    query = select(func.count(Task.id)).where(Task.is_open)
    if roles is not None:
        query = query.where(Task.role.in_(list(roles)))
    return int(session.scalar(query) or 0)


def page(
    session: Session,
    *,
    statuses: Collection[str] | None = WAITING,
    role: str | None = None,
    roles: Collection[str] | None = None,
    claimed_by: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    today: date,
    before: bool = False,
) -> tuple[list[WorkItem], str | None]:
    """One page of the work list (oldest first) and the cursor of the next (None: the last);
    `before`: the page before the cursor's task."""
    limit = check_limit(limit)
    after = None
    if cursor is not None:
        key = decode_cursor(cursor)
        if len(key) != 3 or not all(isinstance(part, str | int) for part in key):
            raise InvalidInput("{field}: not a cursor this list gave out", field="cursor")
        after = (date.fromisoformat(str(key[0])), datetime.fromisoformat(str(key[1])), int(key[2]))
    items = work_list(
        session,
        today=today,
        statuses=statuses,
        role=role,
        roles=roles,
        claimed_by=claimed_by,
        after=after,
        limit=limit + 1,
        before=before,
    )

    def sort_key(item: WorkItem) -> list[object]:
        return [item.task.created_on, item.task.created_at, item.task.id]

    return Keyset(before=before).page(items, limit, sort_key)


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
    if not plan.is_open:
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
    roles: Collection[str] | None = None,
    claimed_by: str | None = None,
    task_ids: Sequence[int] | None = None,
    after: tuple[date, datetime, int] | None = None,
    limit: int | None = None,
    before: bool = False,
) -> list[WorkItem]:
    """Tasks, oldest first, with their plan, customer and invoices (a few queries for the
    whole list, not one per task). `statuses=None`: every status; `roles`: only tasks for one
    of these roles (the back office's 'my roles'). `before`: the tasks before `after` instead,
    newest first (`Keyset`)."""
    keyset = Keyset(before=before)
    query = (
        select(Task, Plan, Customer, ActionInstance.invoice_id)
        .outerjoin(Plan, Plan.id == Task.plan_id)
        .outerjoin(ActionInstance, ActionInstance.id == Task.action_instance_id)
        # a task of a reminder level has no plan: its action instance names the customer
        .outerjoin(
            Customer, Customer.id == func.coalesce(Plan.customer_id, ActionInstance.customer_id)
        )
        .options(lazyload(Plan.policy))
        .order_by(*keyset.order(Task.created_on, Task.created_at, Task.id))
    )
    if statuses is not None:
        query = query.where(Task.status.in_(list(statuses)))
    if role:
        query = query.where(Task.role == role)
    if roles is not None:
        query = query.where(Task.role.in_(list(roles)))
    if claimed_by:
        query = query.where(Task.claimed_by == claimed_by)
    if task_ids is not None:
        query = query.where(Task.id.in_(list(task_ids)))
    if after is not None:
        on, at, task_id = after
        key = tuple_(Task.created_on, Task.created_at, Task.id)
        query = query.where(
            keyset.past(
                key,
                tuple_(
                    literal(on, Task.created_on.type),
                    literal(at, Task.created_at.type),
                    literal(task_id, Task.id.type),
                ),
            )
        )
    if limit is not None:
        query = query.limit(limit)
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
        log = log_repository.for_plan(session, item.plan.id)
    else:  # a reminder's task: what happened to its invoice
        log = log_repository.for_invoices(session, item.invoice_ids)
    return TaskDetail(item, invoices, log)


def waited(task: Task, today: date, now: datetime) -> str:
    """How long a task has waited ("3 d", "5 h", "12 min"): in business days once a day has
    passed, else by the clock. A finished task: how long it waited until then."""
    if task.completed_at is not None:
        return _span((task.completed_at - task.created_at).total_seconds())
    days = (today - task.created_on).days
    if days >= 1:
        return f"{days} d"
    return _span((now - task.created_at).total_seconds())


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 2 * 86400:
        return f"{int(seconds // 86400)} d"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 60)} min"


__all__ = [
    "WAITING",
    "TaskDetail",
    "WorkItem",
    "count_waiting",
    "days_overdue",
    "get_or_not_found",
    "has_open",
    "open_of_plan",
    "page",
    "task_detail",
    "waited",
    "work_list",
]
