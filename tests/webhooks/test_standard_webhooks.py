"""Standard Webhooks signing (SPEC §6, issue 11): a secret per endpoint, the three headers beside
Recoup-Signature, checked the way a receiver does (tests.webhooks.receiver, written from the
specification), rotation with both signatures during the overlap, the payload's fields, sending
again, and the CLI. Deliveries go to a real HTTP server."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.domain.enums import Event
from recoup.domain.signature import signature_header
from recoup.log.service import log
from recoup.models import LogEntry, WebhookDelivery, WebhookEndpoint
from recoup.policies.service import apply_document
from recoup.webhooks import endpoints, signing
from recoup.webhooks.service import pump
from tests.factories import (
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_env,
    make_plan,
)
from tests.http_recorder import Recorded, Recorder, http_recorder
from tests.webhooks.receiver import verifies, verify

LEGACY = "legacy-installation-secret"


@pytest.fixture
def server() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


def _env(db_url: str, tmp_path: Path, legacy: str | None = LEGACY) -> EnvConfig:
    return dataclasses.replace(make_env(db_url, tmp_path), webhook_secret=legacy)


# --- signing, pure -------------------------------------------------------------------------


def test_the_specifications_example_signs_as_published() -> None:
    # the worked example of the Standard Webhooks / Svix documentation
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signed = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second and first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    # the key is the decoded bytes, not the text: a receiver library signs the same way
    assert signing.secret_key(first) == base64.b64decode(first.removeprefix("whsec_"))
    assert signing.secret_key("plain text") == b"plain text"


def test_headers_sign_with_every_secret_and_a_receiver_accepts_each() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    body = b'{"id":"evt_1"}'
    headers = signing.headers([new, old], "msg_7", 1_700_000_000, body)
    assert headers["webhook-id"] == "msg_7" and headers["webhook-timestamp"] == "1700000000"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert verifies(secret, headers, body, now=1_700_000_000 + 299)
    assert not verifies(signing.new_secret(), headers, body, now=1_700_000_000)
    assert not verifies(new, headers, body + b" ", now=1_700_000_000)  # the exact bytes
    assert not verifies(new, headers, body, now=1_700_000_000 + 301)  # too old: a replay


# --- deliveries to a real server -----------------------------------------------------------


def _setup(factory: sessionmaker[Session], url: str) -> int:
    """An endpoint from the policies file, a plan, and a plan_opened and a plan_stopped event;
    the endpoint's id."""
    document = {
        "settings": {"mode": "invoice", "invoice_types": ["commercial"], "timezone": "UTC"},
        "policies": [],
        "webhooks": [{"url": url, "events": ["plan_opened", "plan_closed", "level_reached"]}],
    }
    with factory() as s, s.begin():
        apply_document(s, document, "tester")
    with factory() as s, s.begin():
        customer = make_acme_customer(s)
        policy = make_acme_policy(s, levels=[("first", 5, []), ("final", 20, [])])
        invoice = make_acme_invoice(s, customer, amount=Decimal("250.00"))
        plan = make_plan(s, invoice, policy, level="first")
        on = date(2024, 1, 6)
        log(s, Event.plan_opened, on=on, customer_id="C1", invoice_id="I1", plan_id=plan.id)
        log(
            s,
            Event.level_reached,
            on=on,
            customer_id="C1",
            plan_id=plan.id,
            level="first",
            days_overdue=5,
        )
        endpoint = s.scalars(select(WebhookEndpoint)).one()
        return endpoint.id


def _secret(factory: sessionmaker[Session], endpoint_id: int) -> str:
    with factory() as s:
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        return endpoint.secret


def _deliveries(factory: sessionmaker[Session]) -> list[WebhookDelivery]:
    with factory() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        s.expunge_all()
        return rows


def _now(request: Recorded) -> int:
    return int(request.headers["webhook-timestamp"])


def test_a_delivery_carries_both_signatures_and_a_receiver_verifies_it(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    stats = pump(session_factory, env=_env(db_url, tmp_path))
    assert stats.delivered == 2
    secret = _secret(session_factory, endpoint_id)
    deliveries = _deliveries(session_factory)
    assert [d.endpoint_id for d in deliveries] == [endpoint_id, endpoint_id]
    for request, delivery in zip(server.requests, deliveries, strict=True):
        headers = request.headers
        assert headers["webhook-id"] == f"msg_{delivery.id}"
        assert headers["webhook-timestamp"].isdigit()
        assert headers["webhook-signature"].startswith("v1,")
        assert " " not in headers["webhook-signature"]  # one secret, one signature
        verify(secret, headers, request.body, now=_now(request))
        # Recoup-Signature exactly as before: RECOUP_WEBHOOK_SECRET over "t.body"
        t = _now(request)
        assert headers["recoup-signature"] == signature_header(LEGACY, t, request.body)
        assert headers["recoup-delivery"] == str(delivery.id)
        assert headers["idempotency-key"] == request.json()["id"]


def test_the_webhook_id_is_the_same_on_a_retry(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    t0 = utc_now()
    server.answer(500, 500)
    assert pump(session_factory, env=_env(db_url, tmp_path), now=t0).retried == 2
    later = t0 + timedelta(minutes=2)
    assert pump(session_factory, env=_env(db_url, tmp_path), now=later).delivered == 2
    first, second, third, fourth = server.requests
    assert first.headers["webhook-id"] == third.headers["webhook-id"]
    assert second.headers["webhook-id"] == fourth.headers["webhook-id"]
    assert int(third.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    secret = _secret(session_factory, endpoint_id)
    for request in server.requests:
        verify(secret, request.headers, request.body, now=_now(request))


def test_the_timestamp_is_when_the_attempt_is_sent(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    # a pump whose batch began long ago still signs with the time of sending: a receiver
    # refuses timestamps more than 5 minutes old
    _setup(session_factory, server.url + "/hook")
    started = utc_now() - timedelta(minutes=30)
    assert pump(session_factory, env=_env(db_url, tmp_path), now=started).delivered == 2
    for request in server.requests:
        sent = int(request.headers["webhook-timestamp"])
        assert sent >= int(utc_now().timestamp()) - 60
        assert request.headers["recoup-signature"].startswith(f"t={sent},")


def test_rotation_signs_with_both_secrets_during_the_overlap_then_drops_the_old(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    old = _secret(session_factory, endpoint_id)
    t0 = utc_now()
    with session_factory() as s, s.begin():
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        new = endpoints.rotate_secret(
            s, endpoint, overlap=timedelta(hours=24), actor="ops", reason="yearly", now=t0
        )
    assert new != old and new.startswith("whsec_")
    env = _env(db_url, tmp_path)
    pump(session_factory, env=env, now=t0 + timedelta(hours=1))
    request = server.requests[-1]
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(sig.startswith("v1,") for sig in signatures)
    assert signatures[0] == signing.sign(
        new, request.headers["webhook-id"], _now(request), request.body
    )  # the new one first
    for secret in (new, old):  # a receiver with either secret accepts it
        verify(secret, request.headers, request.body, now=_now(request))

    with session_factory() as s, s.begin():  # another event, after the overlap
        log(s, Event.plan_opened, customer_id="C1")
    pump(session_factory, env=env, now=t0 + timedelta(hours=25))
    request = server.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, request.headers, request.body, now=_now(request))
    assert not verifies(old, request.headers, request.body, now=_now(request))
    with session_factory() as s:  # the pump forgot it
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.previous_secret is None and endpoint.previous_secret_expires_at is None
        entry = s.scalars(
            select(LogEntry).where(LogEntry.event == "config_changed").order_by(LogEntry.id.desc())
        ).first()
        assert entry is not None and entry.actor == "ops"
        assert entry.details["fields"] == ["secret"] and entry.details["reason"] == "yearly"
        assert new not in json.dumps(entry.details) and old not in json.dumps(entry.details)


def test_rotation_without_overlap_stops_the_old_secret_at_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    old = _secret(session_factory, endpoint_id)
    with session_factory() as s, s.begin():
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        new = endpoints.rotate_secret(s, endpoint, overlap=timedelta(0), actor="ops")
    pump(session_factory, env=_env(db_url, tmp_path))
    for request in server.requests:
        assert verifies(new, request.headers, request.body, now=_now(request))
        assert not verifies(old, request.headers, request.body, now=_now(request))


def test_without_the_installation_secret_only_webhook_signature_is_sent(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    assert pump(session_factory, env=_env(db_url, tmp_path, legacy=None)).delivered == 2
    secret = _secret(session_factory, endpoint_id)
    for request in server.requests:
        assert "recoup-signature" not in request.headers
        verify(secret, request.headers, request.body, now=_now(request))


def test_event_payloads_carry_plan_level_balance_and_reason(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    _setup(session_factory, server.url + "/hook")
    with session_factory() as s, s.begin():
        plan_id = s.scalars(select(LogEntry.plan_id).where(LogEntry.plan_id.is_not(None))).first()
    with session_factory() as s, s.begin():
        from recoup.models import Plan
        from recoup.plans.service import stop_plan

        plan = s.get(Plan, plan_id)
        assert plan is not None
        stop_plan(s, plan, reason="customer left", on=date(2024, 1, 9), actor="ops")
    pump(session_factory, env=_env(db_url, tmp_path))
    bodies = {request.json()["type"]: request.json() for request in server.requests}
    assert set(bodies) == {"plan_opened", "level_reached", "plan_closed"}
    for body in bodies.values():
        # the fields sent before issue 11, unchanged
        assert {"id", "type", "created", "on", "data"} <= set(body)
        data = body["data"]
        assert {"customer_id", "invoice_id", "plan_id", "level", "action", "actor"} <= set(data)
        assert {"details", "plan"} <= set(data)
        assert data["plan"]["id"] == plan_id and data["plan_id"] == plan_id
        # and the new ones
        assert data["policy"] == data["plan"]["policy"] and data["policy"]
        assert data["currency"] == "EUR"
        assert data["balance"] == data["plan"]["balance"] == "250.00"
    assert bodies["level_reached"]["data"]["level"] == "first"
    assert bodies["level_reached"]["data"]["reason"] == "5 days overdue"
    assert bodies["plan_opened"]["data"]["reason"] == "overdue"
    closed = bodies["plan_closed"]["data"]
    assert closed["status"] == "stopped" and closed["reason"] == "customer left"


def test_redeliver_sends_the_same_message_again(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    env = _env(db_url, tmp_path)
    pump(session_factory, env=env)
    first = _deliveries(session_factory)[0]
    with session_factory() as s, s.begin():
        delivery = s.get(WebhookDelivery, first.id)
        assert delivery is not None
        endpoints.redeliver(s, delivery, actor="ops", reason="receiver lost it")
    assert pump(session_factory, env=env).delivered == 1
    original, again = server.requests[0], server.requests[-1]
    assert again.headers["webhook-id"] == original.headers["webhook-id"] == f"msg_{first.id}"
    assert again.body == original.body
    verify(_secret(session_factory, endpoint_id), again.headers, again.body, now=_now(again))
    row = _deliveries(session_factory)[0]
    assert (row.status, row.attempts) == ("delivered", 2)


def test_a_new_url_receives_what_waits_and_nothing_twice(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/old")
    env = _env(db_url, tmp_path)
    t0 = utc_now()
    server.answer(500)  # the first event waits for a retry, the second is delivered
    pump(session_factory, env=env, now=t0)
    with session_factory() as s, s.begin():
        log(s, Event.plan_opened, customer_id="C1")  # logged, not queued yet
    with session_factory() as s, s.begin():
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        endpoints.update_endpoint(
            s, endpoint, url=server.url + "/new", actor="ops", now=t0 + timedelta(seconds=1)
        )
    pump(session_factory, env=env, now=t0 + timedelta(minutes=2))
    pump(session_factory, env=env, now=t0 + timedelta(minutes=3))  # the rescan adds nothing
    assert [r.path for r in server.requests] == ["/old", "/old", "/new", "/new"]
    sent = [r.json()["id"] for r in server.requests]
    assert sent[2] == sent[0] and len(set(sent)) == 3
    rows = _deliveries(session_factory)
    assert [(d.status, d.url.rsplit("/", 1)[1]) for d in rows] == [
        ("delivered", "new"),
        ("delivered", "old"),
        ("delivered", "new"),
    ]


def test_a_removed_endpoint_gets_nothing_more(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook")
    with session_factory() as s, s.begin():
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        endpoints.delete_endpoint(s, endpoint, actor="ops", reason="gone")
    stats = pump(session_factory, env=_env(db_url, tmp_path))
    assert server.requests == [] and stats.delivered == 0


def test_a_config_apply_keeps_the_endpoints_secret(
    session_factory: sessionmaker[Session], server: Recorder
) -> None:
    def apply(events: list[str]) -> str:
        document = {
            "settings": {"mode": "invoice", "invoice_types": ["commercial"], "timezone": "UTC"},
            "policies": [],
            "webhooks": [{"url": server.url + "/hook", "events": events}],
        }
        with session_factory() as s, s.begin():
            apply_document(s, document, "tester")
        with session_factory() as s:
            return s.scalars(select(WebhookEndpoint.secret)).one()

    secret = apply(["plan_opened"])
    assert secret.startswith("whsec_")  # an endpoint of the file has one too
    assert apply(["plan_opened", "plan_closed"]) == secret


# --- the CLI -------------------------------------------------------------------------------


def test_cli_lists_endpoints_and_rotates_a_secret(
    session_factory: sessionmaker[Session], env: dict[str, str], server: Recorder
) -> None:
    endpoint_id = _setup(session_factory, server.url + "/hook?token=abc")
    old = _secret(session_factory, endpoint_id)
    runner = CliRunner()
    listed = runner.invoke(app, ["webhook", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["id"] == endpoint_id and row["url"] == server.url + "/hook?token=***"
    assert "secret" not in row and old not in listed.stdout

    rotated = runner.invoke(app, ["webhook", "rotate", str(endpoint_id), "--overlap-hours", "2"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip().splitlines()[-1]
    assert new == _secret(session_factory, endpoint_id) and new != old
    assert "also signs until" in " ".join(rotated.stdout.split())  # Rich wraps

    shown = runner.invoke(app, ["webhook", "rotate", str(endpoint_id), "--json"])
    [body] = json.loads(shown.stdout)
    assert body["secret"] == _secret(session_factory, endpoint_id)
    assert body["previous_secret_expires_at"] is not None

    missing = runner.invoke(app, ["webhook", "rotate", "999"])
    assert missing.exit_code == 1 and "no webhook endpoint 999" in missing.output
