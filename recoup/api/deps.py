"""What every route shares: the request's unit of work (`SessionDep`), the key that calls
(`ActorDep`), the right a route needs (`requires`), and cursor-page parameters (`PageDep`).

The request owns the transaction, as a CLI command does: `SessionDep` is
recoup.core.requests' (the back office, recoup.web, uses the same one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recoup.api.errors import Forbidden, Unauthorized
from recoup.api.roles import Right, allowed
from recoup.apikeys import service as apikey_service
from recoup.core.errors import FieldError, InvalidInput, NotFound
from recoup.core.requests import SessionDep, get_session, in_unit_of_work
from recoup.core.schemas import check_limit, encode_cursor

_bearer = HTTPBearer(auto_error=False, description="An API key: `recoup apikey create`.")


@dataclass(frozen=True)
class Actor:
    """The API key that calls: its name is the actor of what it writes in the log."""

    name: str
    role: str


async def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The key that calls: from the app's KeyCache when it checked it moments ago, else read
    in a transaction of its own (which also records when the key was last used)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("an API key is needed: Authorization: Bearer <key>")
    caller = await check_key(request, credentials.credentials)
    if caller is None:
        raise Unauthorized("the API key is unknown or revoked")
    return Actor(name=caller.name, role=caller.role)


async def check_key(request: Request, key: str) -> apikey_service.Caller | None:
    cache: apikey_service.KeyCache = request.app.state.key_cache
    # a key in the cache is known on the event loop, without touching the database
    cached = cache.get(key)
    if cached is not None:
        return cached
    # Requests that find their key missing at the same moment (when it expired from the cache
    # under steady use: all the requests in flight) wait on one read of it, not one read and
    # write each: a burst of transactions every few seconds that the slowest answers showed.
    checks: dict[str, asyncio.Future[apikey_service.Caller | None]] = request.app.state.key_checks
    digest = apikey_service.hash_key(key)
    pending = checks.get(digest)
    if pending is None:
        pending = checks[digest] = asyncio.ensure_future(
            in_unit_of_work(request, lambda session: apikey_service.check_key(session, cache, key))
        )
        pending.add_done_callback(lambda done: _checked(checks, digest, done))
    # shielded: a waiter that gives up does not cancel the check the others wait on
    return await asyncio.shield(pending)


def _checked(
    checks: dict[str, asyncio.Future[apikey_service.Caller | None]],
    digest: str,
    done: asyncio.Future[apikey_service.Caller | None],
) -> None:
    checks.pop(digest, None)
    if not done.cancelled():
        done.exception()  # retrieved: a check nobody waits on any more fails quietly


ActorDep = Annotated[Actor, Depends(current_actor)]


class Requires:
    """The dependency a route declares its right with; the role matrix test reads `.right`."""

    def __init__(self, right: Right) -> None:
        self.right = right

    # async: a check that waits on nothing runs on the event loop; a plain def would cost a
    # hop to the threadpool and back on every request (benchmarks/api_bench.py)
    async def __call__(self, actor: ActorDep) -> Actor:
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


# SPEC §6 lists: `limit` 1–100 (default 20); `starting_after` the id of the last object of
# the page before: the page after it; `ending_before` the id of the first object of the page
# after: the page before it (Stripe's semantics). One of the two at most.
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100


@dataclass(frozen=True)
class PageParams:
    limit: int
    starting_after: str | None
    ending_before: str | None = None

    @property
    def before(self) -> bool:
        """Whether the page is the one before `ending_before` (the repository's `before=`)."""
        return self.ending_before is not None

    @property
    def field(self) -> str:
        """The parameter the cursor came in."""
        return "ending_before" if self.before else "starting_after"

    @property
    def given(self) -> str | None:
        """The id (the log: the opaque cursor) given in `starting_after` or `ending_before`."""
        return self.ending_before if self.before else self.starting_after

    def cursor(self, key_of: Callable[[str], Sequence[Any]]) -> str | None:
        """The repository's cursor for the rows after (or, `before`, before) the object that
        `starting_after` (or `ending_before`) names: `key_of(id)` gives that object's sort key
        (raising NotFound or ValueError for an id that is no object of the list), which is a
        422 naming the parameter."""
        given = self.given
        if given is None:
            return None
        try:
            key = key_of(given)
        except (NotFound, ValueError):
            raise InvalidInput(
                f"{{field}}: no object {given!r} in this list", field=self.field
            ) from None
        return encode_cursor(key)


async def page_params(  # async: pure, as Requires.__call__
    limit: Annotated[int, Query(description="At most this many (1–100).")] = LIST_DEFAULT_LIMIT,
    starting_after: Annotated[
        str | None,
        Query(description="The id of the last object of the page before: the page after it."),
    ] = None,
    ending_before: Annotated[
        str | None,
        Query(
            description="The id of the first object of the page after: the page before it (the "
            "nearest `limit` objects, still in the list's order; `has_more`: more before them). "
            "Not with `starting_after`."
        ),
    ] = None,
) -> PageParams:
    check_limit(limit, maximum=LIST_MAX_LIMIT)
    if starting_after is not None and ending_before is not None:
        message = "starting_after and ending_before: give one of them, not both"
        raise InvalidInput(
            message,
            errors=[FieldError("starting_after", message), FieldError("ending_before", message)],
        )
    return PageParams(limit=limit, starting_after=starting_after, ending_before=ending_before)


PageDep = Annotated[PageParams, Depends(page_params)]


__all__ = [
    "Actor",
    "ActorDep",
    "LIST_DEFAULT_LIMIT",
    "LIST_MAX_LIMIT",
    "PageDep",
    "PageParams",
    "ReasonHeader",
    "Requires",
    "SessionDep",
    "current_actor",
    "get_session",
    "requires",
]
