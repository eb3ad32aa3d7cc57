"""The runs' history for every face: `RunRead` (what `recoup runs --json` prints), cursor pages
newest first, one run or a 404, and a killed run read as interrupted."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.errors import InvalidInput, NotFound
from recoup.models import Run
from recoup.runs import repository
from recoup.runs.history import list_runs, run_read
from recoup.runs.schemas import RunRead

STARTED = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)


def _runs(factory: sessionmaker[Session], statuses: list[str]) -> list[int]:
    with factory.begin() as session:
        rows = [
            Run(as_of=date(2026, 3, n + 1), status=status, started_at=STARTED, stats={})
            for n, status in enumerate(statuses)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_pages_go_newest_first_and_end(session_factory: sessionmaker[Session]) -> None:
    ids = _runs(session_factory, ["finished"] * 5)
    with session_factory() as session:
        first = list_runs(session, limit=2)
        assert [r.id for r in first.items] == ids[::-1][:2] and first.next_cursor
        second = list_runs(session, limit=2, starting_after=first.next_cursor)
        assert [r.id for r in second.items] == ids[::-1][2:4]
        third = list_runs(session, limit=2, starting_after=second.next_cursor)
        assert [r.id for r in third.items] == ids[:1] and third.next_cursor is None
        assert list_runs(session, limit=5).next_cursor is None
        with pytest.raises(InvalidInput):
            list_runs(session, limit=2, starting_after="nonsense")


def test_a_run_marked_running_without_the_lock_reads_interrupted(
    session_factory: sessionmaker[Session],
) -> None:
    _runs(session_factory, ["finished", "running"])
    with session_factory() as session:
        statuses = [r.status for r in list_runs(session, limit=20).items]
    assert statuses == ["interrupted", "finished"]


def test_one_run_or_not_found(session_factory: sessionmaker[Session]) -> None:
    [run_id] = _runs(session_factory, ["finished"])
    with session_factory() as session:
        assert repository.get_or_not_found(session, run_id).id == run_id
        with pytest.raises(NotFound, match=f"run {run_id + 1} not found"):
            repository.get_or_not_found(session, run_id + 1)


def test_the_json_form_is_the_clis() -> None:
    run = Run(
        id=7,
        as_of=date(2026, 3, 2),
        status="failed",
        execute=True,
        actor="alice",
        started_at=STARTED,
        finished_at=None,
        stats={"considered": 3, "plans_opened": 1, "error": "disk full"},
    )
    dumped = run_read(run, live=None).model_dump(mode="json")
    assert list(dumped) == list(RunRead.model_fields)
    assert dumped["started_at"] == STARTED.isoformat()  # "+00:00", as the CLI always wrote
    assert dumped["as_of"] == "2026-03-02" and dumped["finished_at"] is None
    assert (dumped["considered"], dumped["actions_done"], dumped["error"]) == (3, None, "disk full")
    assert dumped["channels_down"] == []
