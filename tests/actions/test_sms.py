"""send_sms (SPEC §3): segments counted in GSM-7 or UCS-2, the message POSTed as JSON with a
bearer token to a real HTTP server, retries on 5xx, failure at once on 4xx."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.env import EnvConfig
from recoup.domain.sms import SmsEncoding, count_segments, is_gsm7
from recoup.models import ActionInstance, LogEntry
from tests.factories import (
    NOW,
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
from tests.http_recorder import Recorder, http_recorder

GSM, UCS = SmsEncoding.gsm7, SmsEncoding.ucs2


# --- segments: pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", GSM, 0, 1),
        ("Hello", GSM, 5, 1),
        ("a" * 160, GSM, 160, 1),
        ("a" * 161, GSM, 161, 2),
        ("a" * 306, GSM, 306, 2),
        ("a" * 307, GSM, 307, 3),
        ("Pay 15€ now", GSM, 12, 1),  # € is in the extension table: 2 septets
        ("€" * 80, GSM, 160, 1),
        ("€" * 81, GSM, 162, 2),
        ("[x]{y}|~^\\", GSM, 18, 1),  # 8 extension characters, 2 plain
        ("a" * 159 + "{", GSM, 161, 2),
        # 306 septets but the escape pair cannot straddle parts 1 and 2: three parts
        ("a" * 152 + "€" + "a" * 152, GSM, 306, 3),
        ("Réglez à l'échéance: 100,00 €", GSM, 30, 1),  # é, à are GSM-7; ' is too
        ("Ça coûte", UCS, 8, 1),  # û is not GSM-7
        ("français", UCS, 8, 1),  # ç (lower case) is not GSM-7, Ç is
        ("ç" + "a" * 69, UCS, 70, 1),
        ("ç" + "a" * 70, UCS, 71, 2),
        ("ç" + "a" * 133, UCS, 134, 2),
        ("ç" + "a" * 134, UCS, 135, 3),
        ("Привет", UCS, 6, 1),
        ("Pay now 😀", UCS, 10, 1),  # an emoji is a surrogate pair: 2 units
        ("😀" * 35, UCS, 70, 1),
        ("😀" * 36, UCS, 72, 2),
        ("a" * 66 + "😀" + "a" * 67, UCS, 135, 3),  # the pair is not split: 66 | 2+65 | 2
    ],
)
def test_count_segments(text: str, encoding: SmsEncoding, units: int, segments: int) -> None:
    result = count_segments(text)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


@pytest.mark.parametrize(
    ("segments", "encoding", "per_segment"),
    [(1, GSM, 160), (2, GSM, 153), (1, UCS, 70), (3, UCS, 67)],
)
def test_per_segment(segments: int, encoding: SmsEncoding, per_segment: int) -> None:
    text = {GSM: "a", UCS: "ç"}[encoding] * {1: 10, 2: 200, 3: 150}[segments]
    result = count_segments(text)
    assert (result.segments, result.per_segment) == (segments, per_segment)


def test_is_gsm7() -> None:
    assert is_gsm7("@£$¥ ÄÖÑÜ§¿äöñüà\n")
    assert not is_gsm7("ç")


# --- the executor against a real HTTP provider ---------------------------------------------


@pytest.fixture
def provider() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        recorder.reply = {"id": "sms-42", "status": "queued"}
        yield recorder


def _env(db_url: str, tmp_path: Path, provider: Recorder | None) -> EnvConfig:
    env = make_env(db_url, tmp_path)
    if provider is None:
        return env
    return dataclasses.replace(env, sms_url=provider.url + "/sms", sms_token="tok-123")


def _setup(
    factory: sessionmaker[Session],
    *,
    phone: str | None = "+33600000001",
    language: str = "en",
) -> tuple[int, str]:
    with factory() as s, s.begin():
        customer = make_acme_customer(s, phone=phone, language=language)
        make_template(
            s,
            "sms_notice",
            channel="sms",
            subject=None,
            body="{{ customer.name }}: invoice {{ invoice.number }}, {{ balance|money }} due.\n",
        )
        make_template(
            s,
            "sms_notice",
            channel="sms",
            language="fr",
            subject=None,
            body="{{ customer.name }} : la facture {{ invoice.number }} reste dûe.\n",
            position=1,
        )
        action = make_action(s, "sms", "send_sms", template="sms_notice")
        policy = make_acme_policy(s, levels=[("first", 5, ["sms"]), ("final", 20, [])])
        invoice = make_acme_invoice(s, customer)
        plan = make_plan(s, invoice, policy, level="first")
        instance = make_instance(s, action, plan=plan, level="first")
        return instance.id, instance.key


def _instance(factory: sessionmaker[Session], instance_id: int) -> ActionInstance:
    with factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        s.expunge(instance)
        return instance


def _events(factory: sessionmaker[Session], event: str) -> list[LogEntry]:
    with factory() as s:
        rows = list(s.scalars(select(LogEntry).where(LogEntry.event == event)))
        for row in rows:
            s.expunge(row)
        return rows


def test_sms_sent_with_bearer_token_reference_and_segments(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, provider: Recorder
) -> None:
    instance_id, key = _setup(session_factory)
    stats = execute(session_factory, _env(db_url, tmp_path, provider))
    assert stats.done == 1
    [request] = provider.requests
    assert request.path == "/sms"
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == key
    body = request.json()
    assert set(body) == {"to", "text", "reference"}
    assert body["to"] == "+33600000001"
    assert body["reference"] == key
    assert body["text"] == "Acme SARL: invoice INV-I1, €1,234.50 due."
    result = _instance(session_factory, instance_id).result
    assert result is not None
    assert result["segments"] == 1
    assert result["encoding"] == "GSM-7"
    assert result["characters"] == len(body["text"]) + 1  # € counts 2
    assert result["provider_message_id"] == "sms-42"
    assert result["provider_status"] == "queued"
    [done] = _events(session_factory, "action_done")
    assert done.details["segments"] == 1 and done.details["encoding"] == "GSM-7"


def test_sms_in_the_customer_language_counts_ucs2(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, provider: Recorder
) -> None:
    instance_id, _ = _setup(session_factory, language="fr")
    execute(session_factory, _env(db_url, tmp_path, provider))
    text = provider.requests[0].json()["text"]
    assert text == "Acme SARL : la facture INV-I1 reste dûe."
    result = _instance(session_factory, instance_id).result
    assert result is not None
    assert (result["encoding"], result["segments"], result["characters"]) == (
        "UCS-2",
        1,
        len(text),
    )


def test_language_without_template_falls_back_to_the_first(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, provider: Recorder
) -> None:
    _setup(session_factory, language="de")
    execute(session_factory, _env(db_url, tmp_path, provider))
    assert provider.requests[0].json()["text"].startswith("Acme SARL: invoice")


def test_no_phone_is_a_logged_skip(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, provider: Recorder
) -> None:
    instance_id, _ = _setup(session_factory, phone=None)
    stats = execute(session_factory, _env(db_url, tmp_path, provider))
    assert stats.skipped == 1
    assert _instance(session_factory, instance_id).status == "skipped"
    [skipped] = _events(session_factory, "action_skipped")
    assert skipped.details["reason"] == "customer has no phone"
    assert provider.requests == []


def test_no_provider_configured_fails_at_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id, _ = _setup(session_factory)
    stats = execute(session_factory, _env(db_url, tmp_path, None))
    assert stats.failed == 1
    instance = _instance(session_factory, instance_id)
    assert instance.status == "failed" and instance.attempts == 1
    assert "RECOUP_SMS_URL" in (instance.error or "")
    [failed] = _events(session_factory, "action_failed")
    assert "RECOUP_SMS_URL" in failed.details["error"]


def test_server_error_is_retried_then_sent(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, provider: Recorder
) -> None:
    instance_id, key = _setup(session_factory)
    env = _env(db_url, tmp_path, provider)
    provider.answer(503)
    stats = execute(session_factory, env)
    assert stats.retried == 1
    instance = _instance(session_factory, instance_id)
    # an outage (recoup.domain.retry): no attempt used up, a minute ± 10 % of jitter
    assert (instance.status, instance.attempts, instance.transport_failures) == ("pending", 0, 1)
    assert instance.next_attempt_at is not None
    assert abs(instance.next_attempt_at - (NOW + timedelta(minutes=1))) <= timedelta(seconds=6)
    assert "503" in (instance.error or "")
    [retry] = _events(session_factory, "action_retry")
    assert "503" in retry.details["error"]

    stats = execute(session_factory, env, now=NOW + timedelta(minutes=2))
    assert stats.done == 1
    assert _instance(session_factory, instance_id).status == "done"
    assert [r.json()["reference"] for r in provider.requests] == [key, key]


def test_client_error_fails_at_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, provider: Recorder
) -> None:
    instance_id, _ = _setup(session_factory)
    provider.answer(400)
    stats = execute(session_factory, _env(db_url, tmp_path, provider))
    assert stats.failed == 1
    instance = _instance(session_factory, instance_id)
    assert instance.status == "failed"
    assert "HTTP 400" in (instance.error or "")
    assert len(provider.requests) == 1


def test_timeout_is_retried(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id, _ = _setup(session_factory)
    # a port nobody listens on: connection refused, a transient error
    with http_recorder() as gone:
        url = gone.url
    env = dataclasses.replace(make_env(db_url, tmp_path), sms_url=url)
    stats = execute(session_factory, env)
    assert stats.retried == 1
    assert _instance(session_factory, instance_id).status == "pending"
