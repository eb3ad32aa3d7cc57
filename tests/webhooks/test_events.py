"""Webhooks out (SPEC §5): endpoints in the policies file, events derived from the log, signed
deliveries to a real HTTP server, retried with backoff, delivered once per endpoint."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.book.customers import import_customers
from recoup.book.invoices import import_invoices
from recoup.book.payments import import_payments
from recoup.cli.main import app
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.domain.enums import Event
from recoup.domain.signature import verify_signature
from recoup.log.service import log
from recoup.models import LogEntry, WebhookDelivery, WebhookEndpoint
from recoup.policies.service import apply_document, check_config, export_config
from recoup.runs.service import run_dunning
from recoup.webhooks import service as events
from recoup.webhooks.service import deliver_pending, enqueue_events, pump
from tests.factories import (
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_env,
    make_plan,
)
from tests.http_recorder import Recorder, http_recorder

SECRET = "whsec_events"
ALL_EVENTS = [
    "plan_opened",
    "plan_closed",
    "level_reached",
    "charge_created",
    "charge_waived",
    "status_changed",
    "task_created",
]


@pytest.fixture
def server() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


@pytest.fixture
def other() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


def _env(db_url: str, tmp_path: Path, secret: str | None = SECRET) -> EnvConfig:
    return dataclasses.replace(make_env(db_url, tmp_path), webhook_secret=secret)


def _document(webhooks: list[dict[str, Any]], *, policies: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "settings": {"mode": "invoice", "invoice_types": ["commercial"], "timezone": "UTC"},
        "actions": [
            {
                "code": "fee",
                "type": "late_fee_fixed",
                "amounts": {"EUR": "15.00"},
                "service": "LATE",
            }
        ],
        "policies": [
            {
                "name": "Standard",
                "default": True,
                "priority": 10,
                "levels": [
                    {"code": "first", "days": 5, "actions": ["fee"]},
                    {"code": "final", "days": 20, "end": True, "actions": []},
                ],
            }
        ]
        if policies
        else [],
        "webhooks": webhooks,
    }
    return doc


def _apply(factory: sessionmaker[Session], doc: dict[str, Any]) -> Any:
    with factory() as s, s.begin():
        return apply_document(s, doc, "tester")


def _deliveries(factory: sessionmaker[Session]) -> list[WebhookDelivery]:
    with factory() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        for row in rows:
            s.expunge(row)
        return rows


def _verify(server: Recorder) -> list[dict[str, Any]]:
    bodies = []
    for request in server.requests:
        header = request.headers["recoup-signature"]
        t = int(header.split(",")[0].removeprefix("t="))
        assert verify_signature(SECRET, header, request.body, now=t)
        body = request.json()
        assert request.headers["recoup-event"] == body["type"]
        assert request.headers["idempotency-key"] == body["id"]
        bodies.append(body)
    return bodies


# --- configuration -------------------------------------------------------------------------


def test_webhooks_section_applies_exports_and_round_trips(
    session_factory: sessionmaker[Session],
) -> None:
    doc = _document(
        [
            {"url": "https://crm.example/hooks", "events": ["plan_opened", "plan_closed"]},
            {"url": "https://erp.example/recoup", "active": False},
        ]
    )
    report = _apply(session_factory, doc)
    assert "webhook https://crm.example/hooks" in report.created
    with session_factory() as s:
        exported = export_config(s)
    assert exported["webhooks"] == [
        {
            "url": "https://crm.example/hooks",
            "events": ["plan_opened", "plan_closed"],
            "active": True,
        },
        {"url": "https://erp.example/recoup", "events": ALL_EVENTS, "active": False},
    ]
    assert not _apply(session_factory, exported).any  # export → apply changes nothing
    exported["webhooks"][0]["events"] = ["plan_closed"]
    assert _apply(session_factory, exported).changed == ["webhook https://crm.example/hooks"]
    del exported["webhooks"][1]
    assert _apply(session_factory, exported).removed == ["webhook https://erp.example/recoup"]
    del exported["webhooks"]
    _apply(session_factory, exported)
    with session_factory() as s:
        assert "webhooks" not in export_config(s)


@pytest.mark.parametrize(
    ("webhook", "path", "message"),
    [
        ({"url": "ftp://x.example"}, "webhooks[0].url", "http(s)"),
        (
            {"url": "https://x.example", "events": ["plan_paid"]},
            "webhooks[0].events[0]",
            "unknown event",
        ),
        ({"url": "https://x.example", "events": []}, "webhooks[0].events", "at least one"),
        ({"events": ["plan_opened"]}, "webhooks[0].url", "required"),
        ({"url": "https://x.example", "secret": "s"}, "webhooks[0].secret", "unknown field"),
        ({"url": "https://x.example", "active": "yes"}, "webhooks[0].active", "true or false"),
    ],
)
def test_webhooks_validation(webhook: dict[str, Any], path: str, message: str) -> None:
    _, issues = check_config(_document([webhook]))
    assert any(i.path == path and message in i.message for i in issues), issues


def test_duplicate_endpoint_refused() -> None:
    _, issues = check_config(
        _document([{"url": "https://x.example"}, {"url": "https://x.example"}])
    )
    assert [(i.path, "twice" in i.message) for i in issues] == [("webhooks[1].url", True)]


# --- end to end: the run's events reach the endpoints once --------------------------------


def test_run_events_delivered_once_per_endpoint(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    server: Recorder,
    other: Recorder,
) -> None:
    _apply(
        session_factory,
        _document(
            [
                {
                    "url": server.url + "/all",
                    "events": ["plan_opened", "plan_closed", "level_reached", "charge_created"],
                },
                {"url": other.url + "/closed", "events": ["plan_closed"]},
            ]
        ),
    )
    due = date(2026, 3, 2)
    with session_factory() as s, s.begin():
        import_customers(
            s, [{"id": "C1", "name": "Acme", "email": "a@acme.test", "currency": "EUR"}]
        )
        import_invoices(
            s,
            [
                {
                    "id": "I1",
                    "customer_id": "C1",
                    "number": "N-1",
                    "type": "commercial",
                    "issue_date": "2026-02-01",
                    "due_date": due.isoformat(),
                    "currency": "EUR",
                    "amount": "100.00",
                    "amount_due": "100.00",
                    "status": "open",
                    "disputed": "false",
                }
            ],
        )
    env = _env(db_url, tmp_path)
    run_dunning(session_factory, as_of=due + timedelta(days=6), env=env)
    pump(session_factory, env=env)
    pump(session_factory, env=env)  # nothing new: nothing sent twice
    bodies = _verify(server)
    assert sorted(b["type"] for b in bodies) == ["charge_created", "level_reached", "plan_opened"]
    assert other.requests == []
    opened = next(b for b in bodies if b["type"] == "plan_opened")
    plan = opened["data"]["plan"]
    assert plan["customer_id"] == "C1" and plan["invoice_ids"] == ["I1"]
    assert plan["currency"] == "EUR"
    assert isinstance(plan["balance"], str)
    charge = next(b for b in bodies if b["type"] == "charge_created")
    assert charge["data"]["details"]["amount"] == "15.00"
    assert charge["data"]["level"] == "first"

    with session_factory() as s, s.begin():
        import_payments(
            s,
            [
                {
                    "id": "P1",
                    "customer_id": "C1",
                    "invoice_id": "I1",
                    "amount": "115.00",
                    "currency": "EUR",
                    "date": "2026-03-09",
                }
            ],
        )
    stats = pump(session_factory, env=env)
    assert (stats.enqueued, stats.delivered) == (2, 2)
    assert pump(session_factory, env=env).enqueued == 0
    [closed_all] = [b for b in _verify(server) if b["type"] == "plan_closed"]
    [closed_other] = _verify(other)
    assert closed_all == closed_other  # the same event, the same id, for both endpoints
    assert closed_all["data"]["status"] == "recovered"
    assert closed_all["data"]["plan"]["status"] == "recovered"
    assert closed_all["id"].startswith("evt_")
    assert len(server.requests) == 4 and len(other.requests) == 1
    assert {d.status for d in _deliveries(session_factory)} == {"delivered"}


# --- retries -------------------------------------------------------------------------------


def _plan_with_endpoint(factory: sessionmaker[Session], url: str) -> int:
    _apply(
        factory, _document([{"url": url, "events": ["plan_opened", "plan_closed"]}], policies=False)
    )
    with factory() as s, s.begin():
        customer = make_acme_customer(s)
        policy = make_acme_policy(s, levels=[("first", 5, []), ("final", 20, [])])
        invoice = make_acme_invoice(s, customer, amount=Decimal("250.00"))
        plan = make_plan(s, invoice, policy, level="first")
        log(
            s,
            Event.plan_opened,
            on=date(2024, 1, 6),
            customer_id="C1",
            invoice_id="I1",
            plan_id=plan.id,
            balance=plan.balance,
        )
        log(s, Event.action_done, customer_id="C1", plan_id=plan.id)  # not an outgoing event
        return plan.id


def test_server_error_retried_with_backoff_then_delivered(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    plan_id = _plan_with_endpoint(session_factory, server.url + "/hook")
    env = _env(db_url, tmp_path)
    t0 = utc_now()
    server.answer(500)
    stats = pump(session_factory, env=env, now=t0)
    assert (stats.enqueued, stats.delivered, stats.retried) == (1, 0, 1)
    [delivery] = _deliveries(session_factory)
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert delivery.last_status_code == 500
    assert delivery.next_attempt_at == t0 + timedelta(minutes=1)
    assert "HTTP 500" in (delivery.last_error or "")
    with session_factory() as s:
        [failure] = s.scalars(select(LogEntry).where(LogEntry.event == "webhook_failed")).all()
        assert failure.plan_id == plan_id
        assert failure.details["status_code"] == 500
        assert "HTTP 500" in failure.details["error"]
        assert failure.details["attempt"] == 1

    assert pump(session_factory, env=env, now=t0 + timedelta(seconds=30)).delivered == 0
    assert len(server.requests) == 1  # not due yet
    stats = pump(session_factory, env=env, now=t0 + timedelta(minutes=2))
    assert stats.delivered == 1
    [delivery] = _deliveries(session_factory)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.delivered_at == t0 + timedelta(minutes=2)
    assert pump(session_factory, env=env, now=t0 + timedelta(hours=3)).delivered == 0
    bodies = _verify(server)
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the same event, retried
    assert bodies[0]["data"]["plan"]["balance"] == "250.00"


def test_backoff_doubles_and_gives_up_after_max_attempts(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    assert [events.backoff(n).total_seconds() / 60 for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    _plan_with_endpoint(session_factory, server.url + "/hook")
    server.default_status = 503
    env = _env(db_url, tmp_path)
    now = utc_now()
    for _ in range(events.MAX_ATTEMPTS):
        pump(session_factory, env=env, now=now)
        now += timedelta(hours=2)
    [delivery] = _deliveries(session_factory)
    assert (delivery.status, delivery.attempts) == ("failed", events.MAX_ATTEMPTS)
    assert delivery.next_attempt_at is None
    pump(session_factory, env=env, now=now)
    assert len(server.requests) == events.MAX_ATTEMPTS
    with session_factory() as s:
        failures = s.scalars(select(LogEntry).where(LogEntry.event == "webhook_failed")).all()
        assert len(failures) == events.MAX_ATTEMPTS
        assert failures[-1].details["final"] is True


def test_unreachable_endpoint_is_retried(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with http_recorder() as gone:
        url = gone.url
    _plan_with_endpoint(session_factory, url + "/hook")
    stats = pump(session_factory, env=_env(db_url, tmp_path))
    assert stats.retried == 1
    [delivery] = _deliveries(session_factory)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error


def test_without_installation_secret_only_the_endpoint_secret_signs(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    # issue 11: every endpoint has a secret of its own, so RECOUP_WEBHOOK_SECRET is only
    # needed for the Recoup-Signature of receivers set up before
    _plan_with_endpoint(session_factory, server.url + "/hook")
    stats = pump(session_factory, env=_env(db_url, tmp_path, secret=None))
    assert stats.enqueued == 1 and stats.delivered == 1 and stats.note is None
    [request] = server.requests
    assert "recoup-signature" not in request.headers
    assert request.headers["webhook-signature"].startswith("v1,")


# --- what is enqueued ----------------------------------------------------------------------


def test_new_endpoint_gets_events_from_now_on_only(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    _plan_with_endpoint(session_factory, server.url + "/first")
    with session_factory() as s, s.begin():
        # a second endpoint added later (as `config apply` does)
        top = max(s.scalars(select(LogEntry.id)).all())
        s.add(
            WebhookEndpoint(
                url=server.url + "/second",
                events=["plan_opened"],
                start_log_id=top,
                cursor_log_id=top,
            )
        )
    with session_factory() as s, s.begin():
        log(s, Event.plan_opened, customer_id="C1", plan_id=None)
    pump(session_factory, env=_env(db_url, tmp_path))
    paths = sorted(r.path for r in server.requests)
    assert paths == ["/first", "/first", "/second"]


def test_enqueue_is_idempotent_and_rescans_late_commits(
    session_factory: sessionmaker[Session],
) -> None:
    _plan_with_endpoint(session_factory, "http://127.0.0.1:9/hook")
    with session_factory() as s, s.begin():
        assert enqueue_events(s) == 1
        assert enqueue_events(s) == 0
        assert enqueue_events(s, since_log_id=0) == 0  # the unique key: once per endpoint
        endpoint = s.scalars(select(WebhookEndpoint)).one()
        endpoint.cursor_log_id += 100  # as if later ids had been seen before this one committed
    with session_factory() as s, s.begin():
        log(s, Event.plan_opened, customer_id="C1")
    with session_factory() as s, s.begin():
        assert enqueue_events(s) == 1  # found again by the rescan window
    assert len(_deliveries(session_factory)) == 2


def test_inactive_or_removed_endpoint_stops_its_deliveries(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    _plan_with_endpoint(session_factory, server.url + "/hook")
    with session_factory() as s, s.begin():
        enqueue_events(s)
        s.scalars(select(WebhookEndpoint)).one().active = False
    stats = deliver_pending(session_factory, env=_env(db_url, tmp_path))
    assert stats.failed == 1
    [delivery] = _deliveries(session_factory)
    assert delivery.status == "failed" and "no longer configured" in (delivery.last_error or "")
    assert server.requests == []


# --- CLI -----------------------------------------------------------------------------------


def test_cli_deliver_and_list(
    session_factory: sessionmaker[Session],
    env: dict[str, str],
    server: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _plan_with_endpoint(session_factory, server.url + "/hook")
    monkeypatch.setenv("RECOUP_WEBHOOK_SECRET", SECRET)
    runner = CliRunner()
    result = runner.invoke(app, ["events", "deliver", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["delivered"] == 1
    listed = json.loads(runner.invoke(app, ["deliveries", "--json"]).stdout)
    assert len(listed) == 1
    row = listed[0]
    assert (row["event"], row["status"], row["attempts"], row["url"]) == (
        "plan_opened",
        "delivered",
        1,
        server.url + "/hook",
    )
    assert row["event_id"].startswith("evt_")
    datetime.fromisoformat(row["delivered_at"])
    assert (
        json.loads(runner.invoke(app, ["deliveries", "--status", "failed", "--json"]).stdout) == []
    )
    table = runner.invoke(app, ["deliveries"])
    assert table.exit_code == 0 and "Deliveries" in table.stdout
    bad = runner.invoke(app, ["deliveries", "--status", "lost"])
    assert bad.exit_code == 1
