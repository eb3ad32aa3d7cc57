"""Every error as `application/problem+json` (RFC 9457, SPEC §6), mapped once.

A RecoupError answers its `status_code` with its message (the field spelled as the JSON name)
and its per-field errors; FastAPI's request validation answers 422 listing every invalid field;
Starlette's own 404/405 and anything unexpected (500, no detail: it may hold a secret) keep the
same shape."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.status import HTTP_500_INTERNAL_SERVER_ERROR

from recoup.core.errors import RecoupError
from recoup.core.faults import fault_text
from recoup.domain.redact import redact_text

PROBLEM_JSON = "application/problem+json"
AUTH_SCHEME = 'Bearer realm="recoup"'

logger = logging.getLogger("recoup.api")


class Unauthorized(RecoupError):
    """No key, or a key that is unknown or revoked."""

    status_code = 401
    title = "Unauthorized"


class Forbidden(RecoupError):
    """A key whose role lacks the right."""

    status_code = 403
    title = "Forbidden"


def _code(exc: RecoupError) -> str:
    """`NotFound` → `not_found`: the problem's machine-readable code."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    errors: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:recoup:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": list(errors),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def recoup_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecoupError)
    errors = [
        {"field": error.field, "message": error.message, "index": error.index}
        for error in exc.errors
    ]
    if not errors and exc.field is not None:
        errors = [{"field": exc.field, "message": exc.render(), "index": None}]
    headers = {"WWW-Authenticate": AUTH_SCHEME} if exc.status_code == 401 else None
    detail = exc.text()
    return problem(
        exc.status_code, exc.title, detail, code=_code(exc), errors=errors, headers=headers
    )


def _field(loc: Sequence[int | str]) -> str:
    """`("body", "policies", 0, "days")` → `policies[0].days`; the first part (body, query,
    path, header) is where, not what."""
    parts = list(loc[1:]) if len(loc) > 1 else list(loc)
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field(error.get("loc", ())), "message": error.get("msg", ""), "index": None}
        for error in exc.errors()
    ]
    fields = ", ".join(e["field"] for e in errors)
    return problem(422, "Invalid input", f"invalid: {fields}", code="invalid_input", errors=errors)


def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Request refused")
    return problem(
        exc.status_code,
        title,
        str(exc.detail),
        code=title.lower().replace(" ", "_"),
        headers=exc.headers,
    )


def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A database or file-system fault: one line naming the place (never a URL's credentials,
    issue 8.5); anything else: a bare 500, the traceback to the server's log."""
    database_url = getattr(request.app.state, "database_url", "")
    message = fault_text(exc, lambda: database_url)
    logger.exception("unexpected error answering %s %s", request.method, request.url.path)
    detail = "the server could not answer; see its log" if message is None else redact_text(message)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "Server error", detail, code="server_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RecoupError, recoup_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


__all__ = ["PROBLEM_JSON", "Forbidden", "Unauthorized", "install", "problem"]
