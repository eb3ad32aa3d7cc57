"""The runs so far, newest first, with how each ended: `recoup runs`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recoup.models import Run

RUN_FIELDS = [
    "id",
    "as_of",
    "status",
    "execute",
    "actor",
    "started_at",
    "finished_at",
    "considered",
    "plans_opened",
    "actions_queued",
    "actions_done",
    "actions_failed",
    "actions_postponed",
    "actions_held",
    "channels_down",
    "error",
]
COUNTS = (
    "considered",
    "plans_opened",
    "actions_queued",
    "actions_done",
    "actions_failed",
    "actions_postponed",
    "actions_held",
)


def list_runs(session: Session, *, limit: int, in_progress: bool) -> list[dict[str, Any]]:
    """Runs newest first. A run still marked running while no run holds the lock was killed
    (it could not record its end): it reads `interrupted`. `in_progress`: a run holds the
    lock now (recoup.core.locks.run_in_progress), so the newest running one is running."""
    rows = session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)).all()
    live = max((r.id for r in rows if r.status == "running"), default=None) if in_progress else None
    result = []
    for run in rows:
        stats = run.stats or {}
        status = run.status
        if status == "running" and run.id != live:
            status = "interrupted"
        result.append(
            {
                "id": run.id,
                "as_of": run.as_of,
                "status": status,
                "execute": run.execute,
                "actor": run.actor,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                **{name: stats.get(name) for name in COUNTS},
                "channels_down": stats.get("channels_down") or [],
                "error": stats.get("error"),
            }
        )
    return result


def latest_run_date(session: Session) -> date | None:
    """The business date the engine has reached: the latest as-of date of any run (a
    simulation's day, not the wall clock). None before the first run."""
    return session.scalar(select(func.max(Run.as_of)))


def latest_finished_run(session: Session) -> Run | None:
    """The finished run with the latest as-of date (R13: no run may go back before it)."""
    return session.scalars(
        select(Run).where(Run.status == "finished").order_by(Run.as_of.desc(), Run.id.desc())
    ).first()


def channel_notes(channels: list[dict[str, Any]], *, zone: str, now: datetime) -> list[str]:
    """ "email: server unreachable, 40 actions will be retried from 10:42 UTC" per channel
    down, the time in the settings' time zone (with its date when not today)."""
    tz = ZoneInfo(zone)
    notes = []
    for down in channels:
        at = datetime.fromisoformat(down["retry_at"]).astimezone(tz)
        when = f"{at:%H:%M}" if at.date() == now.astimezone(tz).date() else f"{at:%Y-%m-%d %H:%M}"
        count = int(down.get("instances") or 0)
        notes.append(
            f"{down['channel']}: {down['reason']}, {count} action{'s' if count != 1 else ''} "
            f"will be retried from {when} {zone}"
        )
    return notes
