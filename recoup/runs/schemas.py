"""What the faces show of a run (SPEC §5 names: the fields `recoup runs --json` prints)."""

from __future__ import annotations

from datetime import date
from typing import Any

from recoup.core.schemas import Schema, Timestamp


class RunRead(Schema):
    """One run and how it ended. `status`: running, finished, failed, or interrupted (killed
    while it ran: marked running while no run holds the lock). The counts are what the run
    had committed; none for a run that ended before counting."""

    id: int
    as_of: date
    status: str
    execute: bool
    actor: str
    started_at: Timestamp
    finished_at: Timestamp | None
    considered: int | None
    plans_opened: int | None
    actions_queued: int | None
    actions_done: int | None
    actions_failed: int | None
    actions_postponed: int | None
    actions_held: int | None
    # channels whose server was down: channel, reason, error, retry_at, instances
    channels_down: list[dict[str, Any]]
    error: str | None
