"""Every query of the runs' history: the list (newest first, cursor pages), one run, and the
named queries the run's rules and the worker need."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.core.schemas import Keyset, decode_id_cursor
from recoup.models import Run


def list_runs(
    session: Session, *, limit: int, starting_after: str | None = None, before: bool = False
) -> tuple[list[Run], str | None]:
    """Runs newest first, `limit` at a time; the cursor of the page after, if there is one.
    `before`: the page before the cursor's run (`starting_after` is then that cursor)."""
    keyset = Keyset(descending=True, before=before)
    query = select(Run).order_by(*keyset.order(Run.id))
    if starting_after is not None:
        query = query.where(keyset.past(Run.id, decode_id_cursor(starting_after, "starting_after")))
    if limit < 1:
        return [], None
    return keyset.page(list(session.scalars(query.limit(limit + 1))), limit)


def get_or_not_found(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


def newest_running_id(session: Session) -> int | None:
    """The newest run still marked running (the one holding the lock, when a run does)."""
    return session.scalar(select(func.max(Run.id)).where(Run.status == "running"))


def latest_run_date(session: Session) -> date | None:
    """The business date the engine has reached: the latest as-of date of any run (a
    simulation's day, not the wall clock). None before the first run."""
    return session.scalar(select(func.max(Run.as_of)))


def latest_finished_run(session: Session) -> Run | None:
    """The finished run with the latest as-of date (R13: no run may go back before it)."""
    return session.scalars(
        select(Run).where(Run.status == "finished").order_by(Run.as_of.desc(), Run.id.desc())
    ).first()
