"""Request bodies have a size limit (issue 11): over it, 413 as problem+json, before the body
is read whole. A declared `Content-Length` over the limit is refused without reading a byte; a
chunked body is counted as it arrives and refused at the chunk that crosses the limit.

Ordinary requests get `MAX_BODY` (1 MiB); batches (`…/batch`) and invoice PDF uploads
(`…/pdf`) get `MAX_LARGE_BODY` (16 MiB: 10,000 rows of a batch fit in a few)."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recoup.api.errors import problem

MAX_BODY = 1 << 20
MAX_LARGE_BODY = 16 << 20
# batches, PDFs, and the back office's CSV import (which bounds its file at 10 MB itself)
LARGE_PATHS = re.compile(r"/(batch|pdf)/?$|^/import/?$")


class BodyTooLarge(HTTPException):
    """Raised by the counting `receive` when a body crosses its limit. An HTTPException, so
    that FastAPI's body parsing lets it through (it turns other errors into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is larger than {limit} bytes")
        self.limit = limit


def too_large(limit: int) -> JSONResponse:
    return problem(
        413,
        "Content too large",
        f"the request body is larger than {limit} bytes; nothing was read or changed",
        code="content_too_large",
        headers={"Connection": "close"},
    )


def limit_for(path: str, *, limit: int = MAX_BODY, large_limit: int = MAX_LARGE_BODY) -> int:
    return large_limit if LARGE_PATHS.search(path) else limit


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limit: int = MAX_BODY, large_limit: int = MAX_LARGE_BODY
    ) -> None:
        self.app = app
        self.limit = limit
        self.large_limit = large_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"], limit=self.limit, large_limit=self.large_limit)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # read outside a route (the idempotency middleware hashes the body)
            if started:
                raise
            await too_large(exc.limit)(scope, receive, send)


def _handler(_request: Request, exc: Exception) -> JSONResponse:
    """A route that was reading the body when it crossed the limit."""
    assert isinstance(exc, BodyTooLarge)
    return too_large(exc.limit)


def install(app: FastAPI, *, limit: int = MAX_BODY, large_limit: int = MAX_LARGE_BODY) -> None:
    """Add last of the middlewares: it is then the outermost, before any reads the body."""
    app.add_exception_handler(BodyTooLarge, _handler)
    app.add_middleware(BodyLimitMiddleware, limit=limit, large_limit=large_limit)


__all__ = ["MAX_BODY", "MAX_LARGE_BODY", "BodyLimitMiddleware", "BodyTooLarge", "install"]
