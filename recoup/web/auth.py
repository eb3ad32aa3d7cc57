"""Who is logged in, what they may do, and the CSRF check (issue 12).

- The session cookie (`COOKIE`) holds a random token; recoup.users.service keeps its hash, an
  expiry and whether it was revoked. It is HttpOnly, SameSite=Lax, Path=/, and Secure when the
  page was served over https (or always/never: `RECOUP_WEB_SECURE_COOKIES`).
- A page declares the one right it needs, as an API route does: `page: ReadPage` (or
  `OperatePage`, `ConfigurePage`, or `Depends(requires(Right.x))`). Not logged in: a redirect
  to /login?next=<this page>; logged in without the right: the 403 page. Pages anyone may open
  (the login form, the assets) declare `PublicDep`. tests/web/test_rights.py checks every page.
- CSRF: every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's token, in the
  form's `csrf_token` field (`{{ csrf_field() }}` in a template) or in the `X-CSRF-Token`
  header (htmx sends it: `hx-headers` on <body>). The login form, which has no session yet,
  carries the token of a short-lived cookie of its own (double submit). Checked for the whole
  app (`check_csrf`, a dependency of the web app), so a new form cannot forget it."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from recoup.core.requests import SessionDep
from recoup.core.roles import Right, Role, allowed
from recoup.users.service import session_of

COOKIE = "recoup_session"
LOGIN_CSRF_COOKIE = "recoup_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotLoggedIn(Exception):
    """Answered by a redirect to the login form, coming back to `next` afterwards."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageRefused(Exception):
    """Answered by the 403 page: a missing right, or a form without its CSRF token."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Login:
    """The logged-in user, as the pages need them."""

    user_id: int
    name: str  # the actor of what they write in the log
    email: str
    role: Role
    task_roles: tuple[str, ...]
    session_id: int
    csrf_token: str

    def may(self, right: Right) -> bool:
        return allowed(self.role, right)

    @property
    def works_every_role(self) -> bool:
        """An admin sees and may take every task (a manager reassigning work)."""
        return self.role == Role.admin

    def works(self, task_role: str) -> bool:
        """Whether this user may take a task for `task_role`."""
        return self.works_every_role or task_role in self.task_roles

    @property
    def work_roles(self) -> tuple[str, ...] | None:
        """The task roles of 'my tasks'; None: every role."""
        return None if self.works_every_role else self.task_roles


def current_login(request: Request, session: SessionDep) -> Login | None:
    token = request.cookies.get(COOKIE)
    found = session_of(session, token) if token else None
    if found is None:
        return None
    row, user = found
    login = Login(
        user_id=user.id,
        name=user.name,
        email=user.email,
        role=Role(user.role),
        task_roles=tuple(user.task_roles),
        session_id=row.id,
        csrf_token=row.csrf_token,
    )
    request.state.login = login
    return login


LoginDep = Annotated[Login | None, Depends(current_login)]


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


async def check_csrf(request: Request, login: LoginDep) -> None:
    """Every unsafe request carries the session's CSRF token (or, for the login form, its
    cookie's); otherwise the 403 page and nothing is done."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    expected = login.csrf_token if login is not None else request.cookies.get(LOGIN_CSRF_COOKIE)
    if not _same(given, expected):
        raise PageRefused(
            "This form has expired or did not come from Recoup (its security token is missing "
            "or wrong). Go back, reload the page and try again."
        )


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this site only (never `//host` or a URL)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ch in value for ch in "\r\n\t"):
        return "/"
    return value


__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "Login",
    "LoginDep",
    "NotLoggedIn",
    "PageRefused",
    "check_csrf",
    "current_login",
    "new_login_csrf",
    "safe_next",
]
