"""/api/v1/webhooks over HTTP: endpoints (create with a secret shown once, list in cursor
pages, change, remove), rotation, the delivery log and sending again; deliveries go to a real
HTTP server and are checked as a receiver does. Refused requests change nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.clock import utc_now
from recoup.domain.enums import Event, WebhookEvent
from recoup.log.service import log
from recoup.models import LogEntry, WebhookEndpoint
from recoup.webhooks.service import pump
from tests.api.conftest import assert_problem, auth
from tests.factories import make_env
from tests.http_recorder import Recorder, http_recorder
from tests.webhooks.receiver import verifies, verify

URL = "/api/v1/webhooks"


@pytest.fixture
def server() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


def _create(client: TestClient, url: str, **fields: Any) -> dict[str, Any]:
    response = client.post(URL, json={"url": url, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return len(s.scalars(select(WebhookEndpoint)).all())


def _event(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        log(s, Event.plan_opened, customer_id="C1")


def _pump(factory: sessionmaker[Session], db_url: str, tmp_path: Path, now: datetime) -> None:
    env = dataclasses.replace(make_env(db_url, tmp_path), webhook_secret=None)
    pump(factory, env=env, now=now)


def test_create_shows_the_secret_once_and_lists_in_pages(admin: TestClient) -> None:
    created = _create(
        admin, "https://a.example/hook", events=["plan_opened"], description="billing"
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["plan_opened"] and created["description"] == "billing"
    assert created["active"] is True and created["previous_secret_expires_at"] is None
    every = _create(admin, "https://b.example/hook")
    assert every["events"] == [e.value for e in WebhookEvent]  # default: every event
    third = _create(admin, "http://c.example:8080/hook?token=abc")
    assert third["url"] == "http://c.example:8080/hook?token=***"  # shown without its token

    one = admin.get(f"{URL}/{created['id']}")
    assert one.status_code == 200 and "secret" not in one.json()
    assert created["secret"] not in one.text
    first = admin.get(URL, params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [e["id"] for e in first["data"]] == [created["id"], every["id"]]
    assert all("secret" not in e for e in first["data"])
    rest = admin.get(URL, params={"limit": 2, "starting_after": every["id"]}).json()
    assert [e["id"] for e in rest["data"]] == [third["id"]] and rest["has_more"] is False
    body = assert_problem(admin.get(URL, params={"starting_after": 999}), 422)
    assert body["errors"][0]["field"] == "starting_after"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://a.example/hook"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://a.example:0/hook"}, "url"),
        ({"url": ""}, "url"),
        ({}, "url"),
        ({"url": "https://a.example/hook", "events": ["plan_exploded"]}, "events[0]"),
        ({"url": "https://a.example/hook", "secret": "whsec_mine"}, "secret"),
        ({"url": "https://a.exa mple/hook"}, "url"),
        ({"url": "https://a.example/\x00"}, "url"),
        ({"url": "https://a.example/hook", "description": "bad\x00"}, "description"),
        ({"url": "https://a.example/" + "x" * 1000}, "url"),
    ],
)
def test_a_bad_endpoint_is_422_naming_the_field_and_creates_nothing(
    admin: TestClient, session_factory: sessionmaker[Session], body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(admin.post(URL, json=body), 422)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert _count(session_factory) == 0


def test_rights_a_viewer_reads_only_the_admin_writes(
    client: TestClient, keys: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    viewer, collector, admin = (auth(keys[r]) for r in ("viewer", "collector", "admin"))
    for headers in (viewer, collector):
        refused = client.post(URL, json={"url": "https://a.example/hook"}, headers=headers)
        assert_problem(refused, 403)
    assert _count(session_factory) == 0
    created = client.post(URL, json={"url": "https://a.example/hook"}, headers=admin).json()
    assert client.get(URL, headers=viewer).status_code == 200
    assert client.get(f"{URL}/{created['id']}/deliveries", headers=viewer).status_code == 200
    for method, path in [
        ("PATCH", f"{URL}/{created['id']}"),
        ("DELETE", f"{URL}/{created['id']}"),
        ("POST", f"{URL}/{created['id']}/rotate"),
        ("POST", f"{URL}/deliveries/1/redeliver"),
    ]:
        answer = client.request(method, path, json={}, headers=collector)
        assert_problem(answer, 403)
    assert client.get(f"{URL}/{created['id']}", headers=viewer).json()["url"] == (
        "https://a.example/hook"
    )


def test_a_duplicate_url_is_409(admin: TestClient, session_factory: sessionmaker[Session]) -> None:
    _create(admin, "https://a.example/hook")
    body = assert_problem(admin.post(URL, json={"url": "https://a.example/hook"}), 409)
    assert body["errors"][0]["field"] == "url"
    assert _count(session_factory) == 1


def test_patch_and_delete_are_logged_with_the_key_and_reason(
    admin: TestClient, session_factory: sessionmaker[Session]
) -> None:
    created = _create(admin, "https://a.example/hook")
    other = _create(admin, "https://b.example/hook")
    path = f"{URL}/{created['id']}"
    changed = admin.patch(
        path,
        json={"url": "https://new.example/hook", "active": False},
        headers={"Recoup-Reason": "moved"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://new.example/hook"
    assert changed.json()["active"] is False

    for body, field, status in [
        ({"url": "gopher://x.example/"}, "url", 422),
        ({"active": "sometimes"}, "active", 422),
        ({"url": "https://b.example/hook"}, "url", 409),  # the other endpoint's
    ]:
        problem = assert_problem(admin.patch(path, json=body), status)
        assert problem["errors"][0]["field"] == field
    after = admin.get(path).json()
    assert (after["url"], after["active"]) == ("https://new.example/hook", False)

    assert admin.delete(path, headers={"Recoup-Reason": "gone"}).status_code == 204
    assert_problem(admin.get(path), 404)
    assert_problem(admin.delete(path), 404)
    assert [e["id"] for e in admin.get(URL).json()["data"]] == [other["id"]]
    with session_factory() as s:
        entries = s.scalars(
            select(LogEntry).where(LogEntry.event == "config_changed").order_by(LogEntry.id)
        ).all()
    assert [e.actor for e in entries] == ["admin"] * 4
    created_log, _, changed_log, removed_log = entries
    assert created_log.details["created"] == ["webhook https://a.example/hook"]
    assert changed_log.details["fields"] == ["url", "active"]
    assert changed_log.details["reason"] == "moved"
    assert removed_log.details["removed"] == ["webhook https://new.example/hook"]
    assert removed_log.details["reason"] == "gone"


def test_rotate_gives_a_new_secret_and_an_overlap_per_request(
    admin: TestClient, session_factory: sessionmaker[Session]
) -> None:
    created = _create(admin, "https://a.example/hook")
    path = f"{URL}/{created['id']}/rotate"
    before = utc_now()
    rotated = admin.post(path, json={"overlap_hours": 2})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    until = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert before + timedelta(hours=2) <= until <= utc_now() + timedelta(hours=2)
    default = admin.post(path).json()  # no body: 24 hours
    until = datetime.fromisoformat(default["previous_secret_expires_at"])
    assert until >= before + timedelta(hours=24)
    assert admin.get(f"{URL}/{created['id']}").json()["previous_secret_expires_at"]
    with session_factory() as s:
        endpoint = s.get(WebhookEndpoint, created["id"])
        assert endpoint is not None
        assert (endpoint.secret, endpoint.previous_secret) == (
            default["secret"],
            body["secret"],
        )

    for bad in ({"overlap_hours": -1}, {"overlap_hours": "long"}, {"overlap_hours": 10_000}):
        problem = assert_problem(admin.post(path, json=bad), 422)
        assert problem["errors"][0]["field"] == "overlap_hours"
    with session_factory() as s:  # nothing changed
        endpoint = s.get(WebhookEndpoint, created["id"])
        assert endpoint is not None and endpoint.secret == default["secret"]
    assert_problem(admin.post(f"{URL}/999/rotate"), 404)
    now = admin.post(path, json={"overlap_hours": 0}).json()
    assert now["previous_secret_expires_at"] is None


def test_deliveries_list_and_redeliver_to_a_real_server(
    admin: TestClient,
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    server: Recorder,
) -> None:
    created = _create(admin, server.url + "/hook", events=["plan_opened"])
    _event(session_factory)
    _event(session_factory)
    t0 = utc_now()
    server.answer(200, 500)
    _pump(session_factory, db_url, tmp_path, t0)
    first, second = server.requests
    for request in (first, second):  # signed with the secret the creation answered
        now = int(request.headers["webhook-timestamp"])
        verify(created["secret"], request.headers, request.body, now=now)
        assert "recoup-signature" not in request.headers

    listed = admin.get(f"{URL}/{created['id']}/deliveries")
    assert listed.status_code == 200, listed.text
    page = listed.json()
    failed, delivered = page["data"]  # newest first
    assert (delivered["status"], delivered["attempts"], delivered["last_status_code"]) == (
        "delivered",
        1,
        200,
    )
    assert delivered["last_error"] is None and delivered["endpoint_id"] == created["id"]
    assert delivered["webhook_id"] == first.headers["webhook-id"]
    assert (failed["status"], failed["attempts"], failed["last_status_code"]) == (
        "pending",
        1,
        500,
    )
    assert failed["last_error"].startswith("HTTP 500")
    only = admin.get(f"{URL}/{created['id']}/deliveries", params={"status": "delivered"})
    assert [d["id"] for d in only.json()["data"]] == [delivered["id"]]
    paged = admin.get(f"{URL}/{created['id']}/deliveries", params={"limit": 1}).json()
    assert paged["has_more"] is True and [d["id"] for d in paged["data"]] == [failed["id"]]
    after = admin.get(
        f"{URL}/{created['id']}/deliveries",
        params={"limit": 1, "starting_after": failed["id"]},
    ).json()
    assert [d["id"] for d in after["data"]] == [delivered["id"]]
    assert_problem(admin.get(f"{URL}/{created['id']}/deliveries", params={"status": "x"}), 422)
    assert_problem(admin.get(f"{URL}/999/deliveries"), 404)

    # the one still waiting cannot be queued twice; the delivered one is sent again
    redeliver = f"{URL}/deliveries/{{}}/redeliver"
    assert_problem(admin.post(redeliver.format(failed["id"])), 409)
    assert_problem(admin.post(redeliver.format(999)), 404)
    again = admin.post(redeliver.format(delivered["id"]), headers={"Recoup-Reason": "lost"})
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    _pump(session_factory, db_url, tmp_path, t0 + timedelta(minutes=5))
    resent = [
        r for r in server.requests[2:] if r.headers["webhook-id"] == first.headers["webhook-id"]
    ]
    assert len(resent) == 1 and resent[0].body == first.body
    assert verifies(
        created["secret"],
        resent[0].headers,
        resent[0].body,
        now=int(resent[0].headers["webhook-timestamp"]),
    )
    rows = {d["id"]: d for d in admin.get(f"{URL}/{created['id']}/deliveries").json()["data"]}
    assert rows[delivered["id"]]["status"] == "delivered"
    assert rows[delivered["id"]]["attempts"] == 2
    assert rows[failed["id"]]["status"] == "delivered"  # its retry went through
    with session_factory() as s:
        entry = s.scalars(select(LogEntry).where(LogEntry.event == "webhook_redelivered")).one()
        assert entry.actor == "admin" and entry.details["reason"] == "lost"


def test_rotation_over_http_signs_with_both_secrets(
    admin: TestClient,
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    server: Recorder,
) -> None:
    created = _create(admin, server.url + "/hook", events=["plan_opened"])
    rotated = admin.post(f"{URL}/{created['id']}/rotate", json={"overlap_hours": 1}).json()
    _event(session_factory)
    t0 = utc_now()
    _pump(session_factory, db_url, tmp_path, t0)
    [request] = server.requests
    now = int(request.headers["webhook-timestamp"])
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(rotated["secret"], request.headers, request.body, now=now)
    verify(created["secret"], request.headers, request.body, now=now)

    _event(session_factory)
    _pump(session_factory, db_url, tmp_path, t0 + timedelta(hours=2))
    later = server.requests[-1]
    now = int(later.headers["webhook-timestamp"])
    assert verifies(rotated["secret"], later.headers, later.body, now=now)
    assert not verifies(created["secret"], later.headers, later.body, now=now)
    assert admin.get(f"{URL}/{created['id']}").json()["previous_secret_expires_at"] is None


def test_an_inactive_endpoint_gets_nothing_and_cannot_redeliver(
    admin: TestClient,
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    server: Recorder,
) -> None:
    created = _create(admin, server.url + "/hook", events=["plan_opened"])
    _event(session_factory)
    _pump(session_factory, db_url, tmp_path, utc_now())
    [delivery] = admin.get(f"{URL}/{created['id']}/deliveries").json()["data"]
    assert admin.patch(f"{URL}/{created['id']}", json={"active": False}).status_code == 200
    _event(session_factory)
    _pump(session_factory, db_url, tmp_path, utc_now())
    assert len(server.requests) == 1
    body = assert_problem(admin.post(f"{URL}/deliveries/{delivery['id']}/redeliver"), 409)
    assert "inactive" in body["detail"]
