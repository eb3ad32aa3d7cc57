"""The unit of work of an HTTP request, shared by the two HTTP faces (the API, recoup.api, and
the back office, recoup.web): `SessionDep` for a plain `def` route; `in_unit_of_work` and
`in_read` for an `async def` route that does all its database work in one call.

The request owns the transaction, as a CLI command does (`recoup.core.db.unit_of_work` on the
app's session factory, `request.app.state.session_factory`): committed when the route has
answered (and before the answer is sent, so a refused commit is a 409 and not a 200), rolled
back on any error.

Database work blocks. A `def` route runs in the thread pool, and each trip there and back
costs more than a simple read (benchmarks/api_bench.py): with `SessionDep` such a route costs
three (the route, its answer's validation, the commit; the session is opened on the event
loop, which touches no database).

`in_unit_of_work(request, work)` runs the synchronous `work(session)` without the thread pool
on PostgreSQL: in SQLAlchemy's asyncio extension (`AsyncSession.run_sync`), the same services
and repositories, their statements awaited on the event loop over psycopg's async connection.
`in_read` does the same for work that only reads, on a connection in autocommit (no BEGIN and
COMMIT round trips; a write is refused). On SQLite, which has no driver of its own for an event
loop, both run in one trip to the thread pool. The routes the billing systems call most use
them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from recoup.core.db import (
    commit_and_close,
    make_async_engine,
    raise_as_meant,
    roll_back_and_close,
    unit_of_work,
)

T = TypeVar("T")


async def get_session(request: Request) -> AsyncIterator[Session]:
    session: Session = request.app.state.session_factory()
    try:
        yield session
    except BaseException as exc:
        await run_in_threadpool(roll_back_and_close, session, exc)
    if session.in_transaction():
        await run_in_threadpool(commit_and_close, session)
    else:
        session.close()


# scope="function": the unit of work ends when the route has answered, before the response
# is sent (FastAPI's default would commit after sending it)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass
class AsyncDatabase:
    """An app's engines for work awaited on its event loop (`make_async_engine`): made at the
    first request that needs one, as their connections belong to the loop that serves it,
    and disposed of when the app shuts down (`dispose`). None of them on SQLite."""

    url: str
    _engines: dict[bool, AsyncEngine | None] = field(default_factory=dict)
    _factories: dict[bool, async_sessionmaker[AsyncSession] | None] = field(default_factory=dict)

    def factory(self, *, read_only: bool) -> async_sessionmaker[AsyncSession] | None:
        if read_only not in self._factories:
            engine = make_async_engine(self.url, read_only=read_only)
            self._engines[read_only] = engine
            self._factories[read_only] = (
                None if engine is None else async_sessionmaker(engine, expire_on_commit=False)
            )
        return self._factories[read_only]

    async def dispose(self) -> None:
        for engine in self._engines.values():
            if engine is not None:
                await engine.dispose()
        self._engines.clear()
        self._factories.clear()


def async_database(app: Any) -> AsyncDatabase:
    database: AsyncDatabase | None = getattr(app.state, "async_database", None)
    if database is None:
        database = app.state.async_database = AsyncDatabase(app.state.database_url)
    return database


async def in_unit_of_work(request: Request, work: Callable[[Session], T]) -> T:
    """`work` in the request's unit of work, without the thread pool (SQLite: one trip)."""
    return await run_unit_of_work(request.app, work)


async def in_read(request: Request, work: Callable[[Session], T]) -> T:
    """`work`, which only reads, without a transaction or the thread pool (SQLite: in one
    trip, as `in_unit_of_work`)."""
    factory = async_database(request.app).factory(read_only=True)
    if factory is None:
        return await run_unit_of_work(request.app, work)
    session = factory()
    try:
        return await session.run_sync(work)
    finally:
        await _close(session)


async def run_unit_of_work(
    app: Any, work: Callable[[Session], T], *, autocommit: bool = False
) -> T:
    """`work` in a unit of work of its own on `app`'s database (`in_unit_of_work`): for a
    middleware, which has the app and no request.

    `autocommit` (PostgreSQL): each statement is committed as it runs, without BEGIN and
    COMMIT round trips, for work whose every write stands on its own (one conditional INSERT
    or UPDATE: the idempotency middleware's). A failure keeps what was written before it."""
    factory = async_database(app).factory(read_only=False)
    if factory is None:
        sessions = app.state.session_factory

        def run() -> T:
            with unit_of_work(sessions) as session:
                return work(session)

        return await run_in_threadpool(run)
    session = factory()
    try:
        if autocommit:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        result = await session.run_sync(work)
        await session.commit()
    except BaseException as exc:
        await _close(session)  # which rolls back
        raise_as_meant(exc)
    await _close(session)
    return result


async def _close(session: AsyncSession) -> None:
    """The session's end, its connection back in the pool, also when the request is being
    cancelled (a client gone, the server stopping): a cancelled wait there would leave the
    connection in the middle of its transaction."""
    with anyio.CancelScope(shield=True):
        await session.close()


__all__ = [
    "AsyncDatabase",
    "SessionDep",
    "async_database",
    "get_session",
    "in_read",
    "in_unit_of_work",
    "run_unit_of_work",
]
