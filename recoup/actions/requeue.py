"""`recoup actions retry`: put failed or backed-off action instances back in the queue, after
the cause (a mail server down, a wrong setting) is fixed. A service: it flushes, the CLI
commits. Each instance re-queued is logged (`action_queued`, `details.retry: true`, with what
it was); nothing else is touched.

- Pending instances waiting out a backoff are due at once.
- With `failed`: failed instances start again from a fresh budget of attempts — except those
  whose collector task a person has claimed or completed (they are doing or did it by hand)
  and those whose plan has closed (the history of a closed plan stays as it ran, R14).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from recoup.domain.enums import OPEN_PLAN_STATUSES, Event, InstanceStatus, TaskStatus
from recoup.log.service import log
from recoup.models import ActionInstance, Plan, Task

PERSON_ON_IT = (TaskStatus.claimed.value, TaskStatus.completed.value)


@dataclass
class Requeued:
    failed: int = 0  # failed instances queued again
    backed_off: int = 0  # pending instances made due at once
    kept: list[dict[str, Any]] = field(default_factory=list)  # failed, left as they are: why

    @property
    def total(self) -> int:
        return self.failed + self.backed_off

    def as_dict(self) -> dict[str, Any]:
        return {
            "requeued": self.total,
            "failed": self.failed,
            "backed_off": self.backed_off,
            "kept": self.kept,
        }


def requeue(
    session: Session,
    *,
    now: datetime,
    on: date,
    actor: str,
    failed: bool = False,
    action: str | None = None,
    since: date | None = None,
) -> Requeued:
    """Make backed-off instances due at `now`, and with `failed` failed ones too. `action`:
    only that action code; `since`: only instances queued for that business date or later."""
    statuses = [InstanceStatus.pending.value] + ([InstanceStatus.failed.value] if failed else [])
    query = select(ActionInstance).where(
        ActionInstance.status.in_(statuses),
        or_(
            ActionInstance.status == InstanceStatus.failed.value,
            # waiting out a backoff; a manual one (no next attempt) is a person's to do
            ActionInstance.next_attempt_at > now,
        ),
    )
    if action is not None:
        query = query.where(ActionInstance.action == action)
    if since is not None:
        query = query.where(ActionInstance.due_on >= since)
    result = Requeued()
    for instance in session.scalars(query.order_by(ActionInstance.id).with_for_update()):
        if instance.status == InstanceStatus.pending:
            if not (instance.error or instance.attempts or instance.transport_failures):
                continue  # scheduled, not backed off
            result.backed_off += 1
            _log(session, instance, on=on, actor=actor, previous="pending")
            instance.next_attempt_at = now
            continue
        reason = _keep_failed(session, instance)
        if reason is not None:
            result.kept.append({"id": instance.id, "action": instance.action, "reason": reason})
            continue
        result.failed += 1
        _log(session, instance, on=on, actor=actor, previous="failed")
        instance.status = InstanceStatus.pending
        instance.attempts = 0
        instance.crashes = 0
        instance.transport_failures = 0
        instance.finished_at = None
        instance.next_attempt_at = now
    session.flush()
    return result


def _keep_failed(session: Session, instance: ActionInstance) -> str | None:
    task = session.scalar(select(Task).where(Task.action_instance_id == instance.id))
    if task is not None and task.status in PERSON_ON_IT:
        return f"its task {task.id} is {task.status}: a person has it"
    if instance.plan_id is not None:
        plan = session.get(Plan, instance.plan_id)
        if plan is not None and plan.status not in {s.value for s in OPEN_PLAN_STATUSES}:
            return f"plan {plan.id} is {plan.status}"
    return None


def _log(
    session: Session, instance: ActionInstance, *, on: date, actor: str, previous: str
) -> None:
    log(
        session,
        Event.action_queued,
        on=on,
        actor=actor,
        customer_id=instance.customer_id,
        invoice_id=instance.invoice_id,
        plan_id=instance.plan_id,
        level=instance.level,
        action=instance.action,
        type=instance.type,
        instance_id=instance.id,
        retry=True,
        previous_status=previous,
        previous_error=instance.error,
        previous_attempts=instance.attempts,
        previous_next_attempt_at=(
            instance.next_attempt_at.isoformat() if instance.next_attempt_at else None
        ),
    )


__all__ = ["Requeued", "requeue"]
