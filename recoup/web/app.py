"""The back office's own FastAPI application (mounted at `/` by recoup.web.install): its
routers, static files, security headers, and errors answered as pages."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from recoup.core.errors import RecoupError
from recoup.core.faults import fault_text
from recoup.domain.redact import redact_text
from recoup.web import assets
from recoup.web.auth import NotLoggedIn, PageRefused, check_csrf
from recoup.web.page import TEMPLATES, PublicDep, layout_context
from recoup.web.pages import (
    config,
    customers,
    dashboard,
    imports,
    login,
    plans,
    runs,
    settings,
    tasks,
)

logger = logging.getLogger("recoup.web")

ROUTERS: list[APIRouter] = [
    login.router,
    dashboard.router,
    tasks.router,
    settings.router,
    plans.router,  # late invoices, plans, letters, charges
    customers.router,
    imports.router,  # CSV imports of the book
    config.router,
    runs.router,
]

# scripts and styles from this site only: no CDN, no inline script (the charts' data travels
# in <script type="application/json">, which is not run)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class WebConfig:
    """`secure_cookies`: auto (Secure when served over https), always or never."""

    secure_cookies: str = "auto"

    @classmethod
    def from_env(cls) -> WebConfig:
        value = os.environ.get("RECOUP_WEB_SECURE_COOKIES", "auto").strip().lower() or "auto"
        if value not in ("auto", "always", "never"):
            raise RecoupError(
                f"RECOUP_WEB_SECURE_COOKIES={value!r}: expected auto, always or never"
            )
        return cls(secure_cookies=value)


vendor = APIRouter()


@vendor.get("/static/vendor/{name}")
def vendor_file(name: str, _page: PublicDep) -> Response:
    path = assets.vendor_file(name)
    if path is None:
        raise HTTPException(404, f"no asset {name!r} (run `make setup`)")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def create_web_app(config: WebConfig) -> FastAPI:
    web = FastAPI(
        openapi_url=None, docs_url=None, redoc_url=None, dependencies=[Depends(check_csrf)]
    )
    web.state.web_config = config
    web.include_router(vendor)
    for router in ROUTERS:
        web.include_router(router)
    web.mount("/static", StaticFiles(directory=assets.STATIC), name="static")
    web.add_exception_handler(NotLoggedIn, _not_logged_in)
    web.add_exception_handler(PageRefused, _refused)
    web.add_exception_handler(RecoupError, _recoup_error)
    web.add_exception_handler(HTTPException, _http_error)
    web.add_exception_handler(Exception, _unexpected)

    @web.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    assets.check_installed()
    return web


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    login = getattr(request.state, "login", None)
    context = layout_context(request, login, csrf=login.csrf_token if login else "")
    context.update(status=status, title=title, message=message)
    if request.headers.get("HX-Request") == "true":
        # htmx swaps the error in place of the page's main content, not of the form's target
        return TEMPLATES.TemplateResponse(
            request,
            "_error.html",
            context,
            status_code=status,
            headers={"HX-Retarget": "main", "HX-Reswap": "innerHTML"},
        )
    return TEMPLATES.TemplateResponse(request, "error.html", context, status_code=status)


def _not_logged_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotLoggedIn)
    from urllib.parse import quote

    url = "/login?next=" + quote(exc.next_path, safe="/")
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageRefused)
    return error_page(request, 403, "Not allowed", exc.message)


def _recoup_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecoupError)
    titles = {404: "Not found", 409: "Not possible now", 422: "Not valid"}
    return error_page(request, exc.status_code, titles.get(exc.status_code, "Refused"), exc.text())


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        # an unknown path under the API still answers as the API does (problem+json)
        return JSONResponse(
            {
                "type": "urn:recoup:problem:not_found",
                "title": "Not found",
                "status": exc.status_code,
                "detail": str(exc.detail),
                "code": "not_found",
                "errors": [],
            },
            status_code=exc.status_code,
            media_type="application/problem+json",
        )
    titles = {404: "Page not found", 405: "Not allowed"}
    message = {
        404: "There is no such page. Check the address, or go back to the dashboard.",
        405: "This address does not answer that kind of request.",
    }.get(exc.status_code, str(exc.detail))
    return error_page(request, exc.status_code, titles.get(exc.status_code, "Refused"), message)


def _unexpected(request: Request, exc: Exception) -> Response:
    database_url = getattr(request.app.state, "database_url", "")
    message = fault_text(exc, lambda: database_url)
    logger.exception("unexpected error answering %s %s", request.method, request.url.path)
    detail = (
        "Recoup could not answer; the server's log says why."
        if message is None
        else redact_text(message)
    )
    return error_page(request, 500, "Something went wrong", detail)


__all__ = ["ROUTERS", "SECURITY_HEADERS", "WebConfig", "create_web_app", "error_page"]
