"""What every route shares: the request's unit of work (`SessionDep`), the key that calls
(`ActorDep`), the right a route needs (`requires`), and cursor-page parameters (`PageDep`).

The request owns the transaction, as a CLI command does: `recoup.core.db.unit_of_work` on the
app's session factory, committed when the route has answered (and before the answer is sent,
so a refused commit is a 409 and not a 200), rolled back on any error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recoup.api.errors import Forbidden, Unauthorized
from recoup.api.roles import Right, allowed
from recoup.apikeys import service as apikey_service
from recoup.core.db import unit_of_work
from recoup.core.schemas import DEFAULT_LIMIT, check_limit, decode_cursor
from recoup.core.sessions import Session


def get_session(request: Request) -> Iterator[Session]:
    with unit_of_work(request.app.state.session_factory) as session:
        yield session


# scope="function": the unit of work ends when the route has answered, before the response
# is sent (FastAPI's default would commit after sending it)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `recoup apikey create`.")


@dataclass(frozen=True)
class Actor:
    """The API key that calls: its name is the actor of what it writes in the log."""

    name: str
    role: str


def current_actor(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("an API key is needed: Authorization: Bearer <key>")
    key = apikey_service.authenticate(session, credentials.credentials)
    if key is None:
        raise Unauthorized("the API key is unknown or revoked")
    return Actor(name=key.name, role=key.role)


ActorDep = Annotated[Actor, Depends(current_actor)]


class Requires:
    """The dependency a route declares its right with; the role matrix test reads `.right`."""

    def __init__(self, right: Right) -> None:
        self.right = right

    def __call__(self, actor: ActorDep) -> Actor:
        if not allowed(actor.role, self.right):
            raise Forbidden(f"the role {actor.role} may not {self.right.value}")
        return actor

    def __repr__(self) -> str:
        return f"Requires({self.right.value})"


_REQUIRES = {right: Requires(right) for right in Right}


def requires(right: Right) -> Requires:
    return _REQUIRES[right]


# SPEC §6: a write may say why in a header; it is recorded in the log with the key's name
ReasonHeader = Annotated[
    str | None,
    Header(alias="Recoup-Reason", description="Why (recorded in the log)."),
]


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(description="At most this many (1–500).")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the page before.")
    ] = None,
) -> PageParams:
    check_limit(limit)
    if cursor is not None:
        decode_cursor(cursor)
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


__all__ = [
    "Actor",
    "ActorDep",
    "PageDep",
    "PageParams",
    "ReasonHeader",
    "Requires",
    "SessionDep",
    "current_actor",
    "requires",
]
