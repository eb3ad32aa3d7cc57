"""The dashboard in a real browser: the owed amounts of the seeded invoices per currency, the
aging chart drawn (and its table), plans by status and level, today's run, the counter, the
empty state; axe and screenshots at both widths."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from playwright.sync_api import expect

from recoup.reports.service import week_start
from recoup.web.filters import money
from tests.web.conftest import check_accessibility, log_in, screenshots
from tests.web.seed import seed


def test_an_empty_book_says_what_to_do(page: Any) -> None:
    log_in(page, "viewer")
    expect(page.get_by_role("heading", name="No invoices yet")).to_be_visible()
    expect(page.locator("main")).to_contain_text("recoup import invoices")
    expect(page.locator("main")).to_contain_text("No run so far")
    check_accessibility(page)
    screenshots(page, "dashboard-empty")


def test_the_dashboard_shows_what_is_owed(page: Any, db_url: str) -> None:
    book = seed(db_url)
    log_in(page, "admin")
    eur = page.get_by_test_id("owed-EUR")
    expect(eur).to_have_text(money(Decimal("1500.00"), "EUR"))
    expect(page.get_by_test_id("owed-USD")).to_have_text(money(Decimal("80.00"), "USD"))
    section = page.locator("section.currency", has=page.get_by_role("heading", name="EUR"))
    # the aging table: 300 in 1–30, 1,200 in 31–60
    section.get_by_text("As a table").first.click()
    rows = section.locator("table").first.locator("tbody tr")
    expect(rows.nth(1)).to_contain_text(money(Decimal("300.00"), "EUR"))
    expect(rows.nth(2)).to_contain_text(money(Decimal("1200.00"), "EUR"))
    # the chart is drawn (Chart.js from npm, served by Recoup)
    drawn = page.evaluate(
        "() => Chart.getChart(document.querySelector('canvas[data-chart=\"aging-EUR\"]')) !== undefined"
    )
    assert drawn
    expect(section.locator("dl.figures.small").nth(1)).to_contain_text("call")
    expect(page.locator("#tasks-title + .big")).to_have_text("2")  # an admin works every role
    expect(page.get_by_role("link", name=re.compile("Tasks"))).to_contain_text("2")
    expect(page.locator("#run-title + .big")).to_have_text("finished")
    # what was received per week, and the plans that ended: Cora's, recovered
    drawn = page.evaluate(
        "() => Chart.getChart(document.querySelector('canvas[data-chart=\"weeks-EUR\"]')) !== undefined"
    )
    assert drawn
    section.get_by_text("As a table").nth(1).click()
    paid_week = week_start(book.today - timedelta(days=3)).isoformat()
    week = section.locator("table").nth(1).locator("tbody tr", has_text=paid_week)
    expect(week).to_contain_text(money(Decimal("250.00"), "EUR"))
    expect(week).to_contain_text("100.0 %")
    expect(section.locator(".figures").first).to_contain_text("100.0 %")  # recovery rate
    check_accessibility(page)
    screenshots(page, "dashboard")
