"""Issue 9.8: a typo in `--as-of` cannot run the book into the future nor back into the past
(R13). Reads (`explain --as-of`, `report --as-of`) stay free."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.clock import today_in
from recoup.core.env import load_env
from recoup.core.errors import Conflict, InvalidInput
from recoup.models import Run
from recoup.runs.service import run_dunning
from tests.engine_book import Book, day


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Book:
    book = Book(tmp_path)
    book.start()
    return book


def test_a_date_years_ahead_is_refused_without_future(book: Book) -> None:
    out = book("run", "--as-of", "9999-12-31", code=1)
    tomorrow = today_in("UTC") + timedelta(days=1)
    assert "9999-12-31 is after tomorrow" in " ".join(out.split())
    assert str(tomorrow) in out and "--future" in out
    assert book.json("plans") == [] and book.json("runs") == []  # nothing ran, no run row
    # reads are free
    assert book.json("explain", "I1", "--as-of", "9999-12-31")[0]["invoice_id"] == "I1"
    assert book.json("report", "--as-of", "9999-12-31")[0]["currency"] == "EUR"


def test_tomorrow_is_allowed_and_a_simulation_asks_for_more(book: Book) -> None:
    tomorrow = today_in("UTC") + timedelta(days=1)
    assert book.run(tomorrow)["as_of"] == str(tomorrow)
    later = tomorrow + timedelta(days=400)
    assert book.run(later, "--future")["as_of"] == str(later)
    assert book.plan()["status"] == "unrecovered"  # the simulation ran the whole ladder


def test_a_date_before_the_latest_finished_run_is_refused(book: Book) -> None:
    book.run(10)
    book.run(10)  # the same date again is allowed (R13: exactly once)
    out = " ".join(book("run", "--as-of", day(5), code=1).split())
    assert f"{day(5)} is earlier than {day(10)}, the date of run 2 (finished)" in out
    assert [r["as_of"] for r in book.json("runs")] == [day(10), day(10)]
    assert book.run(11)["as_of"] == day(11)


def test_the_service_takes_allow_future(
    book: Book, session_factory: sessionmaker[Session], db_url: str
) -> None:
    env = load_env()
    ahead = today_in("UTC") + timedelta(days=3)
    with pytest.raises(InvalidInput, match="after tomorrow"):
        run_dunning(session_factory, as_of=ahead, env=env, execute=False)
    stats = run_dunning(session_factory, as_of=ahead, env=env, execute=False, allow_future=True)
    assert stats.as_of == ahead
    with pytest.raises(Conflict, match="earlier than"):
        run_dunning(session_factory, as_of=ahead - timedelta(days=1), env=env, execute=False)


def test_an_unfinished_run_does_not_hold_the_date(
    book: Book, session_factory: sessionmaker[Session]
) -> None:
    """Only a finished run sets the floor: a failed or killed run's date can be run again
    earlier (its committed chunks are kept and the next run carries on)."""
    with session_factory.begin() as session:
        session.add(Run(as_of=today_in("UTC"), status="failed", actor="system"))
    assert book.run(5)["as_of"] == day(5)


def test_the_demo_simulation_may_run_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`recoup demo --end` in the future is a simulation: it passes allow_future."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECOUP_SMTP_URL", raising=False)
    end = today_in("UTC") + timedelta(days=60)
    args = ["demo", "--customers", "5", "--days", "5", "--end", str(end), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
