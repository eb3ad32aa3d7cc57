"""The collector's work list in a real browser: my roles' tasks only, with the customer,
phone, balance, days overdue and instructions; claim (htmx, and without JavaScript), release,
complete with a promise to pay, errors beside their fields and nothing written; another role's
task refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from recoup.api.app import create_app
from recoup.core.sessions import transaction
from recoup.models import Plan, Task
from recoup.web.filters import money
from tests.web.conftest import LAPTOP, check_accessibility, log_in, screenshots
from tests.web.seed import Book, seed
from tests.web.test_security import TOKEN
from tests.web.test_security import log_in as http_log_in


def task_row(db_url: str, task_id: int) -> tuple[str, str | None, str | None]:
    with transaction(db_url) as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task.status, task.claimed_by, task.outcome


@pytest.fixture
def book(db_url: str) -> Book:
    return seed(db_url)


def test_claim_and_complete_a_task_with_a_promise(page: Any, db_url: str, book: Book) -> None:
    log_in(page, "collector")
    badge = page.locator("#waiting-count")
    expect(badge).to_have_text("1")  # the account manager's task is not counted
    page.get_by_role("link", name=re.compile("Tasks")).click()
    row = page.locator(f"#task-row-{book.collector_task}")
    expect(row).to_contain_text("Acme SARL")
    expect(row).to_contain_text("+33 1 23 45 67 89")
    expect(row).to_contain_text(money(Decimal("1200.00"), "EUR"))
    expect(row).to_contain_text("45 d overdue")
    expect(row).to_contain_text("Call the customer about the overdue invoice")
    expect(page.locator(f"#task-row-{book.manager_task}")).to_have_count(0)
    check_accessibility(page)
    screenshots(page, "tasks")

    row.get_by_role("button", name=f"Claim task {book.collector_task}").click()
    expect(row).to_contain_text("by Carl Collector")  # the row, swapped in place by htmx
    assert task_row(db_url, book.collector_task)[:2] == ("claimed", "Carl Collector")
    screenshots(page, "tasks-claimed")

    row.get_by_role("link", name="Complete").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Task #{book.collector_task}")
    check_accessibility(page)
    # a promise date that has passed: the error beside its field, nothing written
    page.get_by_label("What was done").fill("Spoke to the accountant")
    page.get_by_label("Will pay by").fill(str(book.today - timedelta(days=1)))
    page.get_by_role("button", name="Complete the task").click()
    error = page.locator("#promise-error")
    expect(error).to_contain_text("must be after")
    expect(page.get_by_label("Will pay by")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("What was done")).to_have_value("Spoke to the accountant")
    assert task_row(db_url, book.collector_task) == ("claimed", "Carl Collector", None)
    check_accessibility(page)
    screenshots(page, "task-error")
    page.get_by_label("Amount (EUR)").fill("abc")
    page.get_by_label("Will pay by").fill(str(book.today + timedelta(days=7)))
    page.get_by_role("button", name="Complete the task").click()
    expect(page.locator("#amount-error")).to_be_visible()
    page.get_by_label("Amount (EUR)").fill("500.00")
    page.get_by_role("button", name="Complete the task").click()

    expect(page).to_have_url(re.compile(r"/tasks\?done="))
    expect(page.get_by_role("status").first).to_contain_text(
        f"Task {book.collector_task} completed"
    )
    expect(page.get_by_role("heading", name="Nothing waiting")).to_be_visible()
    expect(badge).to_have_text("0")
    assert task_row(db_url, book.collector_task) == (
        "completed",
        "Carl Collector",
        "Spoke to the accountant",
    )
    with transaction(db_url) as session:
        plan = session.get(Plan, book.plan_id)
        assert plan is not None
        assert plan.status == "paused" and plan.pause_reason == "promise"
        assert plan.pause_until == book.today + timedelta(days=7)
        assert plan.promise_amount == Decimal("500.00")


def test_release_and_claim_without_javascript(browser: Any, live_server: Any, db_url: str,
                                              book: Book) -> None:  # fmt: skip
    context = browser.new_context(
        base_url=live_server.url, viewport=LAPTOP, java_script_enabled=False
    )
    page = context.new_page()
    try:
        log_in(page, "collector")
        page.goto("/tasks")
        row = page.locator(f"#task-row-{book.collector_task}")
        row.get_by_role("button", name=f"Claim task {book.collector_task}").click()
        expect(page.get_by_role("status").first).to_contain_text("is yours now")
        expect(row).to_contain_text("by Carl Collector")
        row.get_by_role("button", name=f"Release task {book.collector_task}").click()
        expect(page.get_by_role("status").first).to_contain_text("open again")
        assert task_row(db_url, book.collector_task)[:2] == ("open", None)
        # completing needs a note or a promise: said beside the note
        page.goto(f"/tasks/{book.collector_task}")
        page.get_by_role("button", name="Claim").click()
        page.goto(f"/tasks/{book.collector_task}")
        page.get_by_role("button", name="Complete the task").click()
        expect(page.locator("#note-error")).to_contain_text("Say what was done")
        assert task_row(db_url, book.collector_task)[0] == "claimed"
    finally:
        context.close()


@pytest.fixture
def client(db_url: str, users: object) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        yield client


def test_a_collector_cannot_take_another_roles_task(client: TestClient, db_url: str,
                                                    book: Book) -> None:  # fmt: skip
    http_log_in(client, "collector")
    listed = client.get("/tasks")
    assert listed.status_code == 200
    assert f"task-row-{book.collector_task}" in listed.text
    assert f"task-row-{book.manager_task}" not in listed.text
    token = TOKEN.search(listed.text)
    assert token
    for action in ("claim", "complete", "release"):
        refused = client.post(
            f"/tasks/{book.manager_task}/{action}",
            data={"csrf_token": token.group(1), "note": "mine now"},
        )
        assert refused.status_code == 403, action
        assert "account_manager" in refused.text
    assert task_row(db_url, book.manager_task) == ("open", None, None)
    shown = client.get(f"/tasks/{book.manager_task}")
    assert shown.status_code == 200 and "not one of yours" in shown.text
    assert "Claim</button>" not in shown.text
    # a viewer has no work list; an unknown task is the 404 page
    client.cookies.clear()
    http_log_in(client, "viewer")
    assert client.get("/tasks").status_code == 403
    client.cookies.clear()
    http_log_in(client, "admin")
    assert client.get("/tasks/999").status_code == 404
    # an admin takes any task
    token = TOKEN.search(client.get("/tasks").text)
    assert token
    claimed = client.post(f"/tasks/{book.manager_task}/claim", data={"csrf_token": token.group(1)})
    assert claimed.status_code == 303
    assert task_row(db_url, book.manager_task)[:2] == ("claimed", "Ada Admin")
