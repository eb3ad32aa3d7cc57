"""What a page route gets: `Page` (the request, its unit of work, the logged-in user, the
business date) and how it answers (`page.render(template, **context)`, `page.redirect(url)`).

    @router.get("/tasks")
    def tasks(page: OperatePage) -> Response:
        items = task_repository.work_list(page.session, today=page.today, ...)
        return page.render("tasks.html", items=items)

The right is declared by the annotation (`ReadPage`, `OperatePage`, `ConfigurePage`) or by
`Annotated[Page, Depends(requires(Right.x))]`; a page anyone may open takes `PublicDep`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from recoup.core.requests import SessionDep
from recoup.core.roles import Right
from recoup.core.sessions import Session
from recoup.settings.service import business_today
from recoup.tasks import repository as task_repository
from recoup.web import filters
from recoup.web.auth import CSRF_FIELD, Login, LoginDep, NotLoggedIn, PageRefused

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
filters.install(TEMPLATES.env)

# the navigation bar: (path, label, right needed to see the link)
NAVIGATION: list[tuple[str, str, Right]] = [
    ("/", "Dashboard", Right.read),
    ("/tasks", "Tasks", Right.operate),
    ("/late", "Late invoices", Right.read),
    ("/customers", "Customers", Right.read),
    ("/import", "Import", Right.operate),
    ("/runs", "Runs", Right.read),
    ("/config", "Configuration", Right.configure),
]


def layout_context(
    request: Request,
    login: Login | None,
    *,
    csrf: str,
    waiting: int = 0,
    messages: list[str] | None = None,
) -> dict[str, Any]:
    """What base.html needs: the user, the navigation they may see, the CSRF token."""
    return {
        "login": login,
        "csrf_token": csrf,
        "csrf_field": lambda: Markup(
            f'<input type="hidden" name="{CSRF_FIELD}" value="{Markup.escape(csrf)}">'
        ),
        "navigation": [
            (path, label) for path, label, right in NAVIGATION if login and login.may(right)
        ],
        "current_path": request.url.path,
        "waiting": waiting,
        "messages": messages or [],
        "is_htmx": request.headers.get("HX-Request") == "true",
    }


@dataclass
class Page:
    request: Request
    session: Session
    login: Login | None
    messages: list[str] = field(default_factory=list)

    @cached_property
    def today(self) -> date:
        """The business date (the settings' time zone), as the CLI's default `--on`."""
        return business_today(self.session)

    @property
    def actor(self) -> str:
        """Who is acting, as the log records it: the user's name."""
        assert self.login is not None
        return self.login.name

    def waiting_count(self) -> int:
        """The tasks waiting for my roles: the counter in the navigation bar."""
        if self.login is None:
            return 0
        return task_repository.count_waiting(self.session, roles=self.login.work_roles)

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        login = self.login
        base = layout_context(
            self.request,
            login,
            csrf=login.csrf_token if login else context.pop("login_csrf", ""),
            waiting=self.waiting_count() if login else 0,
            messages=self.messages,
        )
        return TEMPLATES.TemplateResponse(
            self.request, template, {**base, **context}, status_code=status_code
        )

    def rollback(self) -> None:
        """A form refused after it began changing things: undo them all before rendering
        the errors (the request's unit of work then commits nothing)."""
        self.session.rollback()

    def redirect(self, url: str, *, message: str | None = None) -> Response:
        """After a form: 303 to `url` (a GET), or, for htmx, the same through HX-Redirect."""
        if message:
            url += ("&" if "?" in url else "?") + "done=" + quote(message)
        if self.request.headers.get("HX-Request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)


class Requires:
    """The dependency a page declares its right with; tests/web/test_rights.py reads `.right`."""

    def __init__(self, right: Right) -> None:
        self.right = right

    def __call__(self, request: Request, session: SessionDep, login: LoginDep) -> Page:
        if login is None:
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise NotLoggedIn(wanted)
        if not login.may(self.right):
            raise PageRefused(
                f"Your role ({login.role}) may not open this page: it needs the right to "
                f"{self.right.value}. Ask an administrator if you need it."
            )
        page = Page(request, session, login)
        done = request.query_params.get("done")
        if done:
            page.messages.append(done[:200])
        return page

    def __repr__(self) -> str:
        return f"Requires({self.right.value})"


_REQUIRES = {right: Requires(right) for right in Right}


def requires(right: Right) -> Requires:
    return _REQUIRES[right]


def public(request: Request, session: SessionDep, login: LoginDep) -> Page:
    """A page anyone may open (the login form): the user, if any, is still known."""
    return Page(request, session, login)


ReadPage = Annotated[Page, Depends(requires(Right.read))]
OperatePage = Annotated[Page, Depends(requires(Right.operate))]
ConfigurePage = Annotated[Page, Depends(requires(Right.configure))]
PublicDep = Annotated[Page, Depends(public)]

__all__ = [
    "NAVIGATION",
    "TEMPLATES",
    "ConfigurePage",
    "OperatePage",
    "Page",
    "PublicDep",
    "ReadPage",
    "Requires",
    "layout_context",
    "public",
    "requires",
]
