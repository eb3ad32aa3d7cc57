"""Every error as `application/problem+json` (RFC 9457, SPEC §6), mapped once.

A RecoupError answers its `status_code` with its message (the field spelled as the JSON name)
and its per-field errors; FastAPI's request validation answers 422 listing every invalid field;
Starlette's own 404/405 and anything unexpected (500, no detail: it may hold a secret) keep the
same shape."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.status import HTTP_500_INTERNAL_SERVER_ERROR

from recoup.api.schemas import Problem
from recoup.core.errors import RecoupError
from recoup.core.faults import DATABASE_ERRORS, fault_text
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
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8): malformed, 422
        return problem(
            422,
            "Invalid input",
            f"invalid: body ({exc.detail})",
            code="invalid_input",
            errors=[{"field": "body", "message": str(exc.detail), "index": None}],
        )
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


# What each operation's OpenAPI says it may answer besides its success, all as problems: the
# schema is the contract clients are generated from and schemathesis checks every answer
# against it. Declared here, once, from what an operation has, so a new route is covered too.
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_WRITES = {"post", "put", "patch", "delete"}


def _problems(method: str, operation: dict[str, Any]) -> dict[str, str]:
    """The problem statuses an operation may answer, with their descriptions."""
    parameters = operation.get("parameters", [])
    found: dict[str, str] = {}
    if operation.get("security"):
        found["401"] = "No API key, or one unknown or revoked."
        found["403"] = "The key's role lacks the right."
    if method in _WRITES or any(p.get("in") == "path" for p in parameters):
        found["404"] = "An id that names nothing."
    if method in _WRITES:
        found["409"] = "A rule refuses it (in use, final status, a conflicting change)."
    if parameters or "requestBody" in operation:
        found["422"] = "Invalid input: every invalid field in `errors`."
    return found


def _is_fastapis_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (an OpenAPI document) with the problems of every operation declared: FastAPI's
    own 422 (`HTTPValidationError`, as application/json) replaced, what a route declares
    itself kept."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, description in _problems(method, operation).items():
                if status in responses and not _is_fastapis_422(responses[status]):
                    continue
                response: dict[str, Any] = {
                    "description": description,
                    "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
                }
                if status == "401":
                    response["headers"] = {
                        "WWW-Authenticate": {
                            "description": AUTH_SCHEME,
                            "schema": {"type": "string"},
                        }
                    }
                responses[status] = response
    # FastAPI's validation-error schemas, now referred to by nothing
    if "/HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema


def _document(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return document_problems(generate())  # FastAPI caches the document; this is idempotent

    app.openapi = openapi  # type: ignore[method-assign]


def _bad_data(exc: Exception) -> bool:
    """Data the database refuses to store, whatever the schema let through: a number out of its
    range (SQLite's 64-bit integers raise OverflowError, such as an id of 40 digits), a text
    holding NUL or too long for its column on PostgreSQL. PEP 249's DataError, which
    SQLAlchemy's wrapper is named after too (the API may not import the database layer)."""
    if isinstance(exc, OverflowError):
        return True
    return any(cls.__name__ == "DataError" for cls in type(exc).__mro__)


def database_error(request: Request, exc: Exception) -> JSONResponse:
    if not _bad_data(exc):
        return unexpected_error(request, exc)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
    detail = f"invalid: the database cannot store a value ({redact_text(reason[0])})"
    return problem(422, "Invalid input", detail, code="invalid_input")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RecoupError, recoup_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for database_exception in (*DATABASE_ERRORS, OverflowError):
        app.add_exception_handler(database_exception, database_error)
    app.add_exception_handler(Exception, unexpected_error)
    _document(app)


__all__ = ["PROBLEM_JSON", "Forbidden", "Unauthorized", "install", "problem"]
