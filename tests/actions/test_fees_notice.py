"""Fees follow a notice (SPEC §3): on a level with send actions, a fee or interest waits for
them and is skipped, with the reason logged, when none was delivered; `without_notice: true`
charges anyway; a level without a send charges as before. On both databases."""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.claims import claim_batch
from recoup.actions.notice import RECHECK
from recoup.actions.runner import process_instance
from recoup.models import ActionInstance, Charge, LevelRow, LogEntry
from recoup.policies.document import config_to_dict, parse_config
from recoup.policies.service import apply_document, export_config
from tests.factories import (
    NOW,
    TODAY,
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_plan,
    make_template,
)
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

D = Decimal


def _step(
    factory: sessionmaker[Session],
    *,
    email: str | None = "billing@acme.test",
    fee_first: bool = False,
    fee_type: str = "late_fee_fixed",
    with_send: bool = True,
    template: bool = True,
    **fee_params: Any,
) -> dict[str, int]:
    """A plan at level `first` with an email notice and a fee; returns the instance ids."""
    params: dict[str, Any] = {"service": "LATE_FEE", **fee_params}
    if fee_type == "late_fee_fixed":
        params.setdefault("amounts", {"EUR": "15.00"})
    else:
        params.setdefault("rate", "1.5")
    with factory() as s, s.begin():
        customer = make_acme_customer(s, email=email)
        invoice = make_acme_invoice(s, customer, amount=D("1000.00"))
        if template:
            make_template(s, "notice_1")
        send = make_action(s, "email_notice_1", "send_email", template="notice_1")
        fee = make_action(s, "fee_15", fee_type, **params)
        codes = ["fee_15", "email_notice_1"] if fee_first else ["email_notice_1", "fee_15"]
        if not with_send:
            codes = ["fee_15"]
        policy = make_acme_policy(s, levels=[("first", 5, codes), ("final", 90, [])])
        plan = make_plan(s, invoice, policy, level="first")
        ids: dict[str, int] = {}
        for code in codes:
            action = send if code == "email_notice_1" else fee
            ids[code] = make_instance(s, action, plan=plan, level="first").id
        return ids


def _charges(factory: sessionmaker[Session]) -> list[Charge]:
    with factory() as s:
        return list(s.scalars(select(Charge)))


def _instance(factory: sessionmaker[Session], instance_id: int) -> ActionInstance:
    with factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        return instance


def _events(factory: sessionmaker[Session]) -> list[LogEntry]:
    with factory() as s:
        return list(s.scalars(select(LogEntry).order_by(LogEntry.id)))


def test_no_email_no_fee_the_skip_says_why(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """The bug: a customer with no email address was charged for a notice never sent."""
    ids = _step(session_factory, email=None)
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert _charges(session_factory) == []
    fee = _instance(session_factory, ids["fee_15"])
    assert fee.status == "skipped"
    reason = "no notice was delivered: email_notice_1 skipped (customer has no email)"
    assert fee.result is not None and fee.result["reason"] == reason
    [skip] = [
        e for e in _events(session_factory) if e.event == "action_skipped" and e.action == "fee_15"
    ]
    assert skip.details["reason"] == reason
    assert skip.details["notices"] == ["email_notice_1"]
    assert stats.skipped == 2 and stats.done == 0


def test_a_delivered_notice_is_followed_by_its_fee(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ids = _step(session_factory)
    execute(session_factory, make_env(db_url, tmp_path))
    assert [(c.amount, c.currency) for c in _charges(session_factory)] == [(D("15.00"), "EUR")]
    assert _instance(session_factory, ids["email_notice_1"]).status == "done"
    assert _instance(session_factory, ids["fee_15"]).status == "done"


def test_a_fee_listed_before_its_notice_still_waits_for_it(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """Level actions [fee, email]: the fee's instance comes first, yet runs after the email."""
    ids = _step(session_factory, fee_first=True)
    assert ids["fee_15"] < ids["email_notice_1"]
    execute(session_factory, make_env(db_url, tmp_path))
    events = [
        (e.event, e.action)
        for e in _events(session_factory)
        if e.event in ("action_done", "charge_created")
    ]
    assert events == [
        ("action_done", "email_notice_1"),
        ("charge_created", "fee_15"),
        ("action_done", "fee_15"),
    ]


def test_a_fee_listed_before_a_missing_notice_is_skipped(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ids = _step(session_factory, email=None, fee_first=True)
    execute(session_factory, make_env(db_url, tmp_path))
    assert _charges(session_factory) == []
    assert _instance(session_factory, ids["fee_15"]).status == "skipped"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_notice_backing_off_keeps_its_fee_pending_then_the_fee_follows(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ids = _step(session_factory)
    down = make_env(db_url, tmp_path, smtp_url=f"smtp://127.0.0.1:{_closed_port()}")
    stats = execute(session_factory, down)
    assert stats.retried == 1
    email = _instance(session_factory, ids["email_notice_1"])
    # an unreachable server is an outage: waited out without using up an attempt
    assert (email.status, email.attempts, email.transport_failures) == ("pending", 0, 1)
    fee = _instance(session_factory, ids["fee_15"])
    assert (fee.status, fee.attempts) == ("pending", 0)  # waiting, not failed nor tried
    assert _charges(session_factory) == []
    # before the retry is due nothing is claimed: the fee is not run again and again
    assert execute(session_factory, down, now=NOW + timedelta(seconds=10)).processed == 0
    # the retry delivers (to the outbox this time): the fee follows
    later = NOW + timedelta(minutes=2)
    stats = execute(session_factory, make_env(db_url, tmp_path), now=later)
    assert stats.done == 2
    assert len(_charges(session_factory)) == 1


def test_a_failed_notice_skips_its_fee(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    # an email action without a template fails at once (PermanentFailure)
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer)
        send = make_action(s, "email_notice_1", "send_email")
        fee = make_action(s, "fee_15", "late_fee_fixed", amounts={"EUR": "15"}, service="FEE")
        policy = make_acme_policy(s, levels=[("first", 5, ["email_notice_1", "fee_15"])])
        plan = make_plan(s, invoice, policy, level="first")
        make_instance(s, send, plan=plan, level="first")
        fee_id = make_instance(s, fee, plan=plan, level="first").id
    execute(session_factory, make_env(db_url, tmp_path))
    assert _charges(session_factory) == []
    fee_row = _instance(session_factory, fee_id)
    assert fee_row.status == "skipped"
    assert fee_row.result is not None
    assert fee_row.result["reason"] == (
        "no notice was delivered: email_notice_1 failed (action email_notice_1 has no template)"
    )


@pytest.mark.parametrize("fee_type", ["late_fee_fixed", "late_fee_percent"])
def test_without_notice_charges_anyway(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, fee_type: str
) -> None:
    ids = _step(session_factory, email=None, fee_type=fee_type, without_notice=True)
    execute(session_factory, make_env(db_url, tmp_path))
    assert len(_charges(session_factory)) == 1
    assert _instance(session_factory, ids["fee_15"]).status == "done"


def test_without_notice_does_not_wait_for_a_notice_left_to_a_person(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ids = _step(session_factory, without_notice=True)
    with session_factory() as s, s.begin():  # a manual send: a task, never claimed
        email = s.get(ActionInstance, ids["email_notice_1"])
        assert email is not None
        email.next_attempt_at = None
    execute(session_factory, make_env(db_url, tmp_path))
    assert len(_charges(session_factory)) == 1


def test_a_level_without_a_send_charges_as_before(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ids = _step(session_factory, email=None, with_send=False)
    execute(session_factory, make_env(db_url, tmp_path))
    assert len(_charges(session_factory)) == 1
    assert _instance(session_factory, ids["fee_15"]).status == "done"


def test_a_fee_run_before_its_notice_is_parked_then_woken_by_the_notice(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """Claimed in one batch, the fee run first is handed back unexecuted (pending, no attempt
    counted, parked); the notice finishing makes it due at once."""
    ids = _step(session_factory, fee_first=True)
    env = make_env(db_url, tmp_path)
    with session_factory() as s, s.begin():
        assert claim_batch(s, token="w1", now=NOW, size=10) == sorted(ids.values())

    def run(instance_id: int) -> str | None:
        return process_instance(
            session_factory, instance_id, token="w1", env=env, today=TODAY, now=lambda: NOW
        )

    assert run(ids["fee_15"]) == "deferred"
    fee = _instance(session_factory, ids["fee_15"])
    assert (fee.status, fee.attempts, fee.leased_by) == ("pending", 0, None)
    assert fee.next_attempt_at == NOW + RECHECK
    assert run(ids["email_notice_1"]) == "done"
    assert _instance(session_factory, ids["fee_15"]).next_attempt_at == NOW
    assert _charges(session_factory) == []
    assert execute(session_factory, env).done == 1
    assert len(_charges(session_factory)) == 1


def test_a_fee_waits_for_a_notice_left_to_a_person(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ids = _step(session_factory)
    with session_factory() as s, s.begin():  # a manual send: a person's task, never claimed
        email = s.get(ActionInstance, ids["email_notice_1"])
        assert email is not None
        email.next_attempt_at = None
    env = make_env(db_url, tmp_path)
    assert execute(session_factory, env).deferred == 1
    assert _instance(session_factory, ids["fee_15"]).status == "pending"
    with session_factory() as s, s.begin():  # the person sent it (recoup task complete)
        email = s.get(ActionInstance, ids["email_notice_1"])
        assert email is not None
        email.status = "done"
    assert execute(session_factory, env, now=NOW + RECHECK).done == 1
    assert len(_charges(session_factory)) == 1


# --- the policy file -----------------------------------------------------------------------


def _document(**fee: Any) -> dict[str, Any]:
    return {
        "actions": [
            {"code": "fee", "type": "late_fee_fixed", "amounts": {"EUR": "15"}, "service": "F"}
            | fee
        ]
    }


def test_without_notice_is_parsed_kept_and_exported() -> None:
    parsed = parse_config(_document(without_notice=True))
    assert parsed.ok
    [action] = parsed.config.actions
    assert action.without_notice is True
    assert action.params["without_notice"] is True
    exported = config_to_dict(parsed.config)
    assert exported["actions"][0]["without_notice"] is True
    assert parse_config(exported).config == parsed.config
    assert parse_config(_document()).config.actions[0].without_notice is False


def test_without_notice_must_be_a_boolean() -> None:
    parsed = parse_config(_document(without_notice="yes"))
    assert [str(i) for i in parsed.issues] == [
        "actions[0].without_notice: must be true or false, not text"
    ]
    email = {"actions": [{"code": "e", "type": "send_email", "without_notice": True}]}
    [issue] = parse_config(email).issues
    assert issue.path == "actions[0].without_notice"
    assert "unknown field for type send_email" in issue.message


def _levels(**level: Any) -> dict[str, Any]:
    return {
        "policies": [
            {
                "name": "P",
                "priority": 1,
                "levels": [{"code": "notice", "days": 5, "actions": []} | level],
            }
        ]
    }


def test_deadline_days_is_parsed_validated_and_exported() -> None:
    parsed = parse_config(_levels(deadline_days=8))
    assert parsed.ok
    assert parsed.config.policies[0].levels[0].deadline_days == 8
    exported = config_to_dict(parsed.config)
    assert exported["policies"][0]["levels"][0]["deadline_days"] == 8
    assert parse_config(exported).config == parsed.config
    assert parse_config(_levels()).config.policies[0].levels[0].deadline_days is None
    assert (
        "deadline_days"
        not in config_to_dict(parse_config(_levels()).config)["policies"][0]["levels"][0]
    )
    assert [str(i) for i in parse_config(_levels(deadline_days=-1)).issues] == [
        "policies[0].levels[0].deadline_days: must be 0 or more days, not -1"
    ]
    assert [str(i) for i in parse_config(_levels(deadline_days="8")).issues] == [
        "policies[0].levels[0].deadline_days: must be an integer, not text"
    ]


def test_deadline_days_and_without_notice_are_stored_by_apply(
    session_factory: sessionmaker[Session],
) -> None:
    document = {
        "actions": [
            {
                "code": "fee",
                "type": "late_fee_fixed",
                "amounts": {"EUR": "15"},
                "service": "F",
                "without_notice": True,
            }
        ],
        "policies": [
            {
                "name": "P",
                "priority": 1,
                "default": True,
                "levels": [
                    {"code": "notice", "days": 5, "deadline_days": 8, "actions": ["fee"]},
                    {"code": "final", "days": 20, "end": True, "actions": []},
                ],
            }
        ],
    }
    with session_factory() as s, s.begin():
        apply_document(s, document, "tester")
    with session_factory() as s:
        rows = {row.code: row.deadline_days for row in s.scalars(select(LevelRow))}
        assert rows == {"notice": 8, "final": None}
        exported = export_config(s)
    assert exported["actions"][0]["without_notice"] is True
    assert exported["policies"][0]["levels"][0]["deadline_days"] == 8
    with session_factory() as s, s.begin():  # the same file again: nothing changed
        assert not apply_document(s, document, "tester").any


# --- from the command line -----------------------------------------------------------------


def test_run_charges_no_fee_to_a_customer_without_email(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`recoup run` as a user runs it: C1 has an email, C3 none; both reach the level with
    the notice and the fee; only C1 is charged, and the log says why C3 was not."""
    cli = Cli(tmp_path)
    cli.setup()  # C1 and its invoice I1
    no_email = "id,name,email,language,currency\nC3,Quiet SARL,,en,EUR\n"
    cli("import", "customers", cli.file("quiet.csv", no_email))
    invoices = invoice_csv(("I3", "C3", DUE, "100.00", "EUR"))
    cli("import", "invoices", cli.file("quiet_invoices.csv", invoices))
    cli.run(5)
    assert [c["invoice_id"] for c in cli.json("charges")] == ["I1"]
    skipped = [e for e in cli.log("--event", "action_skipped") if e["action"] == "fee_15"]
    assert [(e["invoice_id"], e["details"]["reason"]) for e in skipped] == [
        ("I3", "no notice was delivered: email_notice skipped (customer has no email)")
    ]


@pytest.mark.parametrize(
    ("fee_type", "params", "announced"),
    [
        ("late_fee_fixed", {"amounts": {"EUR": "15.00"}}, "€15.00"),
        ("late_fee_percent", {"rate": "2"}, "€20.00"),  # 2 % of the 1,000.00 owed
    ],
)
def test_a_notice_states_the_fee_its_level_will_charge(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    fee_type: str,
    params: dict[str, Any],
    announced: str,
) -> None:
    """The fee waits for its notice, so it is not among `charges` yet: `level_fees` says what
    it will be, and the charge that follows is that amount."""
    ids = _step(session_factory, fee_type=fee_type, template=False, **params)
    with session_factory() as s, s.begin():
        make_template(
            s,
            "notice_1",
            body=(
                "{% for fee in level_fees %}{{ fee.service }} {{ fee.amount|money }}; "
                "{% endfor %}added: {{ level_fees_total|money }}; charged so far: "
                "{{ fees_total|money }}"
            ),
        )
    env = make_env(db_url, tmp_path)
    execute(session_factory, env)
    [eml] = sorted(env.outbox_dir.glob("*.eml"))
    text = eml.read_text()
    assert f"LATE_FEE {announced}; added: {announced}; charged so far: €0.00" in text
    [charge] = _charges(session_factory)
    assert charge.amount == D(announced.removeprefix("€"))
    assert _instance(session_factory, ids["fee_15"]).status == "done"
