"""The configuration and run pages over HTTP (no browser): only an admin opens configuration,
problems beside their fields, refused removals answered 409 with what refers to the item, the
settings locks of R11, the policy file's two steps, and a refused change changing nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recoup.api.app import create_app
from recoup.core.sessions import transaction
from recoup.policies.service import load_config
from tests.runs.test_run_e2e import DUE, POLICY_YAML, Cli, invoice_csv
from tests.web.test_security import log_in, page_token

CONFIG_PAGES = [
    "/config",
    "/config/settings",
    "/settings",
    "/config/templates",
    "/config/templates/reminder/en",
    "/config/actions",
    "/config/policies",
    "/config/policies/new",
    "/config/policies/Standard",
    "/config/upload",
]


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path, users: object) -> Cli:
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C2", DUE, "80.00", "USD"))
    )
    return cli


@pytest.fixture
def client(db_url: str, book: Cli) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        yield client


def policy_file(*changes: tuple[str, str]) -> str:
    """The e2e book's policy file, with (old, new) replacements."""
    text = POLICY_YAML.format(
        mode="invoice", catch_up="latest", transition="days_overdue", second_min=""
    )
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("role", ["collector", "viewer"])
def test_only_an_admin_opens_configuration_pages(client: TestClient, role: str) -> None:
    log_in(client, role)
    for path in CONFIG_PAGES:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "needs the right to configure" in response.text
    token = page_token(client)
    refused = client.post(
        "/config/policies", data={"csrf_token": token, "name": "X", "priority": "5", "rows": "0"}
    )
    assert refused.status_code == 403
    assert client.get("/runs").status_code == 200  # reading runs is for everyone


def test_every_configuration_page_opens_for_an_admin(client: TestClient) -> None:
    log_in(client, "admin")
    for path in CONFIG_PAGES:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[-2000:])
    assert "Configuration" in client.get("/config").text


def test_a_policy_form_without_its_csrf_token_is_refused(client: TestClient, db_url: str) -> None:
    log_in(client, "admin")
    response = client.post("/config/policies/Standard/delete")
    assert response.status_code == 403 and "security token" in response.text
    with transaction(db_url) as session:
        assert [p.name for p in load_config(session).policies] == ["Standard"]


def _levels_form(token: str, rows: list[tuple[str, str, str]], end: int) -> dict[str, str]:
    form = {"csrf_token": token, "name": "Gentle", "priority": "20", "active": "on",
            "transition": "days_overdue", "rows": str(len(rows)), "end": str(end)}  # fmt: skip
    for i, (code, days, actions) in enumerate(rows):
        form.update({f"levels-{i}-code": code, f"levels-{i}-days": days,
                     f"levels-{i}-actions": actions})  # fmt: skip
    return form


def test_a_policy_with_a_level_out_of_order_shows_the_problem_beside_its_days(
    client: TestClient, db_url: str
) -> None:
    log_in(client, "admin")
    token = page_token(client, "/config/policies/new")
    rows = [("early", "5", "email_notice"), ("middle", "3", ""), ("final", "20", "suspend")]
    response = client.post("/config/policies", data=_levels_form(token, rows, 2))
    assert response.status_code == 422
    error = re.search(r'id="levels-1-days-error">([^<]+)<', response.text)
    assert error and "ascending days" in error.group(1)
    assert 'aria-describedby="levels-1-days-error" aria-invalid="true"' in response.text
    assert 'value="middle"' in response.text  # the form comes back as typed
    with transaction(db_url) as session:
        assert [p.name for p in load_config(session).policies] == ["Standard"]

    rows[1] = ("middle", "12", "")
    saved = client.post("/config/policies", data=_levels_form(token, rows, 2))
    assert saved.status_code == 303, saved.text[-3000:]
    with transaction(db_url) as session:
        gentle = load_config(session).policy("Gentle")
    assert gentle is not None
    assert [(lv.code, lv.days, lv.end) for lv in gentle.levels] == [
        ("early", 5, False),
        ("middle", 12, False),
        ("final", 20, True),
    ]


def test_removing_a_used_action_is_409_with_what_uses_it(client: TestClient) -> None:
    log_in(client, "admin")
    token = page_token(client, "/config/actions")
    response = client.post("/config/actions/fee_15/delete", data={"csrf_token": token})
    assert response.status_code == 409
    assert "level Standard/first_notice" in response.text
    assert "fee_15" in client.get("/config/actions").text  # still there


def test_settings_locks_after_a_run(client: TestClient, book: Cli, db_url: str) -> None:
    log_in(client, "admin")
    page = client.get("/config/settings").text
    assert "nothing is locked now" in page
    book.run(5)  # plans open
    page = client.get("/config/settings").text
    assert "Locked: 2 plans are active or paused" in page
    assert re.search(r'<select id="mode" name="mode"[^>]*disabled', page)
    assert "commercial (2 plans)" in page
    token = page_token(client, "/config/settings")
    refused = client.post(
        "/config/settings",
        data={"csrf_token": token, "mode": "customer", "invoice_types": "commercial"},
    )
    assert refused.status_code == 409
    assert re.search(r'id="mode-error">[^<]*cannot change from invoice to customer', refused.text)
    removed = client.post(
        "/config/settings", data={"csrf_token": token, "invoice_types": "credit_note"}
    )
    assert removed.status_code == 409
    assert re.search(r'id="invoice_types-error">[^<]*cannot be removed', removed.text)
    saved = client.post("/config/settings", data={"csrf_token": token, "timezone": "Europe/Paris"})
    assert saved.status_code == 303
    with transaction(db_url) as session:
        settings = load_config(session).settings
    assert settings.timezone == "Europe/Paris" and settings.mode.value == "invoice"


def test_a_policy_used_by_plans_cannot_be_removed(client: TestClient, book: Cli) -> None:
    book.run(5)
    log_in(client, "admin")
    token = page_token(client, "/config/policies/Standard")
    response = client.post("/config/policies/Standard/delete", data={"csrf_token": token})
    assert response.status_code == 409
    assert "2 plans" in response.text and "set active: false instead" in response.text
    level = client.post(
        "/config/policies/Standard/levels/first_notice/delete", data={"csrf_token": token}
    )
    assert level.status_code == 409 and "cannot be removed" in level.text


def test_a_policy_file_is_previewed_then_applied(client: TestClient, db_url: str) -> None:
    log_in(client, "admin")
    token = page_token(client, "/config/upload")
    text = policy_file(("priority: 10", "priority: 30"))
    files = {"file": ("policy.yaml", text.encode(), "application/yaml")}
    preview = client.post("/config/upload", data={"csrf_token": token}, files=files)
    assert preview.status_code == 200, preview.text[-2000:]
    assert "policy Standard" in preview.text and "Apply the policy file" in preview.text
    with transaction(db_url) as session:
        assert load_config(session).policy("Standard").priority == 10  # type: ignore[union-attr]
    mark = re.search(r'name="fingerprint" value="([^"]+)"', preview.text)
    assert mark
    applied = client.post(
        "/config/upload/apply",
        data={"csrf_token": token, "fingerprint": mark.group(1), "text": text},
    )
    assert applied.status_code == 303
    with transaction(db_url) as session:
        assert load_config(session).policy("Standard").priority == 30  # type: ignore[union-attr]
    stale = client.post(
        "/config/upload/apply",
        data={"csrf_token": token, "fingerprint": mark.group(1), "text": policy_file()},
    )
    assert stale.status_code == 409 and "changed since this preview" in stale.text
    with transaction(db_url) as session:
        assert load_config(session).policy("Standard").priority == 30  # type: ignore[union-attr]


def test_a_broken_policy_file_lists_its_problems_and_changes_nothing(
    client: TestClient, db_url: str
) -> None:
    log_in(client, "admin")
    token = page_token(client, "/config/upload")
    text = policy_file(("code: first_notice, days: 5", "code: first_notice, days: 25"))
    response = client.post("/config/upload", data={"csrf_token": token, "text": text})
    assert response.status_code == 422
    assert "policies[0].levels[2].days" in response.text and "ascending days" in response.text
    with transaction(db_url) as session:
        levels = load_config(session).policy("Standard").levels  # type: ignore[union-attr]
    assert levels[1].days == 5


def test_a_template_preview_renders_the_draft_on_the_invoice_chosen(client: TestClient) -> None:
    log_in(client, "admin")
    token = page_token(client, "/config/templates/reminder/en")
    page = client.get("/config/templates/reminder/en?invoice=I2").text
    assert "Invoice N-I2 is due soon" in page
    draft = {"csrf_token": token, "subject": "About {{ invoice.number }}",
             "body": "Hello {{ customer.name }}", "invoice": "I1", "active": "on"}  # fmt: skip
    fragment = client.post(
        "/config/templates/reminder/en/preview", data=draft, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "About N-I1" in fragment.text and "Hello Acme SARL" in fragment.text
    assert "<html" not in fragment.text
    broken = client.post(
        "/config/templates/reminder/en",
        data={**draft, "body": "Hello {{ customer.name "},
    )
    assert broken.status_code == 422
    assert re.search(r'id="body-error">[^<]*unexpected end of template', broken.text), broken.text[
        -3000:
    ]
    assert "Invoice {{ invoice.number }} is due soon" in client.get(
        "/config/templates/reminder/en"
    ).text.replace("&#34;", '"')


def test_a_template_and_an_action_are_created_from_their_forms(
    client: TestClient, db_url: str
) -> None:
    log_in(client, "admin")
    token = page_token(client, "/config/templates")
    form = {"csrf_token": token, "code": "reminder", "language": "fr", "channel": "email",
            "subject": "Facture {{ invoice.number }}", "body": "Bonjour {{ customer.name }}",
            "active": "on"}  # fmt: skip
    created = client.post("/config/templates", data=form)
    assert created.status_code == 303
    assert created.headers["location"].startswith("/config/templates/reminder/fr")
    again = client.post("/config/templates", data=form)  # the same code and language
    assert again.status_code == 409 and "already exists" in again.text
    page = client.get("/config/templates/reminder/fr?invoice=I1").text
    assert "Facture N-I1" in page and 'href="/config/templates/reminder/en"' in page

    bad = {"csrf_token": token, "code": "fee_5", "type": "late_fee_fixed",
           "mode": "automatic", "params": "amounts: {EUR: lots}"}  # fmt: skip
    refused = client.post("/config/actions", data=bad)
    assert refused.status_code == 422
    assert re.search(r'id="params-error">', refused.text)
    good = {**bad, "params": 'amounts: {EUR: "5.00"}\nservice: LATE_FEE'}
    assert client.post("/config/actions", data=good).status_code == 303
    with transaction(db_url) as session:
        config = load_config(session)
    assert [t.language for t in config.templates_for("reminder")] == ["en", "fr"]
    fee = next(a for a in config.actions if a.code == "fee_5")
    assert str(fee.params["amounts"]["EUR"]) == "5.00"
    removed = client.post("/config/actions/fee_5/delete", data={"csrf_token": token})
    assert removed.status_code == 303
    with transaction(db_url) as session:
        assert "fee_5" not in [a.code for a in load_config(session).actions]
