"""Issue 12's main journey in one browser session, asserting what each page shows: an admin
creates a policy with three levels (a problem beside its field, fixed), imports customers and
invoices (a bad file first: every bad line, nothing changed), runs, sees the plan on the late
list and on its page, runs later and sees it move a level, opens its letter; a collector claims
the task and completes it with a promise; the admin records a payment for the whole balance
and sees the plan recovered, then waives its fee with a reason. On both databases.

Only the templates and actions the policy picks are set up beforehand (`recoup config apply`
of a file without a policy): everything else goes through the pages."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import func, select

from recoup.core.sessions import transaction
from recoup.models import Charge, Invoice, Plan
from recoup.settings.service import business_today
from recoup.web.filters import money
from tests.runs.test_run_e2e import Cli
from tests.web.conftest import LAPTOP, LiveServer, check_accessibility, log_in, screenshots

# what the policy picks from: a letter, a fee, a task for collectors (no policy yet)
ACTIONS = """
settings:
  mode: invoice
  invoice_types: [commercial]
  timezone: UTC
  catch_up: latest
templates:
  - {code: overdue_letter, channel: letter, language: en, body: "Letter about invoice {{ invoice.number }}: {{ balance|money }} is overdue."}
actions:
  - {code: letter_first, type: send_letter, template: overdue_letter}
  - {code: fee_10, type: late_fee_fixed, amounts: {EUR: "10.00"}, service: LATE_FEE}
  - {code: call_task, type: manual, role: collector, instructions: "Call Acme about the overdue invoice"}
policies: []
"""
CUSTOMERS = (
    "id,name,email,phone,language,country,currency\n"
    "C1,Acme SARL,billing@acme.test,+33 1 23 45 67 89,en,FR,EUR\n"
    "C2,Bolt Inc,ap@bolt.test,,en,US,EUR\n"
)
INVOICE_HEADER = "id,customer_id,number,issue_date,due_date,currency,amount\n"


def _invoices_count(db_url: str) -> int:
    with transaction(db_url) as session:
        return int(session.scalar(select(func.count()).select_from(Invoice)) or 0)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _start_run(page: Any, day: str) -> None:
    page.goto("/runs")
    page.get_by_label("For the day").fill(day)
    page.get_by_role("button", name="Start the run").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(rf"Run #\d+ for {day}"))
    expect(page.locator("#progress .status-line")).to_contain_text("finished", timeout=60_000)


def test_the_main_journey(
    env: dict[str, str],
    db_url: str,
    tmp_path: Path,
    browser: Any,
    live_server: LiveServer,
    page: Any,
) -> None:
    Cli(tmp_path)("config", "apply", _write(tmp_path, "actions.yaml", ACTIONS))
    with transaction(db_url) as session:
        today = business_today(session)
    due = today - timedelta(days=20)  # I1: twenty days late today

    # --- an admin logs in and creates a policy with three levels -------------------------
    log_in(page, "admin")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Import")
    page.goto("/config/policies/new")
    page.get_by_label("Name", exact=True).fill("Journey")
    page.get_by_label("The default policy").check()
    levels = [
        ("letter", "5", "letter_first, fee_10"),
        ("call", "15", "call_task"),
        ("final", "10", "letter_first"),  # fewer days than the level before: refused
    ]
    for n, (code, days, actions) in enumerate(levels, start=1):
        page.get_by_label(f"Level {n} code").fill(code)
        page.get_by_label(f"Level {n} days").fill(days)
        page.get_by_label(f"Level {n} actions").fill(actions)
    page.get_by_label("Level 3 is the end level").check()
    page.get_by_role("button", name="Create the policy").click()
    final_days = page.get_by_label("Level 3 days")
    expect(final_days).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#levels-2-days-error")).to_contain_text("ascending days")
    expect(page.get_by_label("Level 1 actions")).to_have_value("letter_first, fee_10")
    final_days.fill("40")
    page.get_by_role("button", name="Create the policy").click()
    expect(page.get_by_role("status")).to_have_text("Policy Journey created.")
    ladder = page.get_by_role("list", name="Levels of Journey, in order of days")
    expect(ladder.get_by_role("listitem")).to_have_count(3)
    expect(ladder.get_by_role("listitem").nth(2)).to_contain_text("end level")

    # --- import customers, then invoices: a bad file first changes nothing ---------------
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import")
    check_accessibility(page)
    page.get_by_label("The file holds").select_option("customers")
    page.get_by_label("CSV file").set_input_files(_write(tmp_path, "customers.csv", CUSTOMERS))
    page.get_by_role("button", name="Import the file").click()
    report = page.locator("#report")
    expect(report).to_contain_text("Customers imported from customers.csv")
    expect(report.locator("div", has_text="Created")).to_contain_text("2")

    bad = INVOICE_HEADER + (
        f"I1,C1,N-I1,{due - timedelta(days=30)},{due},EUR,1200.00\n"
        f"I2,C9,N-I2,{today},soon,EUR,-80\n"
    )
    page.get_by_label("The file holds").select_option("invoices")
    page.get_by_label("CSV file").set_input_files(_write(tmp_path, "bad-invoices.csv", bad))
    page.get_by_role("button", name="Import the file").click()
    refused = page.locator("#refused")
    expect(refused.get_by_role("alert")).to_contain_text("nothing was changed")
    lines = refused.locator("tbody tr")
    expect(lines).to_have_count(2)  # the row's due date and its amount
    expect(lines.nth(0)).to_contain_text("3")
    expect(lines.nth(0)).to_contain_text("due_date")
    expect(lines.nth(0)).to_contain_text("'soon' is not a date")
    expect(refused).to_contain_text("amount")
    assert _invoices_count(db_url) == 0  # not even the good line
    expect(page.get_by_label("The file holds")).to_have_value("invoices")
    check_accessibility(page)
    screenshots(page, "import-errors")

    good = INVOICE_HEADER + (
        f"I1,C1,N-I1,{due - timedelta(days=30)},{due},EUR,1200.00\n"
        f"I2,C2,N-I2,{today},{today + timedelta(days=30)},EUR,80.00\n"
    )
    page.get_by_label("CSV file").set_input_files(_write(tmp_path, "invoices.csv", good))
    page.get_by_role("button", name="Import the file").click()
    expect(report).to_contain_text("Invoices imported from invoices.csv")
    expect(report.locator("div", has_text="Created")).to_contain_text("2")
    assert _invoices_count(db_url) == 2
    check_accessibility(page)
    screenshots(page, "import-report")

    # --- run: the late invoice gets a plan at the first level ----------------------------
    _start_run(page, (due + timedelta(days=6)).isoformat())
    expect(page.locator(".summary div", has_text="Plans opened")).to_contain_text("1")
    page.get_by_role("link", name="Late invoices").click()
    row = page.locator('tr[data-invoice="I1"]')
    expect(row).to_contain_text("Acme SARL")
    expect(row).to_contain_text("letter · Journey")
    expect(page.locator('tr[data-invoice="I2"]')).to_have_count(0)  # not due yet
    row.get_by_role("link", name=re.compile(r"Plan #\d+")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("active")
    plan_id = int(re.search(r"/plans/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    steps = page.locator(".ladder")
    expect(steps.locator('[aria-current="step"]')).to_contain_text("letter")
    expect(steps.locator(".rung-next")).to_contain_text("call")

    # --- run later: the plan moves a level -----------------------------------------------
    _start_run(page, today.isoformat())
    expect(page.locator(".summary div", has_text="Plans advanced")).to_contain_text("1")
    page.goto(f"/plans/{plan_id}")
    expect(steps.locator('[aria-current="step"]')).to_contain_text("call")
    expect(steps.locator(".rung-done")).to_contain_text("letter")
    expect(page.locator(".figures")).to_contain_text(money(Decimal("1200.00"), "EUR"))

    # its letter opens as a PDF about the invoice
    href = page.get_by_role("link", name=re.compile(r"\.pdf$")).first.get_attribute("href")
    assert href and href.startswith("/documents/")
    letter = page.request.get(href)
    assert letter.status == 200 and letter.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(letter.body())).pages)
    assert "N-I1" in text

    # --- a collector claims the task and completes it with a promise ---------------------
    promised = today + timedelta(days=7)
    collector = browser.new_context(base_url=live_server.url, viewport=LAPTOP)
    try:
        work = collector.new_page()
        log_in(work, "collector", next_path="/tasks")
        task_row = work.locator("[id^=task-row-]")
        expect(task_row).to_have_count(1)
        expect(task_row).to_contain_text("Acme SARL")
        expect(task_row).to_contain_text("Call Acme about the overdue invoice")
        task_id = int((task_row.get_attribute("id") or "").rsplit("-", 1)[1])
        task_row.get_by_role("button", name=f"Claim task {task_id}").click()
        expect(task_row).to_contain_text("by Carl Collector")
        task_row.get_by_role("link", name="Complete").click()
        work.get_by_label("What was done").fill("Spoke to Acme's accountant")
        work.get_by_label("Will pay by").fill(promised.isoformat())
        work.get_by_label("Amount (EUR)").fill("1200.00")
        work.get_by_role("button", name="Complete the task").click()
        expect(work.get_by_role("status").first).to_contain_text(
            f"Task {task_id} completed. Plan {plan_id} waits for the promise until {promised}."
        )
    finally:
        collector.close()

    # --- the admin records a payment for the whole balance: the plan is recovered --------
    page.goto("/customers/C1")
    expect(page.get_by_role("heading", name="Record a payment")).to_be_visible()
    check_accessibility(page)
    screenshots(page, "customer-payment")
    page.goto(f"/plans/{plan_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("paused")
    expect(page.locator(".warn-notice")).to_contain_text("promise to pay")
    form = page.locator("#payment")
    expect(form.get_by_label("Received on")).to_have_value(today.isoformat())
    expect(form.get_by_label("Currency")).to_have_value("EUR")
    expect(form.get_by_label("For the invoice")).to_have_value("I1")
    check_accessibility(page)
    screenshots(page, "payment-form")
    form.get_by_label("Amount").fill("1200.005")
    form.get_by_role("button", name="Record the payment").click()
    expect(page.locator("#payment-amount-error")).to_contain_text("more decimal places")
    expect(page.locator("#payment").get_by_label("Amount")).to_have_attribute(
        "aria-invalid", "true"
    )
    check_accessibility(page)
    screenshots(page, "payment-form-error")
    page.locator("#payment").get_by_label("Amount").fill("1200.00")
    page.locator("#payment").get_by_role("button", name="Record the payment").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Payment of {money(Decimal('1200.00'), 'EUR')} recorded. "
        f"Plan #{plan_id} closed: recovered."
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text("recovered")
    expect(page.locator("#payment")).to_have_count(0)  # a closed plan takes no payment
    with transaction(db_url) as session:
        plan = session.get(Plan, plan_id)
        assert plan is not None and plan.status == "recovered"

    # --- and waives the fee with a reason ------------------------------------------------
    charges = page.locator("#charges")
    expect(charges).to_contain_text(money(Decimal("10.00"), "EUR"))
    charges.get_by_role("button", name="Waive").click()  # no reason: refused beside it
    expect(charges.locator(".field-error")).to_contain_text("say why")
    charges.get_by_placeholder("Reason to waive").fill("Goodwill: paid in full")
    charges.get_by_role("button", name="Waive").click()
    expect(page.get_by_role("status")).to_contain_text("waived")
    expect(charges).to_contain_text("waived by Ada Admin: Goodwill: paid in full")
    with transaction(db_url) as session:
        fee = session.scalars(select(Charge)).one()
        assert fee.status == "waived" and fee.waived_by == "Ada Admin"
