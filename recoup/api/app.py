"""The FastAPI application: routes under /api/v1, OpenAPI at /api/v1/openapi.json, the
interactive documentation at /api/v1/docs, and the back office's pages at `/` (recoup.web).
`recoup serve` runs `create_app` with uvicorn."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from recoup import web
from recoup.api import errors
from recoup.api.routes import book, config, operations, plans, records
from recoup.core.env import load_env
from recoup.core.sessions import session_factory

PREFIX = "/api/v1"


def create_app(database_url: str | None = None) -> FastAPI:
    """The API on `database_url` (default: RECOUP_DATABASE_URL, as the CLI reads it)."""
    url = database_url or load_env().database_url
    app = FastAPI(
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
    errors.install(app)
    api = APIRouter(prefix=PREFIX)
    for module in (plans, book, records, operations, config):
        api.include_router(module.router)
    app.include_router(api)
    web.install(app)  # the back office at `/`, mounted after the API's routes
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recoup")
    except PackageNotFoundError:
        return "0"


__all__ = ["PREFIX", "create_app"]
