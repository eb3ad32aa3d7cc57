"""The unit of work of an HTTP request, shared by the two HTTP faces (the API, recoup.api, and
the back office, recoup.web): `SessionDep`.

The request owns the transaction, as a CLI command does: `recoup.core.db.unit_of_work` on the
app's session factory (`request.app.state.session_factory`), committed when the route has
answered (and before the answer is sent, so a refused commit is a 409 and not a 200), rolled
back on any error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from recoup.core.db import unit_of_work


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.session_factory) as session:
        yield session


# scope="function": the unit of work ends when the route has answered, before the response
# is sent (FastAPI's default would commit after sending it)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

__all__ = ["SessionDep", "get_session"]
