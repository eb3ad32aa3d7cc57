"""webhook and retry_payment (SPEC §3): signed JSON POSTs to a real HTTP server describing
the plan; retry_payment asks for the remaining balance with an idempotency key; the billing
system's failure answer is logged on the plan."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.billing.service import record_payment_failure
from recoup.book.payments import import_payments
from recoup.cli.main import app
from recoup.core.env import EnvConfig
from recoup.core.errors import InvalidInput, NotFound
from recoup.domain.signature import signature_header, verify_signature
from recoup.models import ActionInstance, LogEntry, Plan
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
)
from tests.http_recorder import Recorded, Recorder, http_recorder

SECRET = "whsec_test_123"


@pytest.fixture
def server() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


def _env(db_url: str, tmp_path: Path, server: Recorder, **kw: str | None) -> EnvConfig:
    values: dict[str, str | None] = {
        "webhook_secret": SECRET,
        "billing_webhook_url": server.url + "/billing/retry",
    }
    values.update(kw)
    return dataclasses.replace(make_env(db_url, tmp_path), **values)


def _setup(
    factory: sessionmaker[Session], action_type: str, *, url: str | None = None
) -> tuple[int, str, int]:
    with factory() as s, s.begin():
        customer = make_acme_customer(s)
        params = {"url": url} if url else {}
        action = make_action(s, "notify", action_type, **params)
        policy = make_acme_policy(s, levels=[("first", 5, ["notify"]), ("final", 20, [])])
        invoice = make_acme_invoice(s, customer, amount=Decimal("1234.50"))
        plan = make_plan(s, invoice, policy, level="first")
        instance = make_instance(s, action, plan=plan, level="first")
        return instance.id, instance.key, plan.id


def _assert_signed(request: Recorded) -> None:
    """Verify like a receiver: recompute the HMAC over `t.body` with the shared secret."""
    header = request.headers["recoup-signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        SECRET.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert int(parts["t"]) == int(NOW.timestamp())
    assert verify_signature(SECRET, header, request.body, now=int(NOW.timestamp()))
    assert not verify_signature("other", header, request.body, now=int(NOW.timestamp()))
    assert not verify_signature(SECRET, header, request.body + b" ", now=int(NOW.timestamp()))
    # Standard Webhooks beside it: the instance's key as webhook-id, the same second, the
    # installation's secret (not a whsec_ one) as the HMAC key
    msg_id = request.headers["webhook-id"]
    assert msg_id == request.headers["idempotency-key"]
    assert request.headers["webhook-timestamp"] == parts["t"]
    content = f"{msg_id}.{parts['t']}.".encode() + request.body
    digest = hmac.new(SECRET.encode(), content, hashlib.sha256).digest()
    assert request.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def _instance(factory: sessionmaker[Session], instance_id: int) -> ActionInstance:
    with factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        s.expunge(instance)
        return instance


def _log(factory: sessionmaker[Session], event: str) -> list[LogEntry]:
    with factory() as s:
        rows = list(s.scalars(select(LogEntry).where(LogEntry.event == event)))
        for row in rows:
            s.expunge(row)
        return rows


# --- signatures: pure ----------------------------------------------------------------------


def test_signature_header_round_trip_and_tolerance() -> None:
    body = b'{"a":"1.00"}'
    header = signature_header(SECRET, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body, now=1_700_000_000 + 301)  # replay
    assert not verify_signature(SECRET, "t=abc,v1=00", body, now=1_700_000_000)
    assert not verify_signature(SECRET, "garbage", body, now=1_700_000_000)


# --- webhook -------------------------------------------------------------------------------


def test_webhook_posts_the_plan_signed(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, key, plan_id = _setup(session_factory, "webhook", url=server.url + "/hook")
    stats = execute(session_factory, _env(db_url, tmp_path, server))
    assert stats.done == 1
    [request] = server.requests
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == key
    assert request.headers["recoup-event"] == "webhook"
    _assert_signed(request)
    body = request.json()
    assert body["type"] == "webhook"
    assert body["id"] == key
    assert body["level"] == "first" and body["action"] == "notify"
    assert body["balance"] == "1234.50" and body["currency"] == "EUR"
    assert body["plan"] == {
        "id": plan_id,
        "status": "active",
        "level": "first",
        "policy": "Standard",
        "customer_id": "C1",
        "invoice_id": "I1",
        "invoice_ids": ["I1"],
        "currency": "EUR",
        "balance": "1234.50",
        "days_overdue": (TODAY - date(2024, 1, 1)).days,
        "opened_on": "2024-01-06",
        "closed_on": None,
    }
    assert body["days_overdue"] == 60
    assert body["invoices"][0]["amount_due"] == "1234.50"
    # money is text in the JSON, never a float
    assert '"balance":"1234.50"' in request.body.decode()
    result = _instance(session_factory, instance_id).result
    assert result == {
        "url": server.url + "/hook",
        "status_code": 200,
        "balance": "1234.50",
        "currency": "EUR",
    }


def test_webhook_500_is_retried_and_2xx_is_not(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, key, _ = _setup(session_factory, "webhook", url=server.url + "/hook")
    env = _env(db_url, tmp_path, server)
    server.answer(500)
    assert execute(session_factory, env).retried == 1
    instance = _instance(session_factory, instance_id)
    # an outage (recoup.domain.retry): no attempt used up, a minute ± 10 % of jitter
    assert (instance.status, instance.attempts, instance.transport_failures) == ("pending", 0, 1)
    assert instance.next_attempt_at is not None
    assert abs(instance.next_attempt_at - (NOW + timedelta(minutes=1))) <= timedelta(seconds=6)
    [retry] = _log(session_factory, "action_retry")
    assert "HTTP 500" in retry.details["error"]

    server.answer(202)
    later = NOW + timedelta(minutes=2)
    assert execute(session_factory, env, now=later).done == 1
    assert execute(session_factory, env, now=later + timedelta(hours=2)).processed == 0
    assert len(server.requests) == 2
    assert {r.headers["idempotency-key"] for r in server.requests} == {key}
    assert _instance(session_factory, instance_id).status == "done"


def test_webhook_4xx_fails_at_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, _, _ = _setup(session_factory, "webhook", url=server.url + "/hook")
    server.answer(404)
    assert execute(session_factory, _env(db_url, tmp_path, server)).failed == 1
    instance = _instance(session_factory, instance_id)
    assert instance.status == "failed" and "HTTP 404" in (instance.error or "")
    assert len(server.requests) == 1


def test_webhook_without_secret_fails_clearly(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, _, _ = _setup(session_factory, "webhook", url=server.url + "/hook")
    env = _env(db_url, tmp_path, server, webhook_secret=None)
    assert execute(session_factory, env).failed == 1
    assert "RECOUP_WEBHOOK_SECRET" in (_instance(session_factory, instance_id).error or "")
    assert server.requests == []


# --- retry_payment -------------------------------------------------------------------------


def test_retry_payment_asks_for_the_remaining_balance(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, key, plan_id = _setup(session_factory, "retry_payment")
    with session_factory() as s, s.begin():
        import_payments(
            s,
            [
                {
                    "id": "P1",
                    "customer_id": "C1",
                    "invoice_id": "I1",
                    "amount": "234.50",
                    "currency": "EUR",
                    "date": "2024-02-20",
                }
            ],
        )
    with session_factory() as s:
        plan = s.get(Plan, plan_id)
        assert plan is not None and plan.balance == Decimal("1000.00")
    server.reply = {"id": "retry-7", "status": "scheduled"}
    stats = execute(session_factory, _env(db_url, tmp_path, server))
    assert stats.done == 1
    [request] = server.requests
    assert request.path == "/billing/retry"
    assert request.headers["idempotency-key"] == key
    assert request.headers["recoup-event"] == "retry_payment"
    _assert_signed(request)
    body = request.json()
    assert body["type"] == "retry_payment"
    assert body["amount"] == "1000.00"  # not the invoice total 1234.50
    assert body["balance"] == "1000.00" and body["currency"] == "EUR"
    assert body["idempotency_key"] == key
    assert body["plan"]["id"] == plan_id and body["plan"]["invoice_ids"] == ["I1"]
    assert body["invoices"][0]["amount"] == "1234.50"
    result = _instance(session_factory, instance_id).result
    assert result is not None
    assert result["amount"] == "1000.00"
    assert result["billing_id"] == "retry-7" and result["billing_status"] == "scheduled"


def test_retry_payment_never_asked_once_paid(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, _, plan_id = _setup(session_factory, "retry_payment")
    with session_factory() as s, s.begin():
        import_payments(
            s,
            [
                {
                    "id": "P1",
                    "customer_id": "C1",
                    "invoice_id": "I1",
                    "amount": "1234.50",
                    "currency": "EUR",
                    "date": "2024-02-20",
                }
            ],
        )
    execute(session_factory, _env(db_url, tmp_path, server))
    assert server.requests == []
    assert _instance(session_factory, instance_id).status == "cancelled"
    with session_factory() as s:
        plan = s.get(Plan, plan_id)
        assert plan is not None and plan.status == "recovered"


def test_retry_payment_without_billing_endpoint_fails_clearly(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    instance_id, _, _ = _setup(session_factory, "retry_payment")
    env = _env(db_url, tmp_path, server, billing_webhook_url=None)
    assert execute(session_factory, env).failed == 1
    assert "RECOUP_BILLING_WEBHOOK_URL" in (_instance(session_factory, instance_id).error or "")


def test_retry_payment_5xx_retried_with_the_same_idempotency_key(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    _, key, _ = _setup(session_factory, "retry_payment")
    env = _env(db_url, tmp_path, server)
    server.answer(502)
    assert execute(session_factory, env).retried == 1
    # a minute, ± 10 % of jitter (recoup.domain.retry)
    assert execute(session_factory, env, now=NOW + timedelta(minutes=1.2)).done == 1
    assert [r.headers["idempotency-key"] for r in server.requests] == [key, key]
    assert [r.json()["amount"] for r in server.requests] == ["1234.50", "1234.50"]


# --- the billing system's failure answer ---------------------------------------------------


def test_payment_failure_is_logged_on_the_plan(
    session_factory: sessionmaker[Session],
) -> None:
    _, key, plan_id = _setup(session_factory, "retry_payment")
    with session_factory() as s, s.begin():
        record_payment_failure(
            s, plan_id, reason="card declined", actor="billing", on=TODAY, key=key
        )
    [entry] = _log(session_factory, "payment_retry_failed")
    assert (entry.plan_id, entry.customer_id, entry.invoice_id, entry.actor) == (
        plan_id,
        "C1",
        "I1",
        "billing",
    )
    assert entry.on == TODAY
    assert entry.details["reason"] == "card declined"
    assert entry.details["balance"] == "1234.50"
    assert entry.details["idempotency_key"] == key
    with session_factory() as s:
        plan = s.get(Plan, plan_id)
        assert plan is not None and plan.status == "active"  # the plan carries on
        with pytest.raises(NotFound):
            record_payment_failure(s, plan_id + 99, reason="x")
        with pytest.raises(InvalidInput):
            record_payment_failure(s, plan_id, reason="  ")


def test_payment_failed_cli(session_factory: sessionmaker[Session], env: dict[str, str]) -> None:
    _, _, plan_id = _setup(session_factory, "retry_payment")
    runner = CliRunner()
    result = runner.invoke(
        app, ["payment-failed", str(plan_id), "--reason", "insufficient funds", "--user", "bill"]
    )
    assert result.exit_code == 0, result.output
    assert "payment retry failure logged" in result.output
    logged = runner.invoke(app, ["log", "--json"])
    entries = [e for e in json.loads(logged.stdout) if e["event"] == "payment_retry_failed"]
    assert len(entries) == 1
    assert entries[0]["plan_id"] == plan_id and entries[0]["actor"] == "bill"
    assert entries[0]["details"]["reason"] == "insufficient funds"
    missing = runner.invoke(app, ["payment-failed", "9999", "--reason", "x"])
    assert missing.exit_code == 1
