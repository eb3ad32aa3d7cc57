"""`Idempotency-Key` on every POST (SPEC §6): the first answer is replayed for 24 hours, the
same key with another request is a 422, a second request while the first runs a 409, also
when the two arrive together (threads against a live server); a server error is not kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from recoup.api import idempotency as middleware
from recoup.apikeys import repository as apikey_repository
from recoup.apikeys.service import hash_key
from recoup.book import writes
from recoup.core.clock import utc_now
from recoup.core.sessions import transaction
from recoup.idempotency import repository as idempotency_repository
from recoup.idempotency import service
from recoup.models import IdempotencyKey
from tests.api.conftest import assert_problem, auth
from tests.live_server import LiveServer
from tests.runs.test_run_e2e import Cli

PAYMENT = {
    "id": "P1",
    "customer_id": "C1",
    "invoice_id": "I1",
    "amount": "10.00",
    "currency": "EUR",
    "date": "2026-03-03",
}


@pytest.fixture
def book(env: dict[str, str], tmp_path: Path) -> None:
    """Customer C1 with invoice I1 (100.00 EUR)."""
    Cli(tmp_path).setup()


def _payments(client: TestClient | httpx.Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    log = client.get(
        "/api/v1/log", params={"event": "payment_recorded", "limit": 100}, headers=headers
    )
    return log.json()["data"]


def _stored(db_url: str) -> int:
    with transaction(db_url) as session:
        return int(session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0)


def test_a_replay_answers_the_first_answer_and_records_one_payment(
    book: None, client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    first = client.post("/api/v1/payments", json=PAYMENT, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = client.post("/api/v1/payments", json=PAYMENT, headers=headers)
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert len(_payments(client, headers)) == 1
    assert client.get("/api/v1/invoices/I1", headers=headers).json()["amount_due"] == "90.00"
    # without the key, the same payment again is the import's "already recorded" (200)
    plain = client.post("/api/v1/payments", json=PAYMENT, headers=auth(keys["collector"]))
    assert plain.status_code == 200
    assert _stored(db_url) == 1


def test_the_same_key_with_another_request_is_422_and_runs_nothing(
    book: None, client: TestClient, keys: dict[str, str]
) -> None:
    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    assert client.post("/api/v1/payments", json=PAYMENT, headers=headers).status_code == 201
    other = {**PAYMENT, "id": "P2", "amount": "20.00"}
    body = assert_problem(client.post("/api/v1/payments", json=other, headers=headers), 422)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    elsewhere = client.post("/api/v1/payments/batch", json={"data": [PAYMENT]}, headers=headers)
    assert_problem(elsewhere, 422)
    assert [e["details"]["payment_id"] for e in _payments(client, headers)] == ["P1"]
    too_long = {**headers, "Idempotency-Key": "k" * 256}
    assert_problem(client.post("/api/v1/payments", json=other, headers=too_long), 422)
    assert len(_payments(client, headers)) == 1


def test_keys_are_per_api_key_and_a_refusal_is_replayed_too(
    book: None, client: TestClient, keys: dict[str, str]
) -> None:
    customer = {"id": "C7", "name": "Seven"}
    admin = {**auth(keys["admin"]), "Idempotency-Key": "same"}
    collector = {**auth(keys["collector"]), "Idempotency-Key": "same"}
    assert client.post("/api/v1/customers", json=customer, headers=admin).status_code == 201
    # another API key's "same" is another key: it runs, and the customer exists now
    ran = client.post("/api/v1/customers", json=customer, headers=collector)
    assert_problem(ran, 409)
    assert "idempotent-replayed" not in ran.headers
    replayed = client.post("/api/v1/customers", json=customer, headers=collector)
    assert replayed.status_code == 409 and replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == ran.content


def test_no_key_or_an_unknown_key_keeps_nothing(
    book: None, client: TestClient, db_url: str
) -> None:
    for headers in ({}, auth("rk_nobody")):
        response = client.post(
            "/api/v1/payments", json=PAYMENT, headers={**headers, "Idempotency-Key": "x"}
        )
        assert_problem(response, 401)
    assert _stored(db_url) == 0


def test_a_server_error_is_not_kept_and_the_key_runs_again(
    book: None,
    client: TestClient,
    keys: dict[str, str],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    with monkeypatch.context() as patched:  # both ways a payment is recorded
        patched.setattr(writes, "import_payments", broken)
        patched.setattr(writes, "record_row", broken)
        assert_problem(client.post("/api/v1/payments", json=PAYMENT, headers=headers), 500)
    assert _stored(db_url) == 0
    again = client.post("/api/v1/payments", json=PAYMENT, headers=headers)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert len(_payments(client, headers)) == 1


def test_a_key_expires_after_24_hours_and_is_purged(
    book: None,
    client: TestClient,
    keys: dict[str, str],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    assert client.post("/api/v1/payments", json=PAYMENT, headers=headers).status_code == 201
    later = utc_now() + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(middleware, "utc_now", lambda: later)
    # expired: the request runs again (the payment is recorded already: the import's 200)
    again = client.post("/api/v1/payments", json=PAYMENT, headers=headers)
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    other = client.post(
        "/api/v1/customers",
        json={"id": "C8", "name": "x"},
        headers={**headers, "Idempotency-Key": "other"},
    )
    assert other.status_code == 201
    assert _stored(db_url) == 2  # the expired one went; the two of "later" stay
    assert len(_payments(client, headers)) == 1


def test_an_expired_key_the_purge_has_not_reached_yet_is_not_replayed(
    book: None,
    client: TestClient,
    keys: dict[str, str],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The purge takes a batch at a time: an expired key it left is not replayed either."""
    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    assert client.post("/api/v1/payments", json=PAYMENT, headers=headers).status_code == 201
    monkeypatch.setattr(idempotency_repository, "PURGE_BATCH", 0)  # the batch reaches nothing
    later = utc_now() + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(middleware, "utc_now", lambda: later)
    again = client.post("/api/v1/payments", json=PAYMENT, headers=headers)
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    replay = client.post("/api/v1/payments", json=PAYMENT, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == again.content
    assert _stored(db_url) == 1  # the expired reservation went, the new one stays
    assert len(_payments(client, headers)) == 1


# --- concurrent requests, against a live server ---------------------------------------------------


@pytest.fixture
def live(book: None, db_url: str) -> Iterator[str]:
    with LiveServer(db_url) as server:
        yield server.url


@contextmanager
def first_payment_held(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The first payment recorded is held inside its route until `release()`. On PostgreSQL
    the route's statements are awaited on the server's event loop (recoup.core.requests), so it
    is held as a real request is: its write waits on a table lock another connection holds.
    On SQLite the route runs in the thread pool, and that thread waits on an event."""
    if db_url.startswith("postgresql"):
        dsn = db_url.replace("+psycopg", "")
        holder = psycopg.connect(dsn)
        holder.execute("LOCK TABLE payments IN SHARE MODE")
        # another connection looks: a transaction sees pg_stat_activity as it first read it
        watcher = psycopg.connect(dsn, autocommit=True)

        def entered() -> bool:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO payments%'"
                ).fetchone()
                if waiting and waiting[0]:
                    return True
                time.sleep(0.02)
            return False

        try:
            yield entered, holder.rollback
        finally:
            holder.close()
            watcher.close()
        return
    reached, release = threading.Event(), threading.Event()

    def held(real: Any) -> Any:
        def wait_then_run(*args: Any, **kwargs: Any) -> Any:
            if not reached.is_set():  # the first request waits here, inside its route
                reached.set()
                assert release.wait(20)
            return real(*args, **kwargs)

        return wait_then_run

    for way in ("import_payments", "record_row"):  # both ways a payment is recorded
        monkeypatch.setattr(writes, way, held(getattr(writes, way)))
    yield (lambda: reached.wait(10)), release.set


def test_a_second_request_while_the_first_runs_is_409_and_one_payment_is_recorded(
    live: str, keys: dict[str, str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    answers: list[httpx.Response] = []
    with (
        first_payment_held(db_url, monkeypatch) as (entered, release),
        httpx.Client(base_url=live, timeout=30) as http,
    ):
        first = threading.Thread(
            target=lambda: answers.append(
                http.post("/api/v1/payments", json=PAYMENT, headers=headers)
            )
        )
        first.start()
        assert entered(), "the first request never reached its route"
        second = http.post("/api/v1/payments", json=PAYMENT, headers=headers)
        body = assert_problem(second, 409)
        assert body["errors"][0]["field"] == "Idempotency-Key"
        release()
        first.join(20)
        (answer,) = answers
        assert answer.status_code == 201, answer.text
        third = http.post("/api/v1/payments", json=PAYMENT, headers=headers)
        assert third.status_code == 201 and third.headers["idempotent-replayed"] == "true"
        assert third.content == answer.content
        assert len(_payments(http, headers)) == 1


def test_many_requests_at_once_with_one_key_record_one_payment(
    live: str, keys: dict[str, str]
) -> None:
    headers = {**auth(keys["collector"]), "Idempotency-Key": "pay-1"}
    payment = {**PAYMENT, "invoice_id": None}  # spread: oldest due first
    start = threading.Barrier(8)
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=live, timeout=60) as http:
            start.wait()
            answers.append(http.post("/api/v1/payments", json=payment, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ran = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    others = [a for a in answers if a not in ran]
    assert len(answers) == 8 and len(ran) == 1, [(a.status_code, a.text) for a in answers]
    for answer in others:
        assert answer.status_code == 409 or (
            answer.status_code == 201 and answer.content == ran[0].content
        ), answer.text
    with httpx.Client(base_url=live) as http:
        assert len(_payments(http, headers)) == 1


def test_a_reservation_whose_request_never_answered_is_taken_over_after_a_while(
    book: None,
    client: TestClient,
    keys: dict[str, str],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that stopped mid-request leaves its reservation in flight: 409 at first, then,
    after IN_FLIGHT_TIMEOUT, the key runs the request."""
    content = json.dumps(PAYMENT).encode()
    with transaction(db_url) as session:
        api_key = apikey_repository.credentials_by_hash(session, hash_key(keys["collector"]))
        assert api_key is not None
        service.reserve(
            session,
            api_key_id=api_key.id,
            key="pay-1",
            fingerprint=service.fingerprint("POST", "/api/v1/payments", b"", content),
            now=utc_now(),
        )
    headers = {
        **auth(keys["collector"]),
        "Idempotency-Key": "pay-1",
        "Content-Type": "application/json",
    }
    stuck = client.post("/api/v1/payments", content=content, headers=headers)
    assert_problem(stuck, 409)
    assert _payments(client, headers) == []
    later = utc_now() + service.IN_FLIGHT_TIMEOUT + timedelta(seconds=1)
    monkeypatch.setattr(middleware, "utc_now", lambda: later)
    ran = client.post("/api/v1/payments", content=content, headers=headers)
    assert ran.status_code == 201, ran.text
    replay = client.post("/api/v1/payments", content=content, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == ran.content
    assert len(_payments(client, headers)) == 1 and _stored(db_url) == 1


def test_a_server_purges_expired_keys_once_a_minute_and_at_once_while_a_backlog_lasts() -> None:
    purges = service.PurgeSchedule()
    start = utc_now()
    assert purges.claim(start)  # the first reservation purges
    purges.done(0)
    assert not purges.claim(start + timedelta(seconds=30))
    assert purges.claim(start + service.PURGE_EVERY)
    purges.done(idempotency_repository.PURGE_BATCH)  # a full batch: more may wait
    later = start + service.PURGE_EVERY + timedelta(seconds=1)
    assert purges.claim(later) and purges.claim(later)
    purges.done(3)
    assert not purges.claim(later + timedelta(seconds=1))
