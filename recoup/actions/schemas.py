"""What an action instance looks like to the faces: the rows of a plan's actions (`recoup plan
show ID --json`, `actions`), later the API and the plan page."""

from __future__ import annotations

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


__all__ = ["ActionInstanceRead"]
