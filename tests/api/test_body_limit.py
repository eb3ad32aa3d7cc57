"""A request body over its limit is refused with 413 (problem+json) before it is read whole: a
declared Content-Length at once, a chunked body at the chunk that crosses the limit. Batches
and PDF uploads have a larger limit; a refused request changes nothing."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from recoup.api.body_limit import MAX_BODY, MAX_LARGE_BODY
from tests.api.conftest import assert_problem, auth
from tests.live_server import LiveServer

CHUNK = 64 * 1024


def test_a_declared_length_over_the_limit_is_413_without_running_the_route(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    name = "x" * MAX_BODY
    response = client.post("/api/v1/customers", json={"id": "C1", "name": name}, headers=admin)
    body = assert_problem(response, 413)
    assert body["code"] == "content_too_large" and str(MAX_BODY) in body["detail"]
    assert client.get("/api/v1/customers/C1", headers=admin).status_code == 404
    # the same with an Idempotency-Key: refused before the key is reserved
    keyed = {**admin, "Idempotency-Key": "big"}
    assert_problem(
        client.post("/api/v1/customers", json={"id": "C1", "name": name}, headers=keyed), 413
    )
    small = client.post("/api/v1/customers", json={"id": "C1", "name": "ok"}, headers=keyed)
    assert small.status_code == 201, small.text  # the key was not taken by the refused one


def test_batches_and_pdfs_have_the_larger_limit(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    admin = auth(keys["admin"])
    rows = [{"id": f"K{i}", "name": "n" * 200} for i in range(6_000)]
    data = json.dumps({"data": rows}).encode()
    assert MAX_BODY < len(data) < MAX_LARGE_BODY
    response = client.post(
        "/api/v1/customers/batch",
        content=data,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["created"] == 6_000
    over = client.put(
        "/api/v1/invoices/I1/pdf",
        content=b"%PDF-" + b"0" * MAX_LARGE_BODY,
        headers={**admin, "Content-Type": "application/pdf"},
    )
    assert_problem(over, 413)


@pytest.fixture
def live(db_url: str, env: dict[str, str]) -> Iterator[str]:
    with LiveServer(db_url) as server:
        yield server.url


def test_a_live_server_answers_413_before_the_body_is_sent(live: str, keys: dict[str, str]) -> None:
    """Only the headers are sent, announcing 100 MiB: the answer comes without a byte of it."""
    address = urlsplit(live)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(
            (
                "POST /api/v1/customers HTTP/1.1\r\n"
                f"Host: {address.netloc}\r\n"
                f"Authorization: Bearer {keys['admin']}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {100 << 20}\r\n\r\n"
            ).encode()
        )
        answer = _answer(conn)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "application/problem+json" in answer and "content_too_large" in answer


def _answer(conn: socket.socket) -> str:
    """What the server answered, until it closed the connection (413 closes it)."""
    answer = b""
    while select.select([conn], [], [], 10)[0]:
        try:
            part = conn.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        answer += part
    return answer.decode(errors="replace")


def _chunked(live: str, path: str, headers: dict[str, str], *, at_most: int) -> tuple[str, int]:
    """POST a chunked body of blanks to the live server, a chunk at a time, until it answers
    (or `at_most` bytes went); the answer and how many bytes were sent before it came."""
    address = urlsplit(live)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    frame = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n{head}"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        while sent < at_most and not select.select([conn], [], [], 0)[0]:
            try:
                conn.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        return _answer(conn), sent


@pytest.mark.parametrize("keyed", [False, True])
def test_a_chunked_body_is_refused_at_the_limit_not_read_whole(
    live: str, keys: dict[str, str], keyed: bool
) -> None:
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    if keyed:  # then the idempotency middleware reads it, not the route
        headers["Idempotency-Key"] = "chunked"
    answer, sent = _chunked(live, "/api/v1/customers", headers, at_most=32 * MAX_BODY)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "application/problem+json" in answer and "content_too_large" in answer
    # refused at the limit (give or take what the sockets buffer), long before the end
    assert MAX_BODY <= sent < 12 * MAX_BODY


def test_a_chunked_batch_has_the_larger_limit(live: str, keys: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    answer, sent = _chunked(live, "/api/v1/payments/batch", headers, at_most=6 * MAX_LARGE_BODY)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert MAX_LARGE_BODY <= sent < 3 * MAX_LARGE_BODY
