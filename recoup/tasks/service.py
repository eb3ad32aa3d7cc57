"""Tasks for people (R6): claim, release and complete. Completing one lets the plan move on."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from recoup.core.clock import utc_now
from recoup.core.errors import Conflict, InvalidInput
from recoup.domain.enums import SYSTEM_ACTOR, Event, InstanceStatus, PlanStatus, TaskStatus
from recoup.log.service import log
from recoup.models import ActionInstance, Plan, Task
from recoup.schedule.service import CHECK_NOW


def _plan_refs(session: Session, task: Task) -> dict[str, object]:
    plan = session.get(Plan, task.plan_id) if task.plan_id else None
    return {
        "customer_id": plan.customer_id if plan else None,
        "invoice_id": plan.invoice_id if plan else None,
        "plan_id": task.plan_id,
        "level": task.level,
        "action": task.action,
    }


def claim_task(
    session: Session, task: Task, *, user: str, on: date, reason: str | None = None
) -> None:
    if user == SYSTEM_ACTOR:
        raise InvalidInput(
            "claiming a task needs a person: pass {field} NAME or set RECOUP_USER", field="user"
        )
    if task.status != TaskStatus.open:
        who = f" by {task.claimed_by}" if task.claimed_by else ""
        raise Conflict(f"task {task.id} is {task.status}{who}: only an open task can be claimed")
    task.status = TaskStatus.claimed
    task.claimed_by = user
    task.claimed_at = utc_now()
    log(
        session,
        Event.task_claimed,
        on=on,
        actor=user,
        task_id=task.id,
        reason=reason,
        **_plan_refs(session, task),
    )
    session.flush()


def complete_task(
    session: Session,
    task: Task,
    *,
    user: str,
    on: date,
    outcome: str | None = None,
    reason: str | None = None,
) -> None:
    if user == SYSTEM_ACTOR:
        raise InvalidInput(
            "completing a task needs a person: pass {field} NAME or set RECOUP_USER", field="user"
        )
    if not task.is_open:
        raise Conflict(f"task {task.id} is {task.status}: it cannot be completed")
    if task.status == TaskStatus.claimed and task.claimed_by not in (None, user):
        raise Conflict(f"task {task.id} is claimed by {task.claimed_by}, not {user}")
    now = utc_now()
    task.status = TaskStatus.completed
    task.claimed_by = task.claimed_by or user
    task.completed_at = now
    task.outcome = outcome
    if task.action_instance_id is not None:
        instance = session.get(ActionInstance, task.action_instance_id)
        if instance is not None and instance.is_unfinished:
            instance.status = InstanceStatus.done
            instance.finished_at = now
            instance.result = {"task_id": task.id, "completed_by": user, "outcome": outcome}
    log(
        session,
        Event.task_completed,
        on=on,
        actor=user,
        task_id=task.id,
        outcome=outcome,
        reason=reason,
        **_plan_refs(session, task),
    )
    plan = session.get(Plan, task.plan_id) if task.plan_id else None
    if plan is not None and plan.status == PlanStatus.active:
        plan.next_step_on = CHECK_NOW  # the plan may move on at the next run
    session.flush()


def release_task(
    session: Session, task: Task, *, user: str, on: date, note: str | None = None
) -> None:
    """A claimed task back to open, for someone else to take. Anyone may release it (the
    claimer is away, a manager reassigns): the log says who released it and whose it was."""
    if user == SYSTEM_ACTOR:
        raise InvalidInput(
            "releasing a task needs a person: pass {field} NAME or set RECOUP_USER", field="user"
        )
    if task.status != TaskStatus.claimed:
        raise Conflict(f"task {task.id} is {task.status}: only a claimed task can be released")
    previous = task.claimed_by
    task.status = TaskStatus.open
    task.claimed_by = None
    task.claimed_at = None
    log(
        session,
        Event.task_released,
        on=on,
        actor=user,
        task_id=task.id,
        claimed_by=previous,
        by_claimer=previous == user,
        note=note,
        **_plan_refs(session, task),
    )
    session.flush()
