"""The back office (issue 12): server-rendered pages for the people who run collections,
served by `recoup serve` at `/` beside the API at /api/v1 (`install(app)`, called by
recoup.api.app.create_app).

How a page is made (the foundation every page builds on):

- A module in `recoup/web/pages/` with a `router`, listed in `ROUTERS` below. Routes are plain
  `def` (FastAPI runs them in a thread pool) and call the same repositories, services and
  schemas as the API and the CLI; nothing here runs a query (the import contract forbids
  SQLAlchemy in `recoup.web`).
- Each route takes a `Page` that declares its one right (recoup/web/page.py: `ReadPage`,
  `OperatePage`, `ConfigurePage`; `PublicDep` for the login form). The `Page` holds the
  request's unit of work (`page.session`, recoup.core.requests.SessionDep: committed once the
  route has answered, rolled back on an error), the user (`page.login`, whose `name` is the
  actor logged), the business date (`page.today`), and answers with
  `page.render("x.html", **context)` or, after a form, `page.redirect(url, message=...)`.
- Templates (`recoup/web/templates/`) extend `base.html` (the navigation bar with the counter
  of tasks waiting for my roles, the messages) and put `{{ csrf_field() }}` in every form; the
  CSRF check itself is done for the whole app (recoup/web/auth.py). htmx is an enhancement: a
  form works as a plain POST + redirect, and `hx-post`/`hx-target` only make it smoother.
- Errors: a RecoupError a form should show beside its field is caught by the route, which
  calls `page.rollback()` (nothing of the form is written) and renders the form again with
  `errors={field: message}` and status 422 (pages/tasks.py `complete` is the example); any
  other becomes the error page with its status (404, 409…), a missing right the 403 page, no
  login a redirect to /login?next=. htmx swaps 403/404/409/422 answers too (base.html's
  htmx-config), an error page in place of <main>.
- Assets: our CSS and JS in `recoup/web/static/`, the libraries from npm at /static/vendor/
  (recoup/web/assets.py)."""

from __future__ import annotations

from fastapi import FastAPI

from recoup.web.app import ROUTERS, WebConfig, create_web_app


def install(app: FastAPI, config: WebConfig | None = None) -> None:
    """Serve the back office at `/` of `app`, on the same database (its session factory).
    Called last: the pages are mounted under every route already added (the API's)."""
    web = create_web_app(config or WebConfig.from_env())
    web.state.session_factory = app.state.session_factory
    web.state.database_url = getattr(app.state, "database_url", "")
    app.mount("/", web, name="web")


__all__ = ["ROUTERS", "WebConfig", "install"]
