"""The FastAPI application: routes under /api/v1, OpenAPI at /api/v1/openapi.json, the
interactive documentation at /api/v1/docs, and the back office's pages at `/` (recoup.web).
`recoup serve` runs `create_app` with uvicorn."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.types import Lifespan

from recoup import web
from recoup.api import body_limit, errors
from recoup.api.idempotency import IdempotencyMiddleware
from recoup.api.routes import book, book_writes, config, operations, plans, records, webhooks
from recoup.apikeys.service import KeyCache
from recoup.core.env import load_env
from recoup.core.requests import async_database
from recoup.core.sessions import session_factory

PREFIX = "/api/v1"


def create_served_app() -> FastAPI:
    """`recoup serve`'s app: `create_app`, and the garbage collector told at startup to leave
    alone everything startup built (`gc.freeze`). Those objects (the routes, the schemas, the
    database's metadata) live as long as the server, and every full collection walked them all
    while requests waited: the slowest answers took three times longer
    (benchmarks/api_bench.py). Not for tests, which build many apps: frozen objects are never
    collected."""
    return create_app(freeze=True)


def _lifespan(freeze: bool) -> Lifespan[FastAPI]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if freeze:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await async_database(app).dispose()

    return lifespan


def create_app(database_url: str | None = None, *, freeze: bool = False) -> FastAPI:
    """The API on `database_url` (default: RECOUP_DATABASE_URL, as the CLI reads it).
    `freeze`: see `create_served_app`."""
    env = load_env()
    url = database_url or env.database_url
    app = FastAPI(
        lifespan=_lifespan(freeze),
        title="Recoup",
        summary="Open-source dunning: remind, escalate, stop when paid, log everything.",
        version=_version(),
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=f"{PREFIX}/docs/oauth2-redirect",
    )
    app.state.database_url = url
    app.state.session_factory = session_factory(url)
    app.state.key_cache = KeyCache(env.api_key_cache_seconds)
    app.state.key_checks = {}  # recoup.api.deps.check_key: the key reads under way
    errors.install(app)
    api = APIRouter(prefix=PREFIX)
    for module in (plans, book, book_writes, records, operations, config, webhooks):
        api.include_router(module.router)
    app.include_router(api)
    web.install(app)  # the back office at `/`, mounted after the API's routes
    # outermost last: the body limit counts the bytes before idempotency reads them
    app.add_middleware(IdempotencyMiddleware)
    body_limit.install(app)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recoup")
    except PackageNotFoundError:
        return "0"


__all__ = ["PREFIX", "create_app", "create_served_app"]
