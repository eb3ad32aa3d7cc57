"""What an action instance looks like to the faces: the rows of a plan's actions (`recoup plan
show ID --json`, `actions`), later the API and the plan page."""

from __future__ import annotations

from typing import Any

from recoup.core.schemas import Schema


class ActionInstanceRead(Schema):
    """One action of a plan's level, as queued and executed: its status, the attempts used and
    the last error (None once it is done)."""

    id: int
    level: str
    action: str
    type: str
    status: str
    attempts: int
    error: str | None


class ManualActionRead(Schema):
    """What a manual action on a plan came to (`recoup plan email|letter|status ID --json`):
    its instance, and `status` done, skipped, pending (a worker retries it at
    `next_attempt_at`) or failed; `result` what the executor reported, without the request."""

    instance_id: int
    plan_id: int
    kind: str
    level: str
    action: str
    status: str
    result: dict[str, Any]
    error: str | None
    next_attempt_at: str | None


class ManualOptionRead(Schema):
    """One kind of manual action on a plan (`email`, `letter`, `status`): the current level's
    action it would use, whether it can be done now, and if not why."""

    kind: str
    action: str | None
    available: bool
    reason: str | None


class ManualActionCreate(Schema):
    """A manual action by a person: `template`, another active template of the channel (an
    email or a letter; default: the level action's); `status`, the account status to set (a
    status change; default: the level action's)."""

    template: str | None = None
    status: str | None = None


__all__ = ["ActionInstanceRead", "ManualActionCreate", "ManualActionRead", "ManualOptionRead"]
