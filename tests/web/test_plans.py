"""The late-invoice list, a plan's page and the customers' pages in a real browser, on a book
run today (tests/web/plans_book.py): due-date order and the filters, the cursor pages, a bulk
pause behind its confirmation changing exactly the chosen plans, the ladder and the next
step, a letter opened as a PDF, a fee waived with a reason, a manual action, and a viewer
who sees no button and is refused a write. Each page passes axe and is photographed."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from recoup.core.sessions import transaction
from recoup.models import Charge, Document, Plan
from tests.web.conftest import check_accessibility, log_in, screenshots
from tests.web.plans_book import LATE_ORDER, PlansBook, plan_statuses, seed_plans_book


@pytest.fixture
def book(env: dict[str, str], db_url: str, tmp_path: Path) -> PlansBook:
    return seed_plans_book(db_url, tmp_path)


def _shown_invoices(page: Any) -> list[str]:
    return list(page.locator("#late-results tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.invoice)"
    ))  # fmt: skip


def test_the_late_list_in_due_date_order_with_its_filters(page: Any, book: PlansBook) -> None:
    log_in(page, "collector", next_path="/late")
    expect(page.get_by_role("heading", level=1)).to_have_text("Late invoices")
    assert _shown_invoices(page) == LATE_ORDER  # I6 is not due yet
    row = page.locator('tr[data-invoice="I1"]')
    expect(row).to_contain_text("Acme SARL")
    expect(row).to_contain_text("12")
    expect(row).to_contain_text("400.00 EUR")
    expect(row).to_contain_text(f"Plan #{book.plans['I1']}")
    expect(row).to_contain_text("letter · Standard")
    expect(page.locator('tr[data-invoice="I5"]')).to_contain_text("no plan")
    check_accessibility(page)
    screenshots(page, "late-invoices")
    page.get_by_label("Select all on this page").check()  # plans.js: one box for the page
    expect(page.locator('input[name="plan"]:checked')).to_have_count(4)

    page.get_by_label("Currency").fill("usd")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"currency=usd"))
    expect(page.locator("#late-results tbody tr")).to_have_count(2)
    assert _shown_invoices(page) == ["I3", "I4"]

    filters = {
        "status=none": ["I5"],
        "level=notice": ["I4", "I2"],
        "policy=Standard&min_days=10": ["I3", "I1"],
        "min_days=8&max_days=15": ["I1", "I4"],
        "search=bolt": ["I3", "I4"],
        "search=INV-I2": ["I2"],
        "customer=C1&status=active": ["I1", "I2"],
    }
    for query, expected in filters.items():
        page.goto(f"/late?{query}")
        assert _shown_invoices(page) == expected, query

    page.goto("/late?search=nobody")
    expect(page.locator(".empty")).to_have_text("No late invoice matches these filters.")
    page.goto("/late?min_days=soon&currency=EURO")
    expect(page.locator("#min_days-error")).to_have_text("a whole number of days, 1 or more")
    expect(page.get_by_label("Currency")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#currency-error")).to_contain_text("three-letter")
    check_accessibility(page)

    # cursor pages: two at a time, every late invoice once, in order
    page.goto("/late?limit=2")
    seen: list[str] = []
    for _ in range(5):
        seen += _shown_invoices(page)
        following = page.get_by_role("link", name="Next page →")
        if following.count() == 0:
            break
        following.click()
        expect(page.get_by_role("link", name="First page")).to_be_visible()
    assert seen == LATE_ORDER


def test_bulk_pause_changes_exactly_the_chosen_plans(
    page: Any, book: PlansBook, db_url: str
) -> None:
    log_in(page, "collector", next_path="/late")
    expect(page.locator('tr[data-invoice="I5"] input[type="checkbox"]')).to_have_count(0)
    page.get_by_label(f"Select plan {book.plans['I1']} (invoice INV-I1)").check()
    page.get_by_label(f"Select plan {book.plans['I2']} (invoice INV-I2)").check()
    page.get_by_role("button", name="Pause selected plans…").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Pause 2 plans?")
    expect(page.locator("main")).to_contain_text("Nothing has changed yet")
    table = page.get_by_role("table", name="Plans that will change")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text(f"Plan #{book.plans['I1']}")
    expect(table).to_contain_text(f"Plan #{book.plans['I2']}")
    assert set(plan_statuses(db_url).values()) == {"active"}  # nothing yet
    check_accessibility(page)
    screenshots(page, "late-confirm")

    page.get_by_role("button", name="Pause 2 plans").click()  # no reason: refused
    expect(page.locator("#c-reason-error")).to_have_text("Say why the plans are paused.")
    assert set(plan_statuses(db_url).values()) == {"active"}
    page.get_by_label("Why are they paused?").fill("customer on holiday")
    page.get_by_role("button", name="Pause 2 plans").click()

    expect(page).to_have_url(re.compile(r"/late\?done="))
    expect(page.get_by_role("status")).to_contain_text(
        f"2 plan(s) paused: #{book.plans['I1']}, #{book.plans['I2']}"
    )
    expect(page.locator('tr[data-invoice="I1"] td.status')).to_contain_text("paused")
    expect(page.locator('tr[data-invoice="I2"] td.status')).to_contain_text("paused")
    expect(page.locator('tr[data-invoice="I3"] td.status')).to_contain_text("active")
    assert plan_statuses(db_url) == {
        "I1": "paused", "I2": "paused", "I3": "active", "I4": "active"
    }  # fmt: skip
    with transaction(db_url) as session:
        paused = session.get(Plan, book.plans["I1"])
        assert paused is not None and paused.pause_reason == "customer on holiday"

    # resume one of them; a plan already active in the selection is left and named
    page.get_by_label(f"Select plan {book.plans['I1']} (invoice INV-I1)").check()
    page.get_by_label(f"Select plan {book.plans['I3']} (invoice INV-I3)").check()
    page.get_by_role("button", name="Resume selected plans…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Resume 1 plan?")
    expect(page.locator("main")).to_contain_text("Left as they are (1)")
    page.get_by_role("button", name="Resume 1 plan").click()
    expect(page.get_by_role("status")).to_contain_text("1 plan(s) resumed")
    assert plan_statuses(db_url) == {
        "I1": "active", "I2": "paused", "I3": "active", "I4": "active"
    }  # fmt: skip

    # a paused plan's page promises no next level
    page.goto(f"/plans/{book.plans['I2']}")
    expect(page.locator(".next-step")).to_contain_text("Paused")
    expect(page.locator(".rung-next")).to_have_count(0)


def test_a_plans_page_its_ladder_letter_fee_and_manual_action(
    page: Any, book: PlansBook, db_url: str
) -> None:
    plan_id = book.plans["I1"]
    log_in(page, "collector", next_path=f"/plans/{plan_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Plan #{plan_id}")
    expect(page.locator(".figures")).to_contain_text("400.00 EUR")
    ladder = page.locator(".ladder")
    expect(ladder.locator(".rung-done")).to_contain_text("notice")
    expect(ladder.locator('[aria-current="step"]')).to_contain_text("letter")
    call_on = (book.due("I1") + timedelta(days=15)).isoformat()
    expect(ladder.locator(".rung-next")).to_contain_text("call")
    expect(ladder.locator(".rung-next")).to_contain_text(call_on)
    expect(ladder.locator(".rung-later")).to_contain_text("end level")
    expect(page.locator(".next-step")).to_have_text(f"Level call on {call_on}.")
    check_accessibility(page)
    screenshots(page, "plan")

    # the letter opens in the browser: an inline PDF about the invoice
    link = page.get_by_role("link", name=re.compile(r"letter_final\.pdf"))
    href = link.get_attribute("href")
    assert href and href.startswith("/documents/")
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline;")
    text = " ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(response.body())).pages)
    assert "I1" in text and "INV-I1" in text
    assert page.request.get("/documents/999/pdf").status == 404

    # waive the fee: a reason is needed
    charges = page.locator("#charges")
    charges.get_by_role("button", name="Waive").click()
    expect(page.locator("#charges .field-error")).to_contain_text("must not be empty")
    with transaction(db_url) as session:
        (charge,) = session.query(Charge).filter(Charge.plan_id == plan_id).all()
        assert charge.status == "open"
        charge_id = charge.id
    page.get_by_label(f"Reason to waive charge {charge_id}").fill("goodwill: first delay")
    page.locator("#charges").get_by_role("button", name="Waive").click()
    expect(page.get_by_role("status")).to_contain_text(f"Charge {charge_id} waived")
    expect(page.locator("#charges")).to_contain_text(
        "waived by Carl Collector: goodwill: first delay"
    )
    expect(page.locator("#charges").get_by_role("button", name="Waive")).to_have_count(0)
    with transaction(db_url) as session:
        waived = session.get(Charge, charge_id)
        assert waived is not None and waived.status == "waived"
        assert waived.waived_reason == "goodwill: first delay"

    # the manual actions the level allows: a letter, not an email nor a status change
    expect(page.get_by_role("button", name="Send an email")).to_have_count(0)
    expect(page.get_by_role("button", name="Change the account status")).to_have_count(0)
    expect(page.locator("details.small")).to_contain_text("no send_email action")
    page.get_by_role("button", name="Generate a letter").click()
    expect(page.get_by_role("status")).to_contain_text("Letter (letter_final): done")
    expect(page.get_by_role("link", name=re.compile(r"letter_final\.pdf"))).to_have_count(2)
    with transaction(db_url) as session:
        assert session.query(Document).filter(Document.plan_id == plan_id).count() == 2

    # pause with a reason and a date, then resume; stop needs a reason
    page.get_by_label("Reason", exact=True).first.fill("disputed by phone")
    page.get_by_label("Until (optional)").fill((book.today + timedelta(days=10)).isoformat())
    page.get_by_role("button", name="Pause plan").click()
    expect(page.get_by_role("status")).to_contain_text(f"Plan {plan_id} paused until")
    expect(page.locator("h1 .pill")).to_have_text("paused")
    page.get_by_role("button", name="Resume plan").click()
    expect(page.locator("h1 .pill")).to_have_text("active")
    page.get_by_role("button", name="Stop plan for good").click()
    expect(page.locator("#stop-reason-error")).to_contain_text("must not be empty")
    assert plan_statuses(db_url)["I1"] == "active"
    page.get_by_label("Reason", exact=True).last.fill("settled out of band")
    page.get_by_role("button", name="Stop plan for good").click()
    expect(page.get_by_role("status")).to_contain_text(f"Plan {plan_id} stopped")
    expect(page.locator("h1 .pill")).to_have_text("stopped")
    expect(page.locator("main")).to_contain_text("Closed: settled out of band")
    expect(page.get_by_role("heading", name="Act on this plan")).to_have_count(0)
    assert plan_statuses(db_url)["I1"] == "stopped"


def test_a_viewer_sees_no_button_and_may_not_post(page: Any, book: PlansBook, db_url: str) -> None:
    plan_id = book.plans["I1"]
    log_in(page, "viewer", next_path="/late")
    assert _shown_invoices(page) == LATE_ORDER
    expect(page.locator('input[type="checkbox"]')).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("selected plans"))).to_have_count(0)
    page.goto(f"/plans/{plan_id}")
    expect(page.locator(".ladder")).to_be_visible()
    expect(page.get_by_role("heading", name="Act on this plan")).to_have_count(0)
    expect(page.locator("main button")).to_have_count(0)
    check_accessibility(page)
    screenshots(page, "plan-viewer")
    # the letter is a read: a viewer opens it
    href = page.get_by_role("link", name=re.compile(r"\.pdf")).get_attribute("href")
    assert page.request.get(href).headers["content-type"] == "application/pdf"

    with transaction(db_url) as session:
        letters = session.query(Document).count()
    token = page.locator("body").get_attribute("hx-headers")
    assert token and "X-CSRF-Token" in token
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', token)
    assert csrf
    for path, form in (
        (f"/plans/{plan_id}/pause", {"reason": "x"}),
        (f"/plans/{plan_id}/stop", {"reason": "x"}),
        (f"/plans/{plan_id}/actions/letter", {}),
        ("/late/apply", {"op": "pause", "plan": str(plan_id), "reason": "x"}),
        ("/charges/1/waive", {"reason": "x"}),
    ):
        refused = page.request.post(path, form={**form, "csrf_token": csrf.group(1)})
        assert refused.status == 403, path
    assert set(plan_statuses(db_url).values()) == {"active"}
    with transaction(db_url) as session:
        assert {c.status for c in session.query(Charge)} == {"open"}
        assert session.query(Document).count() == letters


def test_the_customers_list_and_a_customers_page(page: Any, book: PlansBook) -> None:
    log_in(page, "viewer", next_path="/customers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")
    rows = page.locator("#customer-results tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Acme SARL")
    expect(rows.first).to_contain_text("770.00 EUR")  # I1, I2, I5, I6 (fees are not invoices)
    check_accessibility(page)
    screenshots(page, "customers")
    page.get_by_label("Search", exact=True).fill("bolt")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Bolt Inc")
    page.goto("/customers?search=zzz")
    expect(page.locator(".empty")).to_contain_text("No customer matches")

    page.goto("/customers")
    page.get_by_role("link", name="Acme SARL").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme SARL")
    expect(page.get_by_role("heading", name="Account status")).to_be_visible()
    plans = page.get_by_role("table", name="Plans of the customer")
    expect(plans.locator("tbody tr")).to_have_count(2)  # I1's and I2's
    invoices = page.get_by_role("table", name="Open invoices, oldest due first")
    expect(invoices.locator("tbody tr")).to_have_count(4)
    expect(invoices.locator("tbody tr").first).to_contain_text("INV-I5")
    charges = page.get_by_role("table", name="Charges of the customer")
    expect(charges.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("table", name="Log entries, oldest first")).to_contain_text(
        "plan_opened"
    )
    check_accessibility(page)
    screenshots(page, "customer")
    plans.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Plan #")
    assert page.goto("/customers/NOPE").status == 404
