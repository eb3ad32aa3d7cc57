"""The units of work of the routes that do their database work in one call
(recoup.core.requests): on PostgreSQL awaited on the event loop, on SQLite in the thread pool.
Either way: committed when the work succeeds, nothing kept when it fails, a uniqueness the
database enforced is a Conflict, and a read cannot write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text

from recoup.api.app import create_app
from recoup.core.errors import Conflict, RecoupError
from recoup.core.requests import async_database, in_read, run_unit_of_work
from recoup.core.sessions import Session, transaction
from recoup.models import Customer

T = TypeVar("T")


def _run(db_url: str, unit: Callable[[Any], Awaitable[T]]) -> T:
    """`unit(app)` on an event loop of its own, the app's engines disposed of after."""
    app = create_app(db_url)

    async def run() -> T:
        try:
            return await unit(app)
        finally:
            await async_database(app).dispose()

    return asyncio.run(run())


def _customers(db_url: str) -> list[str]:
    with transaction(db_url) as session:
        return list(session.scalars(select(Customer.id).order_by(Customer.id)))


def _add(customer_id: str) -> Callable[[Session], None]:
    def add(session: Session) -> None:
        session.add(Customer(id=customer_id, name=customer_id))
        session.flush()

    return add


def test_work_that_succeeds_is_committed(db_url: str) -> None:
    _run(db_url, lambda app: run_unit_of_work(app, _add("C-1")))
    assert _customers(db_url) == ["C-1"]


def test_work_that_fails_leaves_nothing(db_url: str) -> None:
    def add_then_fail(session: Session) -> None:
        _add("C-1")(session)
        raise ValueError("refused after writing")

    with pytest.raises(ValueError, match="refused after writing"):
        _run(db_url, lambda app: run_unit_of_work(app, add_then_fail))
    assert _customers(db_url) == []


def test_a_row_the_database_refuses_as_taken_is_a_conflict(db_url: str) -> None:
    _run(db_url, lambda app: run_unit_of_work(app, _add("C-1")))
    with pytest.raises(Conflict):
        _run(db_url, lambda app: run_unit_of_work(app, _add("C-1")))
    assert _customers(db_url) == ["C-1"]


def test_a_read_reads_and_on_postgresql_cannot_write(db_url: str) -> None:
    _run(db_url, lambda app: run_unit_of_work(app, _add("C-1")))
    count = _run(
        db_url,
        lambda app: in_read(
            SimpleNamespace(app=app),  # type: ignore[arg-type]
            lambda session: session.scalar(select(func.count()).select_from(Customer)),
        ),
    )
    assert count == 1
    if not db_url.startswith("postgresql"):
        return  # SQLite's reads share the units of work's way (the thread pool)
    # a compound SELECT that opens with a parenthesis (PostgreSQL's syntax) is a read
    compound = _run(
        db_url,
        lambda app: in_read(
            SimpleNamespace(app=app),  # type: ignore[arg-type]
            lambda session: session.execute(text("(SELECT 1) UNION ALL (SELECT 2)")).all(),
        ),
    )
    assert [row[0] for row in compound] == [1, 2]
    with pytest.raises(RecoupError, match="read-only"):
        _run(
            db_url,
            lambda app: in_read(
                SimpleNamespace(app=app),  # type: ignore[arg-type]
                lambda session: session.execute(text("DELETE FROM customers")),
            ),
        )
    assert _customers(db_url) == ["C-1"]


def test_autocommit_work_keeps_each_write_as_it_runs_on_postgresql(db_url: str) -> None:
    """The idempotency middleware's way: each statement committed alone (PostgreSQL), so a
    failure after a write keeps that write; on SQLite it is one transaction as any other."""

    def add_then_fail(session: Session) -> None:
        _add("C-1")(session)
        raise ValueError("refused after writing")

    with pytest.raises(ValueError, match="refused after writing"):
        _run(db_url, lambda app: run_unit_of_work(app, add_then_fail, autocommit=True))
    kept = ["C-1"] if db_url.startswith("postgresql") else []
    assert _customers(db_url) == kept
    _run(db_url, lambda app: run_unit_of_work(app, _add("C-2"), autocommit=True))
    assert _customers(db_url) == [*kept, "C-2"]
