"""The runs so far, newest first, with how each ended (`recoup runs`), and the notes on
channels that were down during a run."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from recoup.core.locks import run_in_progress
from recoup.core.schemas import Page
from recoup.models import Run
from recoup.runs import repository
from recoup.runs.schemas import RunDetailRead, RunRead

# the counts of a run's stats that its read schema shows
COUNTS = (
    "considered",
    "plans_opened",
    "actions_queued",
    "actions_done",
    "actions_failed",
    "actions_postponed",
    "actions_held",
)


def list_runs(
    session: Session, *, limit: int, starting_after: str | None = None, before: bool = False
) -> Page[RunRead]:
    """Runs newest first. A run still marked running while no run holds the lock was killed
    (it could not record its end): it reads `interrupted`."""
    # before the rows: a run ending between the two reads must not look killed
    in_progress = run_in_progress(session.get_bind().engine)
    rows, next_cursor = repository.list_runs(
        session, limit=limit, starting_after=starting_after, before=before
    )
    live = None
    if in_progress and any(run.status == "running" for run in rows):
        live = repository.newest_running_id(session)
    return Page[RunRead](items=[run_read(run, live=live) for run in rows], next_cursor=next_cursor)


def run_read(run: Run, *, live: int | None) -> RunRead:
    """A run as the faces show it; `live`: the id of the run holding the lock, if any."""
    stats = run.stats or {}
    status = run.status
    if status == "running" and run.id != live:
        status = "interrupted"
    return RunRead(
        id=run.id,
        as_of=run.as_of,
        status=status,
        execute=run.execute,
        actor=run.actor,
        started_at=run.started_at,
        finished_at=run.finished_at,
        **{name: stats.get(name) for name in COUNTS},
        channels_down=stats.get("channels_down") or [],
        error=stats.get("error"),
    )


def run_detail(session: Session, run_id: int) -> RunDetailRead:
    """One run with its progress and its summary (NotFound for an unknown id)."""
    in_progress = run_in_progress(session.get_bind().engine)  # before the row, as list_runs
    run = repository.get_or_not_found(session, run_id)
    live = repository.newest_running_id(session) if in_progress else None
    stats = run.stats or {}
    summary = {
        name: value
        for name, value in stats.items()
        if type(value) is int and name != "run_id"  # the counts, not the flags
    }
    return RunDetailRead(
        **run_read(run, live=live).model_dump(),
        phase=run.phase,
        units_done=run.units_done,
        units_total=run.units_total,
        summary=summary,
    )


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
