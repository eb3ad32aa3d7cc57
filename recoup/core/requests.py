"""The unit of work of an HTTP request, shared by the two HTTP faces (the API, recoup.api, and
the back office, recoup.web): `SessionDep` for a plain `def` route, `in_unit_of_work` for an
`async def` route that does all its database work in one call.

The request owns the transaction, as a CLI command does (`recoup.core.db.unit_of_work` on the
app's session factory, `request.app.state.session_factory`): committed when the route has
answered (and before the answer is sent, so a refused commit is a 409 and not a 200), rolled
back on any error.

Database work blocks, so it runs in the thread pool; each trip there and back costs more than
a simple read (benchmarks/api_bench.py). `get_session` opens the session on the event loop
(that touches no database) and only goes to the pool to end a transaction that was begun; a
`def` route with it still costs three trips (the route, its answer's validation, the commit).
`in_unit_of_work` costs one: the routes the billing systems call most use it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from recoup.core.db import commit_and_close, roll_back_and_close, unit_of_work

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


async def in_unit_of_work(request: Request, work: Callable[[Session], T]) -> T:
    """`work` in the request's unit of work, in one trip to the thread pool."""
    factory = request.app.state.session_factory

    def run() -> T:
        with unit_of_work(factory) as session:
            return work(session)

    return await run_in_threadpool(run)


__all__ = ["SessionDep", "get_session", "in_unit_of_work"]
