"""The back office's security over HTTP (no browser): the session cookie's flags, CSRF on
every unsafe request, where a login may send you, rights on pages, and every page route
declaring one right (like tests/api/test_roles.py for the API)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from recoup.api.app import create_app
from recoup.core.clock import utc_now
from recoup.core.roles import Right
from recoup.core.sessions import transaction
from recoup.models import LoginAttempt, User, WebSession
from recoup.users.service import LOGIN_FAILURES, LOGIN_WINDOW
from recoup.web.app import ROUTERS, vendor
from recoup.web.auth import COOKIE
from recoup.web.page import Requires, public
from tests.web.conftest import PASSWORD, USERS

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(db_url: str, users: object) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        yield client


def log_in(client: TestClient, role: str, *, next_path: str = "/") -> httpx.Response:
    form = client.get("/login")
    token = TOKEN.search(form.text)
    assert token, form.text
    return client.post(
        "/login",
        data={
            "email": USERS[role][1],
            "password": PASSWORD,
            "next": next_path,
            "csrf_token": token.group(1),
        },
    )


def page_token(client: TestClient, path: str = "/") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found
    return found.group(1)


def test_the_session_cookie_is_httponly_samesite_lax_path_root(client: TestClient) -> None:
    response = log_in(client, "admin")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and COOKIE in v)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over http here; Secure over https
    assert client.get("/").status_code == 200


def test_secure_cookies_over_https_or_always(
    db_url: str, users: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(
        create_app(db_url), base_url="https://testserver", follow_redirects=False
    ) as client:
        response = log_in(client, "admin")  # over https: Secure
        assert "Secure" in response.headers["set-cookie"]
    monkeypatch.setenv("RECOUP_WEB_SECURE_COOKIES", "always")
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        form = client.get("/login")  # over http, but always Secure (a proxy ends TLS)
    assert "Secure" in form.headers["set-cookie"]


def test_a_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    log_in(client, "admin")
    refused = client.post("/logout")
    assert refused.status_code == 403
    assert "security token" in refused.text and "<html" in refused.text
    wrong = client.post("/logout", data={"csrf_token": "forged"})
    assert wrong.status_code == 403
    assert client.get("/").status_code == 200  # still logged in: nothing was done
    token = page_token(client)
    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303
    assert client.get("/").status_code == 303  # logged out: to the login form


def test_the_login_form_has_its_own_csrf_token(client: TestClient) -> None:
    client.get("/login")
    refused = client.post(
        "/login", data={"email": USERS["admin"][1], "password": PASSWORD, "next": "/"}
    )
    assert refused.status_code == 403
    assert COOKIE not in refused.headers.get("set-cookie", "")


def test_a_logged_out_session_stays_closed(client: TestClient) -> None:
    log_in(client, "admin")
    cookie = client.cookies[COOKIE]
    client.post("/logout", data={"csrf_token": page_token(client)})
    client.cookies.set(COOKIE, cookie)  # the old cookie, replayed
    assert client.get("/").status_code == 303


def test_an_expired_session_opens_nothing(client: TestClient, db_url: str) -> None:
    log_in(client, "admin")
    assert client.get("/").status_code == 200
    with transaction(db_url) as session:
        for row in session.scalars(select(WebSession)):
            row.expires_at = utc_now() - timedelta(seconds=1)
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/"
    log_in(client, "admin")  # the next login deletes the expired row
    with transaction(db_url) as session:
        assert len(session.scalars(select(WebSession)).all()) == 1
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("/settings", "/settings"),
        ("/tasks?status=open", "/tasks?status=open"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_after_login_only_a_local_path(client: TestClient, asked: str, lands: str) -> None:
    response = log_in(client, "admin", next_path=asked)
    assert response.headers["location"] == lands


def test_not_logged_in_redirects_to_the_login_form(client: TestClient) -> None:
    response = client.get("/settings")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/settings"


@pytest.mark.parametrize("role", ["collector", "viewer"])
def test_only_an_admin_opens_the_settings(client: TestClient, role: str) -> None:
    log_in(client, role)
    response = client.get("/settings")
    assert response.status_code == 403 and "Not allowed" in response.text
    client.cookies.clear()
    log_in(client, "admin")
    assert client.get("/settings").status_code == 200


def test_a_wrong_password_is_401_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/login")
    token = page_token(client, "/login")
    response = client.post(
        "/login",
        data={"email": USERS["admin"][1], "password": "wrong", "next": "/", "csrf_token": token},
    )
    assert response.status_code == 401 and "is wrong" in response.text
    assert any("login failed" in r.getMessage() for r in caplog.records)


def test_security_headers_and_the_api_beside_the_pages(client: TestClient) -> None:
    page = client.get("/login")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    api = client.get("/api/v1/nothing-here")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/plans").status_code == 401  # the API keeps its own auth
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/vendor/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/package.json").status_code == 404


def _declared(route: APIRoute) -> list[object]:
    found: list[object] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, Requires) or dependant.call is public:
            found.append(dependant.call)
        stack.extend(dependant.dependencies)
    return found


PAGE_ROUTES = [
    (method, route.path, route)
    for router in [*ROUTERS, vendor]
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in sorted(route.methods)
]


def test_every_page_declares_one_right_or_is_public() -> None:
    assert len(PAGE_ROUTES) >= 4
    for method, path, route in PAGE_ROUTES:
        declared = _declared(route)
        assert len(declared) == 1, f"{method} {path} declares {declared or 'nothing'}"
        if method != "GET" and path not in ("/login",):
            assert declared[0] is not public, f"{method} {path} writes without a login"
            assert isinstance(declared[0], Requires)
            if path != "/logout":
                assert declared[0].right != Right.read, f"{method} {path} writes with read"


def _try(client: TestClient, email: str, password: str) -> httpx.Response:
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": "/",
            "csrf_token": page_token(client, "/login"),
        },
    )


@pytest.mark.parametrize("email", [USERS["admin"][1], "nobody@example.com"])
def test_five_failed_logins_refuse_the_next_like_a_wrong_password(
    client: TestClient, db_url: str, caplog: pytest.LogCaptureFixture, email: str
) -> None:
    for _ in range(LOGIN_FAILURES):
        assert _try(client, email, "wrong").status_code == 401
    wrong = _try(client, email, "wrong")
    refused = _try(client, email, PASSWORD)  # the right one, for the admin: refused all the same
    for response in (wrong, refused):
        assert response.status_code == 401 and "is wrong" in response.text
        assert COOKIE not in response.cookies
    assert any("login refused" in r.getMessage() for r in caplog.records)
    # another user still logs in
    assert log_in(client, "viewer").status_code == 303
    client.cookies.clear()
    with transaction(db_url) as session:  # the window passes
        for row in session.scalars(select(LoginAttempt)):
            row.attempted_at -= LOGIN_WINDOW
        assert session.scalar(select(func.count()).select_from(User)) == len(USERS)
    if email == USERS["admin"][1]:
        assert log_in(client, "admin").status_code == 303
    else:
        assert _try(client, email, "wrong").status_code == 401
        with transaction(db_url) as session:  # the old failures went, this one is counted
            assert len(session.scalars(select(LoginAttempt)).all()) == 1
