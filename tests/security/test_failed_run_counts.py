"""Issue 8.11: a run that fails half-way (a full disk) reports only what it committed.

The database refuses the second chunk's log rows as a full disk would (a trigger raising
SQLite's "database or disk is full" / PostgreSQL's `disk_full`): the first chunk stays written,
the second is rolled back, and `recoup runs` counts the first only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.env import load_env
from recoup.models import ActionInstance, Plan
from recoup.runs.service import run_dunning
from tests.engine_book import DUE, Book
from tests.runs.test_run_e2e import invoice_csv

CHUNK = 3
INVOICES = 7  # three chunks: 3, 3, 1

SQLITE_TRIGGER = f"""
CREATE TRIGGER recoup_test_disk_full BEFORE INSERT ON log_entries
WHEN (SELECT count(*) FROM plans) > {CHUNK}
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END
"""
PG_FUNCTION = f"""
CREATE FUNCTION recoup_test_disk_full() RETURNS trigger AS $$
BEGIN
  IF (SELECT count(*) FROM plans) > {CHUNK} THEN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
PG_TRIGGER = """
CREATE TRIGGER recoup_test_disk_full BEFORE INSERT ON log_entries
FOR EACH ROW EXECUTE FUNCTION recoup_test_disk_full()
"""


@contextmanager
def full_disk(engine: Engine) -> Iterator[None]:
    """The disk fills up once the first chunk's plans are written."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if sqlite:
            conn.execute(text(SQLITE_TRIGGER))
        else:
            conn.execute(text(PG_FUNCTION))
            conn.execute(text(PG_TRIGGER))
    try:
        yield
    finally:  # the PostgreSQL test database outlives the test
        with engine.begin() as conn:
            if sqlite:
                conn.execute(text("DROP TRIGGER recoup_test_disk_full"))
            else:
                conn.execute(text("DROP TRIGGER recoup_test_disk_full ON log_entries"))
                conn.execute(text("DROP FUNCTION recoup_test_disk_full()"))


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "one-process"])
def test_a_failed_run_counts_only_what_it_committed(
    env: dict[str, str],
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    pipeline: bool,
) -> None:
    book = Book(tmp_path)
    rows = [(f"I{n}", "C1", DUE, "100.00", "EUR") for n in range(INVOICES)]
    book.start(invoices=invoice_csv(*rows))
    monkeypatch.setenv("RECOUP_RUN_CHUNK", str(CHUNK))
    if not pipeline:
        monkeypatch.setattr("recoup.runs.pipeline.can_pipeline", lambda factory: False)
    with full_disk(engine), pytest.raises(Exception, match="disk is full|No space left"):
        run_dunning(session_factory, as_of=DUE + timedelta(days=5), env=load_env(), execute=False)

    with session_factory() as session:
        plans = session.scalar(select(func.count()).select_from(Plan))
        queued = session.scalar(select(func.count()).select_from(ActionInstance))
    assert plans == CHUNK and queued == CHUNK  # the first chunk is committed, no more
    [run] = book.json("runs")
    assert run["status"] == "failed" and "disk" in (run["error"] or "")
    assert (run["considered"], run["plans_opened"], run["actions_queued"]) == (
        CHUNK,
        CHUNK,
        CHUNK,
    )
    # the next run carries on from there and finishes the day
    stats = run_dunning(
        session_factory, as_of=DUE + timedelta(days=5), env=load_env(), execute=False
    )
    assert stats.plans_opened == INVOICES - CHUNK
