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

from sqlalchemy.orm import Session

from recoup.actions.repository import failure_task, to_requeue
from recoup.domain.enums import Event, InstanceStatus, TaskStatus
from recoup.log.service import log
from recoup.models import ActionInstance, Plan

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
    result = Requeued()
    for instance in to_requeue(session, now=now, failed=failed, action=action, since=since):
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
    task = failure_task(session, instance.id)
    if task is not None and task.status in PERSON_ON_IT:
        return f"its task {task.id} is {task.status}: a person has it"
    if instance.plan_id is not None:
        plan = session.get(Plan, instance.plan_id)
        if plan is not None and not plan.is_open:
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
