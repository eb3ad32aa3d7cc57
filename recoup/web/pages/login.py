"""Log in (the form, its check) and log out (a POST, so a link or an image cannot log anyone
out). Logins are throttled per email (recoup.users.service.attempt_login); a failed or
refused login is logged with the email's failures in the window."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from recoup.core.clock import utc_now
from recoup.users.service import (
    LOGIN_WINDOW,
    SESSION_LIFETIME,
    attempt_login,
    close_session,
    open_session,
)
from recoup.web.auth import COOKIE, LOGIN_CSRF_COOKIE, new_login_csrf, safe_next
from recoup.web.page import PublicDep, ReadPage

router = APIRouter()
logger = logging.getLogger("recoup.web")
WINDOW_MINUTES = int(LOGIN_WINDOW.total_seconds() // 60)


def secure_cookies(request: Request) -> bool:
    """Secure cookies over https; `RECOUP_WEB_SECURE_COOKIES=always|never` decides otherwise
    (always: behind a proxy that ends TLS without forwarding the scheme)."""
    setting = request.app.state.web_config.secure_cookies
    if setting == "always":
        return True
    if setting == "never":
        return False
    return request.url.scheme == "https"


def _login_form(
    page: PublicDep,
    *,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    token = page.request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    response = page.render(
        "login.html",
        status_code=status_code,
        login_csrf=token,
        next_path=next_path,
        email=email,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(page.request),
    )
    return response


@router.get("/login")
def login_form(page: PublicDep, next: str | None = None) -> Response:  # noqa: A002
    if page.login is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(page, next_path=safe_next(next))


@router.post("/login")
def login(
    page: PublicDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    target = safe_next(next)
    now = utc_now()
    outcome = attempt_login(page.session, email, password, now=now) if email and password else None
    user = outcome.user if outcome is not None else None
    if user is None:
        client = page.request.client.host if page.request.client else "?"
        failures = outcome.failures if outcome is not None else 0
        throttled = outcome is not None and outcome.throttled
        logger.warning(
            "login %s for %r from %s (%d failed logins for it in the last %d minutes)",
            "refused (too many failures)" if throttled else "failed",
            email[:320],
            client,
            failures,
            WINDOW_MINUTES,
        )
        # refused or wrong, the same words and status: nothing tells the two apart
        return _login_form(
            page,
            next_path=target,
            email=email,
            error="The email or the password is wrong, or the account is disabled.",
            status_code=401,
        )
    opened = open_session(page.session, user, now=now)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        opened.token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(page.request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    logger.info("%s logged in", user.name)
    return response


@router.post("/logout")
def logout(page: ReadPage) -> Response:
    assert page.login is not None
    close_session(page.session, page.login.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
