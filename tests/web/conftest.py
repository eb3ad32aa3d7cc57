"""The back office in a real browser: a live uvicorn server (in a thread, on a free port) over
the test database, Debian's chromium driven by Playwright (never a downloaded browser), and
helpers to log in, save screenshots at laptop and tablet widths, and run axe-core.

Chromium missing: the browser tests skip, except under CI=true, where they fail (.ci/run
installs it). Each test gets its own browser context (cookies) on the session's browser; with
pytest-xdist each worker has its own server per test and its own browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recoup.core.sessions import transaction
from recoup.users.service import create_user
from recoup.web.assets import AXE
from tests.live_server import LiveServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"  # gitignored (build/)
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}
PASSWORD = "correct horse battery"
# root in CI needs --no-sandbox; the rest keeps chromium off the (closed) network at start
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USERS = {  # role → (name, email)
    "admin": ("Ada Admin", "ada@example.com"),
    "collector": ("Carl Collector", "carl@example.com"),
    "viewer": ("Vera Viewer", "vera@example.com"),
}


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture
def users(db_url: str) -> dict[str, tuple[str, str]]:
    """One user per role, all with PASSWORD: {"admin": (name, email), …}."""
    with transaction(db_url) as session:
        for role, (name, email) in USERS.items():
            create_user(session, name=name, email=email, role=role, password=PASSWORD)
    return USERS


@pytest.fixture
def live_server(db_url: str, users: dict[str, tuple[str, str]]) -> Iterator[LiveServer]:
    with LiveServer(db_url) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        if IN_CI:
            pytest.fail("chromium is required when CI=true (.ci/run installs it with apt)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies) at laptop size, its base URL the live server."""
    context = browser.new_context(base_url=live_server.url, viewport=LAPTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def log_in(page: Any, role: str = "admin", *, next_path: str = "/") -> None:
    _name, email = USERS[role]
    page.goto(f"/login?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: url.endswith(next_path))


def screenshots(page: Any, name: str) -> list[Path]:
    """Save the page at laptop and tablet widths (full page) into build/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for label, size in (("laptop", LAPTOP), ("tablet", TABLET)):
        page.set_viewport_size(size)
        path = SCREENSHOTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    page.set_viewport_size(LAPTOP)
    print("screenshots:", ", ".join(str(p) for p in saved))
    return saved


def check_accessibility(page: Any) -> None:
    """axe-core (from npm) on the page as it is: no serious or critical violation. Injected
    with evaluate(), which the page's Content-Security-Policy does not apply to."""
    if not AXE.is_file():
        if IN_CI:
            pytest.fail(f"{AXE} missing: run `make setup` (npm ci --prefix recoup/web)")
        pytest.skip("axe-core not installed (npm ci --prefix recoup/web)")
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
    details = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] if node["target"] else "?" for node in v["nodes"][:5])
        for v in bad
    ]
    assert not bad, "accessibility violations:\n" + "\n".join(details)
