"""Logging in and out in a real browser: the form, a wrong password, where it goes back to,
the navigation bar; the login page and the empty dashboard pass axe."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import PASSWORD, USERS, check_accessibility, log_in, screenshots


def test_log_in_and_out(page: Any) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    check_accessibility(page)
    screenshots(page, "login")
    page.get_by_label("Email").fill(USERS["collector"][1])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("The email or the password is wrong")
    expect(page.get_by_label("Email")).to_have_value(USERS["collector"][1])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Tasks")).to_be_visible()
    expect(nav.get_by_role("link", name="Settings")).to_have_count(0)  # admin only
    expect(page.locator(".who")).to_contain_text("Carl Collector")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))


def test_login_goes_back_to_the_page_asked_for(page: Any) -> None:
    page.goto("/settings")
    expect(page).to_have_url(re.compile(r"/login\?next=/settings$"))
    page.get_by_label("Email").fill(USERS["admin"][1])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    check_accessibility(page)


def test_a_viewer_is_refused_an_admin_page(page: Any) -> None:
    log_in(page, "viewer")
    response = page.goto("/settings")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.locator("main")).to_contain_text("needs the right to configure")
    check_accessibility(page)
    screenshots(page, "forbidden")
