"""Charges finance can handle: a status (open, exported, waived) in `recoup charges` and its
JSON, `recoup charge waive ID --reason` (logged charge_waived, sent to webhooks), `recoup
charge export`. The CLI driven like a user would, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from recoup.cli.common import session_factory
from recoup.documents.preview import preview_template
from recoup.domain.signature import verify_signature
from recoup.models import TemplateRow
from tests.http_recorder import Recorder, http_recorder
from tests.runs.test_run_e2e import CUSTOMERS, DUE, POLICY_YAML, Cli, invoice_csv

SECRET = "whsec_charges"
WEBHOOKS = """
webhooks:
  - {{url: "{url}", events: [charge_created, charge_waived]}}
"""


@pytest.fixture
def server() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


@pytest.fixture
def cli(
    env: dict[str, str], tmp_path: Path, server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("RECOUP_WEBHOOK_SECRET", SECRET)
    cli = Cli(tmp_path)
    cli("init")
    policy = POLICY_YAML.format(
        mode="invoice", catch_up="latest", transition="days_overdue", second_min=""
    ) + WEBHOOKS.format(url=server.url + "/hooks")
    cli("config", "apply", cli.file("policy.yaml", policy))
    cli("import", "customers", cli.file("customers.csv", CUSTOMERS))
    invoices = invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C1", DUE, "200.00", "EUR"))
    cli("import", "invoices", cli.file("invoices.csv", invoices))
    cli.run(5)  # a notice and a 15.00 fee on each invoice
    return cli


def _events(server: Recorder) -> list[dict[str, object]]:
    bodies = []
    for request in server.requests:
        header = request.headers["recoup-signature"]
        t = int(dict(part.split("=", 1) for part in header.split(","))["t"])
        assert verify_signature(SECRET, header, request.body, now=t)
        bodies.append(request.json())
    return bodies


def test_charges_list_their_status_after_the_specs_fields(cli: Cli) -> None:
    charges = cli.json("charges")
    assert [list(c) for c in charges] == [
        ["id", "customer_id", "invoice_id", "amount", "currency", "service", "status"]
    ] * 2
    assert [(c["amount"], c["status"]) for c in charges] == [("15.00", "open")] * 2
    assert "open" in cli("charges")
    assert "unknown charge status 'paid'" in cli("charges", "--status", "paid", code=1)


def test_waive_a_charge_logged_and_sent_to_webhooks(cli: Cli, server: Recorder) -> None:
    [first, second] = cli.json("charges")
    day = (DUE + timedelta(days=6)).isoformat()
    out = cli(
        "charge", "waive", str(first["id"]), "--reason", "goodwill", "--user", "alice", "--on", day
    )
    assert f"charge {first['id']} (15.00 EUR) waived" in out
    statuses = {c["id"]: c["status"] for c in cli.json("charges")}
    assert statuses == {first["id"]: "waived", second["id"]: "open"}
    assert [c["id"] for c in cli.json("charges", "--status", "waived")] == [first["id"]]
    [entry] = cli.log("--event", "charge_waived")
    assert (entry["actor"], entry["on"], entry["invoice_id"]) == ("alice", day, "I1")
    assert entry["details"]["reason"] == "goodwill"
    assert entry["details"]["previous_status"] == "open"
    assert (entry["details"]["amount"], entry["details"]["charge_id"]) == ("15.00", first["id"])
    cli("events", "deliver")
    waived = [b for b in _events(server) if b["type"] == "charge_waived"]
    assert len(waived) == 1
    data = waived[0]["data"]
    assert isinstance(data, dict)
    assert data["actor"] == "alice" and data["details"]["charge_id"] == first["id"]


def test_a_charge_is_waived_once_with_a_reason_by_a_person(cli: Cli) -> None:
    [first, _] = cli.json("charges")
    charge_id = str(first["id"])
    assert "--reason must not be empty" in cli(
        "charge", "waive", charge_id, "--reason", " ", "--user", "alice", code=1
    )
    assert "needs a person" in cli("charge", "waive", charge_id, "--reason", "goodwill", code=1)
    assert "Missing option '--reason'" in cli("charge", "waive", charge_id, code=2)
    cli("charge", "waive", charge_id, "--reason", "goodwill", "--user", "alice")
    again = cli("charge", "waive", charge_id, "--reason", "twice", "--user", "bob", code=1)
    assert "already waived by alice (goodwill)" in again
    assert len(cli.log("--event", "charge_waived")) == 1
    assert "no charge 999" in cli("charge", "waive", "999", "--reason", "x", "--user", "a", code=1)


def test_export_marks_open_charges_and_an_exported_one_can_still_be_waived(cli: Cli) -> None:
    [first, second] = cli.json("charges")
    out = cli("charge", "export", str(first["id"]), "--user", "erp")
    assert f"1 charge(s) marked exported: {first['id']}" in out
    out = cli("charge", "export", "--all-open", "--user", "erp")
    assert f"1 charge(s) marked exported: {second['id']}" in out
    assert {c["status"] for c in cli.json("charges")} == {"exported"}
    assert len(cli.log("--event", "charge_exported")) == 2
    again = cli("charge", "export", str(first["id"]), "--user", "erp")
    assert "0 charge(s) marked exported" in again and "already exported" in again
    # the customer is let off after all: the billing system hears of it by the event
    cli("charge", "waive", str(first["id"]), "--reason", "error", "--user", "alice")
    [entry] = cli.log("--event", "charge_waived")
    assert entry["details"]["previous_status"] == "exported"
    refused = cli("charge", "export", str(first["id"]), code=1)
    assert "waived: not owed" in refused
    assert "--all-open" in cli("charge", "export", code=1)


def test_waived_fees_are_not_in_what_the_customer_is_told_is_due(
    cli: Cli, env: dict[str, str]
) -> None:
    """A letter or email after a waiver shows only the fees still open."""
    [first, _] = cli.json("charges")
    cli("charge", "waive", str(first["id"]), "--reason", "goodwill", "--user", "alice")
    factory = session_factory()
    with factory() as session:
        session.add(
            TemplateRow(
                code="due",
                channel="email",
                language="en",
                subject="s",
                body="{{ fees_total|money }} / {{ total_due|money }}"
                "{% for c in charges %} {{ c.status }}{% endfor %}",
            )
        )
        session.flush()
        i1 = preview_template(session, "due", invoice_id="I1", today=DUE + timedelta(days=6))
        i2 = preview_template(session, "due", invoice_id="I2", today=DUE + timedelta(days=6))
        session.rollback()
    assert i1.text.strip() == "€0.00 / €100.00 waived"
    assert i2.text.strip() == "€15.00 / €215.00 open"
