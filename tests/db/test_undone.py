"""`core.db.undone`: a block whose writes are undone, inside the caller's transaction, on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.db import undone
from recoup.log.service import log
from recoup.models import LogEntry


def _reasons(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return [
            d["reason"] for d in session.scalars(select(LogEntry.details).order_by(LogEntry.id))
        ]


def test_the_block_is_undone_and_the_callers_work_kept_uncommitted(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        log(session, "config_changed", reason="caller, flushed")
        session.flush()
        log(session, "config_changed", reason="caller, pending")
        with undone(session):
            log(session, "config_changed", reason="block")
            session.flush()
            assert session.scalar(select(func.count()).select_from(LogEntry)) == 3
        assert [d["reason"] for d in session.scalars(select(LogEntry.details))] == [
            "caller, flushed",
            "caller, pending",
        ]
        assert _reasons(session_factory) == []  # nothing committed
        session.commit()
    assert _reasons(session_factory) == ["caller, flushed", "caller, pending"]


def test_a_block_that_fails_is_undone_too(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        log(session, "config_changed", reason="caller")
        with pytest.raises(ZeroDivisionError), undone(session):
            log(session, "config_changed", reason="block")
            session.flush()
            _ = 1 / 0
        session.commit()
    assert _reasons(session_factory) == ["caller"]


def test_the_caller_can_write_after_it_while_others_commit(
    session_factory: sessionmaker[Session],
) -> None:
    """SQLite: the savepoint opened the transaction when the caller had written nothing; left
    open, its snapshot would refuse the caller's next write once another writer committed."""
    with session_factory() as session:
        with undone(session):
            session.scalar(select(func.count()).select_from(LogEntry))
        with session_factory() as other, other.begin():
            log(other, "config_changed", reason="another writer")
        log(session, "config_changed", reason="caller, after")
        session.commit()
    assert _reasons(session_factory) == ["another writer", "caller, after"]
