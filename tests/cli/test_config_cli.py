"""`recoup config validate|apply|export` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.models import (
    ActionRow,
    Customer,
    Invoice,
    LevelRow,
    LogEntry,
    Plan,
    PolicyRow,
    SettingsRow,
    TemplateRow,
)
from recoup.schedule.service import CHECK_NOW

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"

runner = CliRunner()


@pytest.fixture
def example() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def recoup(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def write(tmp_path: Path, document: dict[str, Any], name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), "utf-8")
    return str(path)


def count(session_factory: sessionmaker[Session], model: type[Any]) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def open_plan(
    session_factory: sessionmaker[Session], policy_name: str, *, invoice_type: str = "commercial"
) -> int:
    """An active plan on `policy_name`, written directly as the engine would have."""
    with session_factory() as session, session.begin():
        policy = session.scalars(select(PolicyRow).where(PolicyRow.name == policy_name)).one()
        session.add(Customer(id="C1", name="Dupont SA", currency="EUR", category="smb"))
        session.flush()
        session.add(
            Invoice(
                id="INV-1",
                customer_id="C1",
                number="F-2024-001",
                type=invoice_type,
                issue_date=date(2024, 1, 1),
                due_date=date(2024, 1, 31),
                currency="EUR",
                amount=Decimal("120.00"),
                amount_due=Decimal("120.00"),
            )
        )
        session.flush()
        plan = Plan(
            customer_id="C1",
            invoice_id="INV-1",
            currency="EUR",
            mode="invoice",
            policy_id=policy.id,
            status="active",
            level="first_notice",
            balance=Decimal("120.00"),
            opened_on=date(2024, 2, 3),
            anchor_date=date(2024, 1, 31),
            open_key="inv:INV-1",
        )
        session.add(plan)
        session.flush()
        return plan.id


def test_apply_creates_then_nothing_changes(
    env: dict[str, str], tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    result = recoup("config", "apply", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "created: policy Standard" in result.output
    assert "created: template reminder/fr" in result.output
    assert "created: action fee_15" in result.output
    assert count(session_factory, PolicyRow) == 2
    assert count(session_factory, LevelRow) == 9
    assert count(session_factory, ActionRow) == 12
    assert count(session_factory, TemplateRow) == 8
    with session_factory() as session:
        settings = session.get(SettingsRow, 1)
        assert settings is not None and settings.timezone == "Europe/Paris"
        fee = session.scalars(select(ActionRow).where(ActionRow.code == "fee_15")).one()
        # Stored exactly, as strings: the executors never see a float.
        assert fee.params["amounts"] == {"EUR": "15.00", "USD": "15.00", "GBP": "12.50"}
        entries = session.scalars(select(LogEntry).where(LogEntry.event == "config_changed")).all()
        assert len(entries) == 1
        assert "policy Enterprise" in entries[0].details["created"]

    again = recoup("config", "apply", str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "no changes"
    assert count(session_factory, LogEntry) == 1


def test_export_applies_unchanged(env: dict[str, str], tmp_path: Path) -> None:
    assert recoup("config", "apply", str(EXAMPLE)).exit_code == 0
    exported = tmp_path / "exported.yaml"
    result = recoup("config", "export", str(exported))
    assert result.exit_code == 0, result.output

    text = exported.read_text("utf-8")
    assert "EUR: '15.00'" in text  # amounts quoted
    applied = recoup("config", "apply", str(exported))
    assert applied.exit_code == 0, applied.output
    assert applied.output.strip() == "no changes"

    stdout = recoup("config", "export", "-")
    assert stdout.exit_code == 0
    assert yaml.safe_load(stdout.stdout) == yaml.safe_load(text)
    assert recoup("config", "validate", str(exported)).exit_code == 0


def test_every_error_is_listed_and_nothing_changes(
    env: dict[str, str],
    tmp_path: Path,
    example: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    bad = copy.deepcopy(example)
    bad["settings"]["timezone"] = "Europe/Pariss"
    bad["actions"][4]["amounts"]["EUR"] = 15.5  # unquoted: a float
    bad["policies"][0]["levels"][1]["actions"] = ["email_notice_1", "nope"]
    path = write(tmp_path, bad)

    for command in ("validate", "apply"):
        result = recoup("config", command, path)
        assert result.exit_code == 1, result.output
        assert "3 problems" in result.output
        assert "actions[4].amounts.EUR: write amounts and rates as quoted" in result.output
        assert "settings.timezone: unknown time zone 'Europe/Pariss'" in result.output
        assert "policies[0].levels[1].actions[1]: no action 'nope'" in result.output
    assert count(session_factory, PolicyRow) == 0
    assert count(session_factory, TemplateRow) == 0
    assert count(session_factory, LogEntry) == 0


def test_yaml_syntax_error_has_line_and_column(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("settings:\n  mode: invoice\n  invoice_types: [commercial\n", "utf-8")
    result = recoup("config", "validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:4:1:" in result.output

    twice = tmp_path / "twice.yaml"
    twice.write_text("settings:\n  mode: invoice\n  mode: customer\n", "utf-8")
    result = recoup("config", "apply", str(twice))
    assert result.exit_code == 1
    assert f"{twice}:3:3: found the key 'mode' twice" in result.output


def test_mode_is_locked_while_plans_are_open(
    env: dict[str, str],
    tmp_path: Path,
    example: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    assert recoup("config", "apply", str(EXAMPLE)).exit_code == 0
    open_plan(session_factory, "Standard")

    changed = copy.deepcopy(example)
    changed["settings"]["mode"] = "customer"
    changed["settings"]["invoice_types"] = ["recurring"]
    result = recoup("config", "apply", write(tmp_path, changed))
    assert result.exit_code == 1, result.output
    assert (
        "settings.mode: cannot change from invoice to customer while 1 plan are active or "
        "paused (rule R11 in docs/rules.md)" in result.output
    )
    assert (
        "settings.invoice_types: invoice type 'commercial' cannot be removed while 1 plan "
        "cover invoices of that type (rule R11 in docs/rules.md)" in result.output
    )
    with session_factory() as session:
        settings = session.get(SettingsRow, 1)
        assert settings is not None and settings.mode == "invoice"


def test_a_policy_in_use_cannot_be_removed(
    env: dict[str, str],
    tmp_path: Path,
    example: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    assert recoup("config", "apply", str(EXAMPLE)).exit_code == 0
    plan_id = open_plan(session_factory, "Enterprise")

    without = copy.deepcopy(example)
    without["policies"] = without["policies"][:1]
    result = recoup("config", "apply", write(tmp_path, without))
    assert result.exit_code == 1, result.output
    assert (
        f"policies: policy 'Enterprise' cannot be removed: it is used by 1 plan (#{plan_id})"
        in result.output
    )
    assert count(session_factory, PolicyRow) == 2

    # Its level the plan stands on cannot go either; another level can.
    fewer = copy.deepcopy(example)
    enterprise = fewer["policies"][1]
    enterprise["levels"] = [lv for lv in enterprise["levels"] if lv["code"] != "first_notice"]
    result = recoup("config", "apply", write(tmp_path, fewer))
    assert result.exit_code == 1
    assert "level 'first_notice' of policy 'Enterprise' cannot be removed" in result.output

    fewer = copy.deepcopy(example)
    enterprise = fewer["policies"][1]
    enterprise["levels"] = [lv for lv in enterprise["levels"] if lv["code"] != "call"]
    result = recoup("config", "apply", write(tmp_path, fewer))
    assert result.exit_code == 0, result.output
    assert "removed: level Enterprise/call" in result.output
    with session_factory() as session:
        # The engine looks at every open plan again after a change.
        plan = session.get(Plan, plan_id)
        assert plan is not None and plan.next_step_on == CHECK_NOW


def test_changes_removals_and_priority_swap(
    env: dict[str, str],
    tmp_path: Path,
    example: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    assert recoup("config", "apply", str(EXAMPLE)).exit_code == 0

    changed = copy.deepcopy(example)
    standard, enterprise = changed["policies"]
    standard["priority"], enterprise["priority"] = enterprise["priority"], standard["priority"]
    changed["actions"] = [a for a in changed["actions"] if a["code"] != "notify_crm"]
    for policy in changed["policies"]:
        for level in policy["levels"]:
            level["actions"] = [code for code in level["actions"] if code != "notify_crm"]
    changed["templates"] = [t for t in changed["templates"] if t["code"] != "sms_overdue"]
    changed["actions"] = [a for a in changed["actions"] if a["code"] != "sms_notice"]
    standard["levels"][2]["actions"].remove("sms_notice")
    next(a for a in changed["actions"] if a["code"] == "fee_15")["amounts"]["EUR"] = "20.00"
    changed["templates"].append(
        {
            "code": "notice_2",
            "channel": "email",
            "language": "fr",
            "subject": "Relance",
            "body": "Bonjour {{ customer.name }}",
        }
    )
    result = recoup("config", "apply", write(tmp_path, changed), "--user", "alice")
    assert result.exit_code == 0, result.output
    lines = set(result.output.splitlines())
    assert {
        "created: template notice_2/fr",
        "changed: policy Standard",
        "changed: policy Enterprise",
        "changed: action fee_15",
        "changed: level Standard/second_notice",
        "changed: level Standard/final",
        "changed: level Enterprise/final",
        "removed: template sms_overdue/en",
        "removed: action notify_crm",
        "removed: action sms_notice",
    } <= lines
    with session_factory() as session:
        priorities = dict(session.execute(select(PolicyRow.name, PolicyRow.priority)).all())
        assert priorities == {"Standard": 10, "Enterprise": 100}
        entry = session.scalars(
            select(LogEntry).where(LogEntry.event == "config_changed").order_by(LogEntry.id.desc())
        ).first()
        assert entry is not None and entry.actor == "alice"
        assert "action notify_crm" in entry.details["removed"]

    assert recoup("config", "apply", write(tmp_path, changed)).output.strip() == "no changes"


def test_a_policy_named_by_a_customer_cannot_be_removed(
    env: dict[str, str],
    tmp_path: Path,
    example: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    assert recoup("config", "apply", str(EXAMPLE)).exit_code == 0
    with session_factory() as session, session.begin():
        session.add(Customer(id="BIG", name="Big Corp", policy="Enterprise"))
    without = copy.deepcopy(example)
    without["policies"] = without["policies"][:1]
    result = recoup("config", "validate", write(tmp_path, without))
    assert result.exit_code == 1
    assert (
        "policies: policy 'Enterprise' cannot be removed: it is used by 1 customer "
        "(as their explicit policy)" in result.output
    )


def test_validate_and_apply_print_warnings_about_the_book(
    env: dict[str, str], tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    """Sound but probably not meant (issue 9.7): printed, not refusing, by both commands."""
    with session_factory() as session, session.begin():
        session.add(Customer(id="C1", name="Müller GmbH", currency="JPY", language="de"))
        session.add(Customer(id="C2", name="Dupont SA", currency="EUR", language="fr_CA"))
        session.flush()
        for number, customer, currency in (("1", "C1", "JPY"), ("2", "C2", "EUR")):
            session.add(
                Invoice(
                    id=f"INV-{number}",
                    customer_id=customer,
                    number=f"F-{number}",
                    issue_date=date(2024, 1, 1),
                    due_date=date(2024, 1, 31),
                    currency=currency,
                    amount=Decimal("1200"),
                    amount_due=Decimal("1200"),
                )
            )
    for command in ("validate", "apply"):
        result = recoup("config", command, str(EXAMPLE))
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
        assert (
            "warning: actions[4].amounts: no amount for JPY (1 customer has invoices in JPY): "
            "the fee will be skipped in JPY" in warnings
        )
        assert (
            "warning: templates[2].language: template 'notice_1' has no version in de "
            "(1 customer speaks it): they get the en version" in warnings
        )
        # fr_CA is served by the French version where there is one
        assert not any("'reminder' has no version in fr_CA" in line for line in warnings)
        assert any("'notice_2' has no version in fr_CA" in line for line in warnings)
        assert (
            "warning: actions[1].attach_invoice: 2 of 2 outstanding invoices have no PDF: "
            "their emails go without the invoice attached" in warnings
        )
        assert any(line.startswith("warning: policies[1].attach_invoice: ") for line in warnings)
    assert count(session_factory, PolicyRow) == 2  # the warnings did not stop the apply
