"""Manual actions on a plan (the Openbravo seed): send an email, generate a letter, change the
account status by hand — only when the plan's current level has what they need; executed at
once through the runner, every log entry carrying the person as actor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.actions.manual import (
    ManualActionUnavailable,
    available_manual_actions,
    perform_manual_action,
)
from recoup.actions.registry import executor_for
from recoup.cli.main import app
from recoup.core.errors import InvalidInput, NotFound, RecoupError, cli_flag
from recoup.models import (
    ActionInstance,
    Customer,
    Document,
    Invoice,
    LogEntry,
    Plan,
    StatusChange,
    Task,
)
from recoup.plans.closing import refresh_plans_after_change
from tests.factories import (
    TODAY,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_plan,
    make_template,
)


@contextmanager
def refused_as_cli_says(kind: type[RecoupError], match: str) -> Iterator[None]:
    """The service refuses with `kind`; its message, as the CLI prints it (fields as flags),
    matches `match`."""
    with pytest.raises(kind) as info:
        yield
    text = info.value.text(cli_flag)
    assert re.search(match, text), text


def _setup(
    factory: sessionmaker[Session],
    *,
    level: str = "notice",
    plan_status: str = "active",
    email_mode: str = "automatic",
) -> int:
    """Customer C1 with one plan at `level`. Levels: notice (email), call (nothing the manual
    actions need), final (letter + suspend), written_off (the end level)."""
    with factory() as s, s.begin():
        customer = make_acme_customer(s, "C1")
        invoice = make_acme_invoice(s, customer, "I1")
        make_template(s, "notice_1")
        make_template(s, "friendly", subject="A friendly word about {{ invoice.number }}")
        make_template(s, "old", active=False)
        make_template(s, "final_letter", channel="letter", subject="Final notice")
        make_action(s, "email_notice_1", "send_email", mode=email_mode, template="notice_1")
        make_action(s, "call", "manual", mode="manual", role="collector")
        make_action(s, "letter_final", "send_letter", template="final_letter")
        make_action(s, "suspend", "change_account_status", status="suspended")
        policy = make_acme_policy(
            s,
            levels=[
                ("notice", 5, ["email_notice_1"]),
                ("call", 10, ["call"]),
                ("final", 20, ["letter_final", "suspend"]),
                ("written_off", 60, []),
            ],
        )
        return make_plan(s, invoice, policy, level=level, status=plan_status).id


def _perform(
    factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    plan_id: int,
    kind: str,
    **kw: object,
):  # noqa: ANN202
    return perform_manual_action(
        factory,
        plan_id,
        kind,
        actor=str(kw.pop("actor", "alice")),
        env=make_env(db_url, tmp_path, smtp_url=kw.pop("smtp_url", None)),  # type: ignore[arg-type]
        today=TODAY,
        **kw,  # type: ignore[arg-type]
    )


def _log(factory: sessionmaker[Session], plan_id: int) -> list[tuple[str, str]]:
    with factory() as s:
        rows = s.scalars(select(LogEntry).where(LogEntry.plan_id == plan_id).order_by(LogEntry.id))
        return [(e.event, e.actor) for e in rows]


def test_email_at_a_level_with_an_email_action(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory)
    outcome = _perform(session_factory, db_url, tmp_path, plan_id, "email")
    assert outcome.succeeded, outcome
    assert (outcome.level, outcome.action, outcome.result["template"]) == (
        "notice",
        "email_notice_1",
        "notice_1",
    )
    assert Path(outcome.result["path"]).is_file()  # no SMTP configured: the outbox
    with session_factory() as s:
        instance = s.get(ActionInstance, outcome.instance_id)
        assert instance is not None
        assert instance.key == f"manual:{plan_id}:1:send_email"
        assert (instance.status, instance.attempts, instance.leased_by) == ("done", 1, None)
        assert instance.result is not None and instance.result["manual"]["actor"] == "alice"
    assert _log(session_factory, plan_id) == [("action_queued", "alice"), ("action_done", "alice")]
    # a second one is another instance, with its own key (and its own Message-ID)
    again = _perform(session_factory, db_url, tmp_path, plan_id, "email", template="friendly")
    assert again.succeeded and again.result["template"] == "friendly"
    assert again.result["message_id"] != outcome.result["message_id"]
    assert again.result["subject"] == "A friendly word about INV-I1"
    with session_factory() as s:
        keys = s.scalars(select(ActionInstance.key).order_by(ActionInstance.id)).all()
        assert keys == [f"manual:{plan_id}:1:send_email", f"manual:{plan_id}:2:send_email"]


def test_email_refused_at_a_level_without_one(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory, level="call")
    with pytest.raises(ManualActionUnavailable) as caught:
        _perform(session_factory, db_url, tmp_path, plan_id, "email")
    message = str(caught.value)
    assert "level call has no send_email action" in message
    assert "call (manual)" in message
    with session_factory() as s:
        assert s.scalars(select(ActionInstance)).all() == []
        assert s.scalars(select(LogEntry)).all() == []
        plan = s.get(Plan, plan_id)
        assert plan is not None
        assert available_manual_actions(s, plan) == {}
        plan.level = "final"
        assert available_manual_actions(s, plan) == {"letter": "letter_final", "status": "suspend"}


def test_template_must_be_an_active_template_of_the_channel(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory)
    for code in ("final_letter", "old", "nope"):
        with refused_as_cli_says(InvalidInput, f"--template {code}: no active email template"):
            _perform(session_factory, db_url, tmp_path, plan_id, "email", template=code)
    with refused_as_cli_says(InvalidInput, "--status is for a status change"):
        _perform(session_factory, db_url, tmp_path, plan_id, "email", status="blocked")


def test_refusals_are_clear(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory, level="final")
    with refused_as_cli_says(InvalidInput, "done by a person: pass --user"):
        _perform(session_factory, db_url, tmp_path, plan_id, "status", actor="system")
    with pytest.raises(InvalidInput, match="cancelled account is final"):
        _perform(session_factory, db_url, tmp_path, plan_id, "status", status="cancelled")
    with pytest.raises(NotFound, match="plan 999 not found"):
        _perform(session_factory, db_url, tmp_path, 999, "status")
    with session_factory() as s, s.begin():
        plan = s.get(Plan, plan_id)
        assert plan is not None
        plan.level = None
    with pytest.raises(ManualActionUnavailable, match="has not reached a level yet"):
        _perform(session_factory, db_url, tmp_path, plan_id, "status")
    with session_factory() as s, s.begin():
        plan = s.get(Plan, plan_id)
        assert plan is not None
        plan.level, plan.status, plan.open_key = "final", "stopped", None
    with pytest.raises(ManualActionUnavailable, match="is stopped: manual actions are only"):
        _perform(session_factory, db_url, tmp_path, plan_id, "status")


def test_status_change_is_recorded_with_the_user_and_restored_on_recovery(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory, level="final")
    outcome = _perform(session_factory, db_url, tmp_path, plan_id, "status", status="blocked")
    assert outcome.succeeded, outcome
    assert (outcome.result["previous_status"], outcome.result["status"]) == ("active", "blocked")
    with session_factory() as s:
        customer = s.get(Customer, "C1")
        assert customer is not None and customer.status == "blocked"
        change = s.scalar(select(StatusChange))
        assert change is not None
        assert (change.plan_id, change.previous_status, change.new_status) == (
            plan_id,
            "active",
            "blocked",
        )
        entry = s.scalar(select(LogEntry).where(LogEntry.event == "status_changed"))
        assert entry is not None
        assert (entry.actor, entry.details["status"]) == ("alice", "blocked")
    # the level's own status, by default
    default = _perform(session_factory, db_url, tmp_path, plan_id, "status", actor="bob")
    assert default.succeeded and default.result["status"] == "suspended"
    # paid: the plan is recovered and the status from before the plan comes back (R12)
    with session_factory() as s, s.begin():
        invoice = s.get(Invoice, "I1")
        assert invoice is not None
        invoice.amount_due, invoice.status = Decimal(0), "paid"
        refresh_plans_after_change(s, ["I1"], on=TODAY)
    with session_factory() as s:
        customer = s.get(Customer, "C1")
        plan = s.get(Plan, plan_id)
        assert customer is not None and plan is not None
        assert (plan.status, customer.status) == ("recovered", "active")
    events = _log(session_factory, plan_id)
    assert ("status_changed", "alice") in events and ("status_changed", "bob") in events
    assert events[-2:] == [("status_restored", "system"), ("plan_recovered", "system")]


def test_paused_plan_and_manual_mode_action(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """A person may act on a paused plan, and with an action configured `mode: manual` (its
    task is for people; doing it by hand is the point)."""
    plan_id = _setup(session_factory, plan_status="paused", email_mode="manual")
    outcome = _perform(session_factory, db_url, tmp_path, plan_id, "email")
    assert outcome.succeeded, outcome
    with session_factory() as s:
        plan = s.get(Plan, plan_id)
        assert plan is not None and plan.status == "paused"


def test_debt_gone_is_a_logged_skip(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory)
    with session_factory() as s, s.begin():
        invoice = s.get(Invoice, "I1")
        assert invoice is not None
        invoice.disputed = True
    outcome = _perform(session_factory, db_url, tmp_path, plan_id, "email")
    assert (outcome.status, outcome.result["reason"]) == ("skipped", "invoice INV-I1 is disputed")
    assert _log(session_factory, plan_id) == [
        ("action_queued", "alice"),
        ("action_skipped", "alice"),
    ]


def test_transient_failure_is_retried_by_a_worker_as_the_user(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    plan_id = _setup(session_factory)
    outcome = _perform(
        session_factory, db_url, tmp_path, plan_id, "email", smtp_url="smtp://127.0.0.1:1"
    )
    assert outcome.status == "pending" and outcome.next_attempt_at is not None
    assert outcome.error
    assert _log(session_factory, plan_id) == [
        ("action_queued", "alice"),
        ("action_retry", "alice"),
    ]
    with session_factory() as s:
        instance = s.get(ActionInstance, outcome.instance_id)
        assert instance is not None and instance.result is not None
        # the request survives for the retry: same user, same choices
        assert instance.result["manual"]["actor"] == "alice"
        assert s.scalars(select(Task)).all() == []


def test_letter_by_hand(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    if executor_for("send_letter") is None:
        pytest.skip("no send_letter executor registered (recoup/actions/letter.py missing)")
    plan_id = _setup(session_factory, level="final")
    outcome = _perform(session_factory, db_url, tmp_path, plan_id, "letter")
    assert outcome.succeeded, outcome
    with session_factory() as s:
        document = s.scalar(select(Document))
        assert document is not None and document.plan_id == plan_id
        assert Path(document.path).is_file()
    assert _log(session_factory, plan_id)[-1] == ("action_done", "alice")
    with pytest.raises(InvalidInput, match="no active letter template"):
        _perform(session_factory, db_url, tmp_path, plan_id, "letter", template="notice_1")


def test_cli(session_factory: sessionmaker[Session], env: dict[str, str], tmp_path: Path) -> None:
    plan_id = _setup(session_factory)
    runner = CliRunner()
    result = runner.invoke(app, ["plan", "email", str(plan_id), "--user", "carol"])
    assert result.exit_code == 0, result.output
    assert "email notice_1 (en) sent to billing@acme.test" in result.output
    result = runner.invoke(app, ["plan", "status", str(plan_id), "--user", "carol"])
    assert result.exit_code == 1
    assert "level notice has no change_account_status action" in result.output
    result = runner.invoke(app, ["plan", "email", str(plan_id)])  # RECOUP_USER is empty
    assert result.exit_code == 1
    assert "pass --user NAME or set RECOUP_USER" in result.output
    result = runner.invoke(
        app,
        ["plan", "email", str(plan_id), "--template", "friendly", "--json"],
        env={"RECOUP_USER": "dave"},
    )
    assert result.exit_code == 0, result.output
    assert '"template": "friendly"' in result.output
    assert _log(session_factory, plan_id)[-1] == ("action_done", "dave")
