"""Queries on action instances (the lease SQL is in recoup.actions.claims, the step queries of
fees-follow-a-notice in recoup.actions.notice)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.core.schemas import check_limit, decode_cursor, encode_cursor
from recoup.domain.enums import InstanceStatus
from recoup.models import ActionInstance, Task


def get_or_not_found(session: Session, instance_id: int) -> ActionInstance:
    instance = session.get(ActionInstance, instance_id)
    if instance is None:
        raise NotFound(f"no action instance {instance_id}")
    return instance


def list_instances(
    session: Session,
    *,
    plan_id: int | None = None,
    status: str | None = None,
    action: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> tuple[list[ActionInstance], str | None]:
    """Action instances in the order they were queued, filtered; `limit`: at most that many,
    with the cursor of the next page (None: the last page)."""
    query = select(ActionInstance).order_by(ActionInstance.id)
    if plan_id is not None:
        query = query.where(ActionInstance.plan_id == plan_id)
    if status is not None:
        query = query.where(ActionInstance.status == status)
    if action is not None:
        query = query.where(ActionInstance.action == action)
    if cursor is not None:
        query = query.where(ActionInstance.id > int(decode_cursor(cursor)[0]))
    if limit is None:
        return list(session.scalars(query)), None
    rows = list(session.scalars(query.limit(check_limit(limit) + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor([rows[-1].id])


def count_with_status(session: Session, status: str) -> int:
    """How many action instances have `status` (the dashboard's failed actions)."""
    return int(
        session.scalar(select(func.count(ActionInstance.id)).where(ActionInstance.status == status))
        or 0
    )


def to_requeue(
    session: Session,
    *,
    now: datetime,
    failed: bool,
    action: str | None = None,
    since: date | None = None,
) -> list[ActionInstance]:
    """What `actions retry` looks at, locked: pending instances waiting out a backoff (a manual
    one, with no next attempt, is a person's to do), and with `failed` the failed ones;
    `action`: only that code; `since`: queued for that business date or later."""
    statuses = [InstanceStatus.pending.value] + ([InstanceStatus.failed.value] if failed else [])
    query = select(ActionInstance).where(
        ActionInstance.status.in_(statuses),
        or_(
            ActionInstance.status == InstanceStatus.failed.value,
            ActionInstance.next_attempt_at > now,
        ),
    )
    if action is not None:
        query = query.where(ActionInstance.action == action)
    if since is not None:
        query = query.where(ActionInstance.due_on >= since)
    return list(session.scalars(query.order_by(ActionInstance.id).with_for_update()))


def failure_task(session: Session, instance_id: int) -> Task | None:
    """The collector task opened when the instance failed (one per instance)."""
    return session.scalar(select(Task).where(Task.action_instance_id == instance_id))


__all__ = [
    "count_with_status",
    "failure_task",
    "get_or_not_found",
    "list_instances",
    "to_requeue",
]
