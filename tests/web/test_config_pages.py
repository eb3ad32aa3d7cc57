"""The configuration and run pages in a real browser: create a policy with three levels, see
a problem beside its field and fix it; preview a template on a real invoice while editing it;
upload a policy file, see what it will change, apply it; start a run and watch it finish; the
settings locks; collectors and viewers refused. Each page passes axe and is photographed at
laptop and tablet widths (build/screenshots/config-*.png, runs-*.png)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from recoup.core.sessions import transaction
from recoup.policies.service import load_config
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv
from tests.web.conftest import check_accessibility, log_in, screenshots
from tests.web.test_config_http import policy_file


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path, users: object) -> Cli:
    """The e2e book: the Standard policy (five levels), customers C1 (EUR) and C2 (USD) with
    one late invoice each (N-I1, N-I2)."""
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C2", DUE, "80.00", "USD"))
    )
    return cli


def test_create_a_policy_with_three_levels_see_a_problem_beside_its_field_and_fix_it(
    book: Cli, page: Any, db_url: str
) -> None:
    log_in(page, "admin", next_path="/config/policies")
    check_accessibility(page)
    page.get_by_role("link", name="New policy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New policy")
    page.get_by_label("Name", exact=True).fill("Gentle")
    page.get_by_label("Priority").fill("20")
    page.get_by_label("The default policy").uncheck()
    for n, (code, days, actions) in enumerate(
        [
            ("early", "5", "email_notice"),
            ("middle", "3", "email_notice"),
            ("final", "20", "suspend"),
        ],
        start=1,
    ):
        page.get_by_label(f"Level {n} code").fill(code)
        page.get_by_label(f"Level {n} days").fill(days)
        page.get_by_label(f"Level {n} actions").fill(actions)
    page.get_by_label("Level 3 is the end level").check()
    page.get_by_role("button", name="Create the policy").click()

    # the problem is beside the second level's days, which is marked invalid and described by it
    days = page.get_by_label("Level 2 days")
    expect(days).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#levels-1-days-error")).to_contain_text("ascending days")
    expect(days).to_have_attribute("aria-describedby", re.compile("levels-1-days-error"))
    expect(page.get_by_role("alert").first).to_contain_text("This was not saved")
    expect(page.get_by_label("Level 1 code")).to_have_value("early")  # as typed
    check_accessibility(page)
    screenshots(page, "config-policy-error")

    days.fill("12")
    page.get_by_role("button", name="Create the policy").click()
    expect(page).to_have_url(re.compile(r"/config/policies\?done="))
    expect(page.get_by_role("status")).to_have_text("Policy Gentle created.")
    ladder = page.get_by_role("list", name="Levels of Gentle, in order of days")
    expect(ladder.get_by_role("listitem")).to_have_count(3)
    expect(ladder.get_by_role("listitem").nth(0)).to_contain_text("5 d early")
    expect(ladder.get_by_role("listitem").nth(1)).to_contain_text("12 d middle")
    expect(ladder.get_by_role("listitem").nth(2)).to_contain_text("20 d final")
    expect(ladder.get_by_role("listitem").nth(2)).to_contain_text("end level")
    expect(ladder.locator(".pill", has_text="end level")).to_have_count(1)
    check_accessibility(page)
    screenshots(page, "config-policies")
    with transaction(db_url) as session:
        gentle = load_config(session).policy("Gentle")
    assert gentle is not None and [lv.code for lv in gentle.levels] == ["early", "middle", "final"]

    page.get_by_role("link", name="Gentle").click()
    expect(page.get_by_label("Level 3 is the end level")).to_be_checked()
    check_accessibility(page)
    screenshots(page, "config-policy-edit")


def test_a_template_preview_shows_the_real_invoice_as_it_is_edited(book: Cli, page: Any) -> None:
    log_in(page, "admin", next_path="/config/templates")
    expect(page.get_by_role("link", name="reminder")).to_be_visible()
    check_accessibility(page)
    screenshots(page, "config-templates")
    page.get_by_role("link", name="reminder").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Invoice N-I1 is due soon")
    expect(preview).to_contain_text("Dear Acme SARL")
    page.get_by_label("On the invoice").select_option("I2")  # htmx: the fragment is replaced
    expect(preview).to_contain_text("Invoice N-I2 is due soon")
    expect(preview).to_contain_text("Dear Bolt Inc")
    page.get_by_label("Body").fill("Number {{ invoice.number }}: please pay {{ balance|money }}.")
    expect(preview).to_contain_text("Number N-I2: please pay")
    page.get_by_label("Body").fill("Number {{ invoice.number ")
    expect(preview.get_by_role("alert")).to_contain_text("cannot be rendered")
    page.get_by_label("Body").fill("Number {{ invoice.number }}, thank you.")
    expect(preview).to_contain_text("Number N-I2, thank you.")
    check_accessibility(page)
    screenshots(page, "config-template")
    page.get_by_role("button", name="Save the template").click()
    expect(page.get_by_role("status")).to_have_text("Template reminder (en) saved.")
    expect(page.get_by_label("Body")).to_have_value("Number {{ invoice.number }}, thank you.")


NEW_TEMPLATE = (  # last, so that the others keep their places
    "actions:\n",
    "  - {code: thanks, channel: email, language: en, subject: Thank you, "
    'body: "Thank you {{ customer.name }}."}\nactions:\n',
)


def test_upload_a_policy_file_see_what_changes_then_apply_it(
    book: Cli, page: Any, db_url: str
) -> None:
    text = policy_file(("priority: 10", "priority: 30"), NEW_TEMPLATE)
    log_in(page, "admin", next_path="/config/upload")
    check_accessibility(page)
    page.get_by_label("Policy file").set_input_files(
        files=[{"name": "policy.yaml", "mimeType": "application/yaml", "buffer": text.encode()}]
    )
    page.get_by_role("button", name="Preview the changes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("What the policy file will change")
    created = page.get_by_role("region", name=re.compile("^Created"))
    changed = page.get_by_role("region", name=re.compile("^Changed"))
    expect(created).to_contain_text("template thanks/en")
    expect(changed).to_contain_text("policy Standard")
    expect(page.get_by_role("region", name=re.compile("^Removed"))).to_contain_text("Nothing.")
    check_accessibility(page)
    screenshots(page, "config-upload-preview")
    with transaction(db_url) as session:  # nothing written by the preview
        assert [t.code for t in load_config(session).templates] == ["reminder", "notice"]

    page.get_by_role("button", name="Apply the policy file").click()
    expect(page.get_by_role("status")).to_have_text("Policy file applied: 2 changes.")
    expect(page.locator(".policy", has_text="Standard")).to_contain_text("priority 30")
    with transaction(db_url) as session:
        config = load_config(session)
    assert [t.code for t in config.templates] == ["reminder", "notice", "thanks"]
    assert config.policy("Standard").priority == 30  # type: ignore[union-attr]
    page.goto("/config/templates")
    expect(page.get_by_role("link", name="thanks")).to_be_visible()


def test_start_a_run_and_watch_it_finish_with_its_summary(book: Cli, page: Any) -> None:
    log_in(page, "collector", next_path="/runs")
    expect(page.get_by_text("No run yet")).to_be_visible()
    check_accessibility(page)
    screenshots(page, "runs-empty")
    page.get_by_label("For the day").fill((DUE + timedelta(days=5)).isoformat())
    page.get_by_role("button", name="Start the run").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(rf"Run #\d+ for {DUE + timedelta(days=5)}")
    )
    status = page.locator("#progress .status-line")
    expect(status).to_contain_text("finished", timeout=60_000)  # htmx polled it to the end
    expect(page.locator("#run-bar")).to_be_visible()
    expect(page.locator(".progress-label")).to_have_text(re.compile(r"(\d+) of \1 units done"))
    summary = page.locator(".summary")
    expect(summary.locator("div", has_text="Invoices considered")).to_contain_text("2")
    expect(summary.locator("div", has_text="Plans opened")).to_contain_text("2")
    check_accessibility(page)
    screenshots(page, "runs-finished")

    page.get_by_role("link", name="Runs").first.click()
    row = page.get_by_role("row", name=re.compile(r"#\d+"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("finished")
    expect(row).to_contain_text("Carl Collector")
    # R13: not before the latest finished run; the problem is beside the date
    page.get_by_label("For the day").fill(DUE.isoformat())
    page.get_by_role("button", name="Start the run").click()
    expect(page.locator("#as_of-error")).to_contain_text("runs only move forward in time")
    expect(page.get_by_label("For the day")).to_have_attribute("aria-invalid", "true")
    check_accessibility(page)
    screenshots(page, "runs-history")


def test_settings_explain_the_locks_while_plans_are_open(book: Cli, page: Any) -> None:
    log_in(page, "admin", next_path="/config")
    check_accessibility(page)
    screenshots(page, "config-home")
    book.run(5)
    page.get_by_role("navigation", name="Configuration").get_by_role(
        "link", name="Settings"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(page.get_by_label("Mode")).to_be_disabled()
    expect(page.locator("#mode-hint")).to_contain_text("2 plans are active or paused")
    expect(page.get_by_label("Invoice types", exact=True)).to_have_accessible_description(
        re.compile(r"commercial \(2 plans\)")
    )
    check_accessibility(page)
    screenshots(page, "config-settings")
    page.get_by_label("Invoice types", exact=True).fill("credit_note")
    page.get_by_role("button", name="Save the settings").click()
    expect(page.locator("#invoice_types-error")).to_contain_text("cannot be removed while 2 plans")
    page.get_by_label("Invoice types", exact=True).fill("commercial")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save the settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")

    page.get_by_role("navigation", name="Configuration").get_by_role("link", name="Actions").click()
    expect(page.get_by_role("row", name=re.compile("^fee_15"))).to_contain_text(
        "level Standard/first_notice"
    )
    check_accessibility(page)
    screenshots(page, "config-actions")
    page.get_by_role("button", name="Remove fee_15").click()  # in use: refused, saying why
    expect(page.get_by_role("heading", level=1)).to_have_text("Action fee_15 cannot be removed")
    expect(page.locator(".refs")).to_contain_text("level Standard/first_notice")
    check_accessibility(page)
    screenshots(page, "config-refused")


@pytest.mark.parametrize("role", ["collector", "viewer"])
def test_collectors_and_viewers_cannot_open_configuration(book: Cli, page: Any, role: str) -> None:
    log_in(page, role)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Configuration")).to_have_count(0)
    expect(nav.get_by_role("link", name="Runs")).to_be_visible()
    for path in ("/config", "/config/policies/new", "/config/templates/reminder/en"):
        response = page.goto(path)
        assert response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    page.goto("/runs")
    start = page.get_by_role("button", name="Start the run")
    expect(start).to_have_count(1 if role == "collector" else 0)
