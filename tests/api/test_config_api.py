"""The configuration over HTTP: settings, templates, actions, policies and levels one at a time
and the whole policy file, through the policy file's validator (its problems at their path in
the body), 409 listing what refers to an item, every write logged with the key's name; a
refused request changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import Cli

API = "/api/v1"
YAML = "application/yaml"


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    """The CLI's book: the policy file applied, C1 owing I1 (100 EUR, due DUE); no plan yet."""
    cli = Cli(tmp_path)
    cli.setup()
    return cli


@pytest.fixture
def in_use(cli: Cli) -> Cli:
    """A run on day 5 opened a plan on I1 at level first_notice (email_notice, fee_15)."""
    cli.run(5)
    return cli


def _config(client: TestClient) -> str:
    response = client.get(f"{API}/config")
    assert response.status_code == 200, response.text
    return response.text


def _log(client: TestClient) -> list[dict[str, Any]]:
    """The configuration changes logged since the CLI's `config apply`."""
    page = client.get(f"{API}/log", params={"event": "config_changed", "limit": 100}).json()
    return [entry for entry in page["data"] if entry["actor"] != "system"]


# --- settings --------------------------------------------------------------------------------


def test_patch_settings_changes_the_fields_given_and_logs_the_key(
    cli: Cli, admin: TestClient
) -> None:
    response = admin.patch(
        f"{API}/settings",
        json={"timezone": "Europe/Paris", "max_levels": 8},
        headers={"Recoup-Reason": "moved to Paris"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "Europe/Paris" and response.json()["max_levels"] == 8
    assert admin.get(f"{API}/settings").json()["timezone"] == "Europe/Paris"
    (entry,) = _log(admin)[-1:]
    assert entry["actor"] == "admin" and entry["details"]["reason"] == "moved to Paris"
    assert entry["details"]["changed"] == ["settings.max_levels", "settings.timezone"]


def test_settings_malformed_is_422_and_a_lock_is_409_naming_the_field(
    in_use: Cli, admin: TestClient
) -> None:
    before = admin.get(f"{API}/settings").json()
    body = assert_problem(admin.patch(f"{API}/settings", json={"max_levels": "ten", "x": 1}), 422)
    assert {e["field"] for e in body["errors"]} == {"max_levels", "x"}
    body = assert_problem(admin.patch(f"{API}/settings", json={"timezone": "Mars/Base"}), 422)
    assert [e["field"] for e in body["errors"]] == ["timezone"]

    # R11: the open plan locks the mode and its invoice's type
    body = assert_problem(admin.patch(f"{API}/settings", json={"mode": "customer"}), 409)
    assert [e["field"] for e in body["errors"]] == ["mode"]
    assert "while 1 plan are active or paused" in body["errors"][0]["message"]
    body = assert_problem(admin.patch(f"{API}/settings", json={"invoice_types": ["other"]}), 409)
    assert [e["field"] for e in body["errors"]] == ["invoice_types"]
    assert admin.get(f"{API}/settings").json() == before


# --- the whole policy file -------------------------------------------------------------------


def test_put_config_round_trip_yaml_and_json(cli: Cli, admin: TestClient) -> None:
    text = _config(admin)
    assert yaml.safe_load(text)["policies"][0]["name"] == "Standard"
    same = admin.put(f"{API}/config", content=text, headers={"Content-Type": "application/yaml"})
    assert same.status_code == 200, same.text
    assert same.json() == {
        "dry_run": False, "created": [], "changed": [], "removed": [], "warnings": []
    }  # fmt: skip

    as_json = admin.get(f"{API}/config", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json"
    document = as_json.json()
    assert document == yaml.safe_load(text)
    assert admin.put(f"{API}/config", json=document).json()["changed"] == []

    document["policies"][0]["levels"][1]["days"] = 6
    document["templates"].append(
        {"code": "sms", "channel": "sms", "language": "en", "body": "Pay {{ balance|money }}"}
    )
    document["actions"].append({"code": "sms", "type": "send_sms", "template": "sms"})

    dry = admin.put(f"{API}/config", params={"dry_run": "true"}, json=document)
    assert dry.status_code == 200, dry.text
    expected = {
        "created": ["template sms/en", "action sms"],
        "changed": ["level Standard/first_notice"],
        "removed": [],
    }
    assert {k: dry.json()[k] for k in expected} == expected and dry.json()["dry_run"] is True
    assert _config(admin) == text  # nothing written, nothing logged
    assert _log(admin) == []

    applied = admin.put(
        f"{API}/config", json=document, headers={"Recoup-Reason": "one level later"}
    )
    assert {k: applied.json()[k] for k in expected} == expected
    assert applied.json()["dry_run"] is False
    assert yaml.safe_load(_config(admin))["policies"][0]["levels"][1]["days"] == 6
    (entry,) = _log(admin)
    assert entry["actor"] == "admin" and entry["details"]["reason"] == "one level later"
    assert entry["details"]["changed"] == ["level Standard/first_notice"]

    # back to the file as it was: what the change added is removed
    again = admin.put(f"{API}/config", content=text, headers={"Content-Type": YAML})
    assert again.json()["removed"] == ["template sms/en", "action sms"]
    assert again.json()["changed"] == ["level Standard/first_notice"]
    assert _config(admin) == text


def test_a_rejected_put_config_changes_nothing(in_use: Cli, admin: TestClient) -> None:
    text = _config(admin)
    document = yaml.safe_load(text)
    document["policies"][0]["levels"][2]["days"] = "ten"
    document["settings"]["max_levels"] = 0
    body = assert_problem(admin.put(f"{API}/config", json=document), 422)
    fields = {e["field"] for e in body["errors"]}
    assert "policies[0].levels[2].days" in fields and "settings.max_levels" in fields

    # R14: the policy the open plan follows cannot go
    unchanged = yaml.safe_load(text)
    body = assert_problem(admin.put(f"{API}/config", json={**unchanged, "policies": []}), 409)
    assert body["errors"][0]["field"] == "policies"
    assert "policy 'Standard' cannot be removed: it is used by 1 plan" in body["detail"]

    bad_yaml = admin.put(f"{API}/config", content="policies: [", headers={"Content-Type": YAML})
    assert assert_problem(bad_yaml, 422)["errors"][0]["field"] == "body"
    assert_problem(admin.put(f"{API}/config", content=""), 422)
    assert_problem(
        admin.put(f"{API}/config", content="<x/>", headers={"Content-Type": "text/xml"}), 415
    )
    assert_problem(admin.put(f"{API}/config", content="x" * 1_000_001), 413)
    assert _config(admin) == text


# --- templates -------------------------------------------------------------------------------


def test_templates_crud(cli: Cli, admin: TestClient) -> None:
    page = admin.get(f"{API}/templates").json()
    assert list(page) == ["object", "data", "has_more"] and page["has_more"] is False
    assert [(t["code"], t["language"]) for t in page["data"]] == [
        ("reminder", "en"),
        ("notice", "en"),
    ]
    first = admin.get(f"{API}/templates", params={"limit": 1}).json()
    assert first["has_more"] is True and first["data"][0]["code"] == "reminder"
    after = admin.get(
        f"{API}/templates", params={"limit": 1, "starting_after": first["data"][0]["id"]}
    ).json()
    assert after["has_more"] is False and after["data"][0]["code"] == "notice"
    body = assert_problem(admin.get(f"{API}/templates", params={"starting_after": "x"}), 422)
    assert body["errors"][0]["field"] == "starting_after"

    french = {
        "code": "notice", "channel": "email", "language": "fr",
        "subject": "Relance : {{ balance|money }}", "body": "Merci de payer {{ balance|money }}.",
    }  # fmt: skip
    created = admin.post(f"{API}/templates", json=french, headers={"Recoup-Reason": "French"})
    assert created.status_code == 201, created.text
    assert created.json()["language"] == "fr" and created.json()["active"] is True
    assert_problem(admin.post(f"{API}/templates", json=french), 409)
    assert admin.get(f"{API}/templates/notice/fr").json()["subject"] == french["subject"]

    patched = admin.patch(f"{API}/templates/notice/fr", json={"subject": "Relance"})
    assert patched.status_code == 200 and patched.json()["subject"] == "Relance"
    assert patched.json()["body"] == french["body"]
    replaced = admin.put(f"{API}/templates/notice/fr", json={**french, "active": False})
    assert replaced.json()["active"] is False and replaced.json()["subject"] == french["subject"]

    entries = _log(admin)
    assert [e["details"]["created"] for e in entries[-3:]] == [["template notice/fr"], [], []]
    assert entries[-3]["details"]["reason"] == "French"
    assert [e["details"]["changed"] for e in entries[-2:]] == [["template notice/fr"]] * 2

    deleted = admin.delete(f"{API}/templates/notice/fr")
    assert deleted.status_code == 204, deleted.text
    assert_problem(admin.get(f"{API}/templates/notice/fr"), 404)
    assert_problem(admin.delete(f"{API}/templates/notice/fr"), 404)


def test_template_problems_are_at_their_path_in_the_body(cli: Cli, admin: TestClient) -> None:
    before = _config(admin)
    body = assert_problem(
        admin.post(f"{API}/templates", json={"code": "x", "channel": "fax", "language": "en"}),
        422,
    )
    assert {e["field"] for e in body["errors"]} == {"channel", "body"}
    # the validator's problems, with the policy file's words, at the field of the body
    body = assert_problem(
        admin.post(
            f"{API}/templates",
            json={"code": "x", "channel": "email", "language": "en", "body": "{{ nope.x }}"},
        ),
        422,
    )
    fields = {e["field"] for e in body["errors"]}
    assert "subject" in fields and "body" in fields, body
    body = assert_problem(admin.patch(f"{API}/templates/notice/en", json={"code": "other"}), 422)
    assert body["errors"][0]["field"] == "code"
    assert _config(admin) == before


def test_template_in_use_is_409_listing_its_references(in_use: Cli, admin: TestClient) -> None:
    refs = admin.get(f"{API}/templates/notice/en/references").json()
    assert refs["kind"] == "template" and refs["id"] == "notice/en" and refs["in_use"] is True
    assert refs["configuration"] == ["action email_notice"]
    assert refs["action_instances"] >= 1
    body = assert_problem(admin.delete(f"{API}/templates/notice/en"), 409)
    assert (
        "template 'notice/en' cannot be removed: it is used by action email_notice"
        in (body["detail"])
    )
    assert body["errors"][0] == {
        "field": "template", "message": "used by action email_notice", "index": None
    }  # fmt: skip
    assert admin.get(f"{API}/templates/notice/en").status_code == 200
    # another language of the code: that version can go
    french = {"code": "notice", "channel": "email", "language": "fr", "subject": "S", "body": "B"}
    assert admin.post(f"{API}/templates", json=french).status_code == 201
    assert admin.get(f"{API}/templates/notice/fr/references").json()["in_use"] is False
    assert admin.delete(f"{API}/templates/notice/fr").status_code == 204


def test_template_preview_on_a_real_invoice_per_language(
    in_use: Cli, admin: TestClient, keys: dict[str, str]
) -> None:
    french = {
        "code": "notice", "channel": "email", "language": "fr",
        "subject": "Relance : {{ balance|money }}", "body": "Merci de payer {{ balance|money }}.",
    }  # fmt: skip
    assert admin.post(f"{API}/templates", json=french).status_code == 201
    viewer = auth(keys["viewer"])
    english = admin.get(
        f"{API}/templates/notice/en/preview", params={"invoice": "I1"}, headers=viewer
    )
    assert english.status_code == 200, english.text
    assert english.json()["subject"] == "Overdue: €100.00"
    assert english.json()["text"].strip() == "Please pay €100.00."
    fr = admin.get(f"{API}/templates/notice/fr/preview", params={"invoice": "I1"}).json()
    assert fr["language"] == "fr" and fr["subject"].startswith("Relance : 100,00")
    # an inactive version is not sent: the preview is what a French customer would get
    assert admin.patch(f"{API}/templates/notice/fr", json={"active": False}).status_code == 200
    fallback = admin.get(f"{API}/templates/notice/fr/preview", params={"invoice": "I1"}).json()
    assert fallback["language"] == "en" and fallback["subject"].startswith("Overdue: 100,00")
    assert_problem(admin.get(f"{API}/templates/notice/en/preview", params={"invoice": "NO"}), 404)
    body = assert_problem(
        admin.get(f"{API}/templates/notice/en/preview", params={"invoice": "I1", "format": "pdf"}),
        422,
    )
    assert body["errors"][0]["field"] == "format"


# --- actions ---------------------------------------------------------------------------------


def test_actions_crud_and_references(in_use: Cli, admin: TestClient) -> None:
    codes = [a["code"] for a in admin.get(f"{API}/actions").json()["data"]]
    assert codes == ["email_reminder", "email_notice", "fee_15", "call", "suspend"]
    fee = {"code": "fee_5", "type": "late_fee_fixed", "amounts": {"EUR": "5.00"}, "service": "F"}
    created = admin.post(f"{API}/actions", json=fee)
    assert created.status_code == 201, created.text
    assert created.json()["amounts"] == {"EUR": "5.00"} and created.json()["mode"] == "automatic"
    patched = admin.patch(f"{API}/actions/fee_5", json={"amounts": {"EUR": "7.50"}})
    assert patched.status_code == 200 and patched.json()["amounts"] == {"EUR": "7.50"}
    body = assert_problem(admin.patch(f"{API}/actions/fee_5", json={"url": "https://x.test"}), 422)
    assert body["errors"][0]["field"] == "url"
    body = assert_problem(admin.put(f"{API}/actions/fee_5", json={**fee, "amounts": "x"}), 422)
    assert body["errors"][0]["field"] == "amounts"
    refs = admin.get(f"{API}/actions/fee_5/references").json()
    assert refs["in_use"] is False and refs["configuration"] == []
    assert admin.delete(f"{API}/actions/fee_5").status_code == 204

    # a send_email needs its template: the validator's problem at the body's field
    body = assert_problem(
        admin.post(f"{API}/actions", json={"code": "e", "type": "send_email", "template": "no"}),
        422,
    )
    assert body["errors"][0]["field"] == "template"

    refs = admin.get(f"{API}/actions/fee_15/references").json()
    assert refs["configuration"] == ["level Standard/first_notice"]
    assert refs["action_instances"] == 1 and refs["in_use"] is True
    body = assert_problem(admin.delete(f"{API}/actions/fee_15"), 409)
    assert [e["message"] for e in body["errors"]] == [
        "used by level Standard/first_notice", "used by 1 action instance",
    ]  # fmt: skip
    assert admin.get(f"{API}/actions/fee_15").status_code == 200
    assert_problem(admin.get(f"{API}/actions/nope/references"), 404)


# --- policies and levels -----------------------------------------------------------------


GOLD = {
    "name": "Gold club",
    "priority": 5,
    "rules": {"all": [{"field": "category", "op": "=", "value": "vip"}]},
    "levels": [
        {"code": "notice", "days": 3, "actions": ["email_notice"]},
        {"code": "end", "days": 30, "end": True, "actions": ["call"]},
    ],
}


def test_policies_crud(cli: Cli, admin: TestClient) -> None:
    before = _config(admin)
    bad = {**GOLD, "levels": [{"code": "notice", "days": "x", "actions": ["nope"]}]}
    body = assert_problem(admin.post(f"{API}/policies", json=bad), 422)
    assert {e["field"] for e in body["errors"]} == {"levels[0].days"}
    body = assert_problem(
        admin.post(f"{API}/policies", json={**GOLD, "levels": GOLD["levels"][:1]}), 422
    )
    assert [e["field"] for e in body["errors"]] == ["levels"]  # no end level
    body = assert_problem(admin.post(f"{API}/policies", json={**GOLD, "priority": 10}), 422)
    assert [e["field"] for e in body["errors"]] == ["priority"]  # Standard has it
    assert _config(admin) == before

    created = admin.post(f"{API}/policies", json=GOLD)
    assert created.status_code == 201, created.text
    gold = created.json()
    assert gold["name"] == "Gold club" and [lv["code"] for lv in gold["levels"]] == [
        "notice",
        "end",
    ]
    assert gold["rules"] == GOLD["rules"]
    names = [p["name"] for p in admin.get(f"{API}/policies").json()["data"]]
    assert names == ["Gold club", "Standard"]  # by priority

    patched = admin.patch(f"{API}/policies/Gold%20club", json={"priority": 20, "active": False})
    assert patched.json()["priority"] == 20 and patched.json()["active"] is False
    assert len(patched.json()["levels"]) == 2
    body = assert_problem(admin.patch(f"{API}/policies/Gold%20club", json={"levels": []}), 422)
    assert body["errors"][0]["field"] == "levels"
    replaced = admin.put(f"{API}/policies/Gold%20club", json={**GOLD, "description": "VIPs"})
    assert replaced.json()["description"] == "VIPs" and replaced.json()["priority"] == 5
    assert admin.get(f"{API}/policies/Gold%20club/references").json()["in_use"] is False
    assert admin.delete(f"{API}/policies/Gold%20club").status_code == 204
    assert_problem(admin.get(f"{API}/policies/Gold%20club"), 404)
    assert _config(admin) == before


def test_levels_crud(cli: Cli, admin: TestClient) -> None:
    url = f"{API}/policies/Standard/levels"
    codes = [lv["code"] for lv in admin.get(url).json()["data"]]
    assert codes == ["before_due", "first_notice", "second_notice", "call", "final"]
    created = admin.post(url, json={"code": "third", "days": 12, "actions": ["email_notice"]})
    assert created.status_code == 201, created.text
    assert created.json()["days"] == 12
    codes = [lv["code"] for lv in admin.get(url).json()["data"]]  # in its place by days
    assert codes == ["before_due", "first_notice", "second_notice", "third", "call", "final"]
    body = assert_problem(admin.post(url, json={"code": "x", "days": 1, "actions": ["nope"]}), 422)
    assert [e["field"] for e in body["errors"]] == ["actions[0]"]
    body = assert_problem(admin.patch(f"{url}/third", json={"days": "soon"}), 422)
    assert [e["field"] for e in body["errors"]] == ["days"]
    body = assert_problem(admin.patch(f"{url}/third", json={"code": "fourth"}), 422)
    assert [e["field"] for e in body["errors"]] == ["code"]
    patched = admin.patch(f"{url}/third", json={"days": 13}, headers={"Recoup-Reason": "later"})
    assert patched.json()["days"] == 13
    entry = _log(admin)[-1]
    assert entry["details"]["changed"] == ["level Standard/third"]
    assert entry["details"]["reason"] == "later" and entry["actor"] == "admin"
    replaced = admin.put(f"{url}/third", json={"code": "third", "days": 14, "actions": []})
    assert replaced.json()["actions"] == []
    assert admin.get(f"{url}/third").json()["days"] == 14
    assert admin.delete(f"{url}/third").status_code == 204
    assert_problem(admin.get(f"{url}/third"), 404)
    assert_problem(admin.get(f"{API}/policies/Nope/levels"), 404)
    body = assert_problem(admin.delete(f"{url}/final"), 422)  # the only end level
    assert body["errors"][0]["field"].startswith("policies[0]")


def test_policy_and_level_in_use_are_409_listing_references(in_use: Cli, admin: TestClient) -> None:
    (plan,) = in_use.plans()
    refs = admin.get(f"{API}/policies/Standard/references").json()
    assert refs["in_use"] is True and refs["plans"] == 1 and refs["plan_ids"] == [plan["id"]]
    body = assert_problem(admin.delete(f"{API}/policies/Standard"), 409)
    assert body["detail"].startswith(
        f"policy 'Standard' cannot be removed: it is used by 1 plan (#{plan['id']})"
    )
    level = admin.get(f"{API}/policies/Standard/levels/first_notice/references").json()
    assert level["id"] == "Standard/first_notice" and level["plans"] == 1 and level["in_use"]
    body = assert_problem(admin.delete(f"{API}/policies/Standard/levels/first_notice"), 409)
    assert body["errors"][0]["field"] == "level"
    unused = admin.get(f"{API}/policies/Standard/levels/second_notice/references").json()
    assert unused["in_use"] is False and unused["plans"] == 0
    assert admin.get(f"{API}/policies/Standard").status_code == 200
    assert len(admin.get(f"{API}/policies/Standard/levels").json()["data"]) == 5


def test_collectors_and_viewers_read_the_configuration_but_only_admins_write(
    cli: Cli, client: TestClient, keys: dict[str, str]
) -> None:
    for role in ("viewer", "collector"):
        headers = auth(keys[role])
        assert client.get(f"{API}/config", headers=headers).status_code == 200
        assert client.get(f"{API}/policies/Standard", headers=headers).status_code == 200
        response = client.put(f"{API}/config", content="settings: {}", headers=headers)
        assert_problem(response, 403)
        assert_problem(client.delete(f"{API}/actions/call", headers=headers), 403)
    assert (
        json.loads(client.get(f"{API}/actions/call", headers=auth(keys["viewer"])).text)["role"]
        == "collector"
    )


def test_webhook_urls_are_masked_for_keys_that_may_not_configure(
    cli: Cli, admin: TestClient, keys: dict[str, str]
) -> None:
    document = admin.get(f"{API}/config", headers={"Accept": "application/json"}).json()
    url = "https://hooks.example.com/in?token=s3cret"
    document["webhooks"] = [{"url": url, "events": ["plan_opened"], "active": True}]
    applied = admin.put(f"{API}/config", json=document)
    assert applied.json()["created"] == ["webhook https://hooks.example.com/in?token=***"]
    assert yaml.safe_load(_config(admin))["webhooks"][0]["url"] == url
    shown = admin.get(f"{API}/config", headers=auth(keys["viewer"])).text
    assert "s3cret" not in shown and "token=***" in shown


def test_a_letter_previews_as_its_pdf(in_use: Cli, admin: TestClient) -> None:
    letter = {
        "code": "final_letter", "channel": "letter", "language": "en",
        "body": "Dear {{ customer.name }}, {{ balance|money }} is still due.",
    }  # fmt: skip
    assert admin.post(f"{API}/templates", json=letter).status_code == 201
    url = f"{API}/templates/final_letter/en/preview"
    shown = admin.get(url, params={"invoice": "I1"}).json()
    assert shown["channel"] == "letter" and shown["pages"] == 1
    assert "Acme SARL, €100.00 is still due." in shown["text"]
    pdf = admin.get(url, params={"invoice": "I1", "format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
