"""`Idempotency-Key` on every POST (SPEC §6, Stripe's semantics), for every route at once: an
ASGI middleware around the app.

A POST with the header and a live API key:

1. its body is read (within the body limit, which sits outside) and fingerprinted with the
   method and path;
2. the key is reserved for this API key in a transaction of its own, committed before the
   request runs: a second request with the same key while the first runs finds it (409), one
   sent after gets the first's answer replayed (`Idempotent-Replayed: true`), one with another
   body or path is a 422;
3. the request runs; its answer is stored, then sent. A server error (5xx) or a request that
   did not finish is not kept: the reservation is dropped and the same key runs it again.

Without the header, or without a key the API knows (the route answers 401), nothing changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recoup.api.errors import recoup_error
from recoup.apikeys import service as apikey_service
from recoup.apikeys.service import KeyCache
from recoup.core.clock import utc_now
from recoup.core.errors import Conflict, RecoupError
from recoup.core.requests import run_unit_of_work
from recoup.core.sessions import Session
from recoup.idempotency import service
from recoup.idempotency.service import Replay, Reserved

logger = logging.getLogger("recoup.api")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


def _bearer(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _reserve(
    cache: KeyCache, purges: service.PurgeSchedule, token: str, key: str, fingerprint: str
) -> Callable[[Session], Reserved | Replay | None]:
    """The reservation (in a unit of work of its own); None when the API key is not live."""

    def reserve(session: Session) -> Reserved | Replay | None:
        api_key = apikey_service.check_key(session, cache, token)
        if api_key is None:
            return None
        return service.reserve(
            session,
            api_key_id=api_key.id,
            key=key,
            fingerprint=fingerprint,
            now=utc_now(),
            purges=purges,
        )

    return reserve


async def _reserved(app: Any, work: Callable[[Session], Reserved | Replay | None]) -> Any:
    for attempt in (1, 2):
        try:
            return await run_unit_of_work(app, work, autocommit=True)
        except Conflict as exc:
            # the unit of work's: a request with the same key reserved it at the same moment;
            # looking again finds it (in flight: 409, answered: its replay)
            if attempt == 2 or exc.field == service.FIELD:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _complete(
    reservation: Reserved, status: int, content_type: str | None, body: bytes
) -> Callable[[Session], None]:
    return lambda session: service.complete(
        session, reservation, status_code=status, content_type=content_type, body=body
    )


def _release(reservation: Reserved) -> Callable[[Session], None]:
    return lambda session: service.release(session, reservation)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: nothing to run
            raise ClientDisconnect()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.purges = service.PurgeSchedule()  # this server's purges of expired keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        token = _bearer(headers)
        if key is None or token is None:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        cache: KeyCache = app.state.key_cache
        body = await _read_body(receive)
        fingerprint = service.fingerprint(
            scope["method"], scope["path"], scope.get("query_string", b""), body
        )
        try:
            outcome = await _reserved(app, _reserve(cache, self.purges, token, key, fingerprint))
        except RecoupError as exc:
            await recoup_error(None, exc)(scope, receive, send)  # type: ignore[arg-type]
            return

        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if outcome is None:  # not a live key: the route says so (401)
            await self.app(scope, replay_receive, send)
            return
        if isinstance(outcome, Replay):
            await _send(send, outcome.status_code, outcome.content_type, outcome.body, True)
            return

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            # not answered (a server error on its way to the 500 handler, a cancellation):
            # nothing to replay, the key runs the request again
            with anyio.CancelScope(shield=True):
                try:
                    await run_unit_of_work(app, _release(outcome), autocommit=True)
                except Exception:
                    logger.exception("could not release idempotency key %r", key)
            raise
        status = int(start.get("status", 500)) if start else 500
        answer = b"".join(chunks)
        response_headers = Headers(raw=start.get("headers", []))
        with anyio.CancelScope(shield=True):
            try:
                if status >= 500:
                    await run_unit_of_work(app, _release(outcome), autocommit=True)
                else:
                    await run_unit_of_work(
                        app,
                        _complete(outcome, status, response_headers.get("content-type"), answer),
                        autocommit=True,
                    )
            except Exception:
                # the request did what it did: answer it; the reservation stays in flight
                # until IN_FLIGHT_TIMEOUT, then the key runs the request again
                logger.exception("could not keep the answer of idempotency key %r", key)
        await send({**start, "type": "http.response.start"})
        await send({"type": "http.response.body", "body": answer, "more_body": False})


async def _send(
    send: Send, status: int, content_type: str | None, body: bytes, replayed: bool
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    if replayed:
        headers.append((REPLAYED.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


__all__ = ["HEADER", "REPLAYED", "IdempotencyMiddleware"]
