"""`explain` changes nothing, and leaves the caller's transaction as it found it: the service
undoes what it touched (a savepoint), so no face commits or rolls back around it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from recoup.log.service import log
from recoup.models import Customer, LogEntry
from recoup.runs import explain as explain_module
from recoup.runs.explain import explain_invoice
from tests.engine_book import DUE, Book

DAY_10 = DUE + timedelta(days=10)


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> Book:
    book = Book(tmp_path)
    book.start()
    book.run(5)  # a plan on I1
    return book


def _log_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(LogEntry)) or 0


def _name(factory: sessionmaker[Session]) -> str | None:
    with factory() as session:
        return session.scalar(select(Customer.name).where(Customer.id == "C1"))


def test_the_callers_pending_work_stays_pending(
    book: Book, session_factory: sessionmaker[Session]
) -> None:
    logged = _log_count(session_factory)
    with session_factory() as session:
        customer = session.get(Customer, "C1")
        assert customer is not None
        customer.name = "Renamed before explaining"  # pending, not flushed
        log(session, "config_changed", reason="the caller's own entry")  # pending too
        why = explain_invoice(session, "I1", DAY_10)
        assert why.plan_id is not None and why.plan_status == "active"
        # still the caller's, and not committed: another connection sees none of it
        assert customer.name == "Renamed before explaining"
        assert _name(session_factory) != "Renamed before explaining"
        assert _log_count(session_factory) == logged
        session.rollback()  # the caller decides: nothing stays
    assert _name(session_factory) != "Renamed before explaining"
    assert _log_count(session_factory) == logged

    with session_factory() as session, session.begin():
        log(session, "config_changed", reason="kept")
        explain_invoice(session, "I1", DAY_10)
    assert _log_count(session_factory) == logged + 1  # the caller's commit keeps its work


def test_what_explaining_writes_is_undone(
    book: Book, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explaining reads only today; should a loader it shares with the run ever write, the
    write is undone and the caller's work is not."""
    real = explain_module.load_domain_config

    def writing_loader(session: Session) -> Any:
        log(session, "config_changed", reason="written while explaining")
        session.flush()
        return real(session)

    monkeypatch.setattr(explain_module, "load_domain_config", writing_loader)
    logged = _log_count(session_factory)
    with session_factory() as session, session.begin():
        log(session, "config_changed", reason="the caller's")
        explain_invoice(session, "I1", DAY_10)
        reasons = session.scalars(select(LogEntry.details)).all()
        assert {"reason": "written while explaining"} not in reasons
    assert _log_count(session_factory) == logged + 1
    with session_factory() as session:
        assert session.scalars(select(LogEntry.details)).all()[-1] == {"reason": "the caller's"}
