"""The application itself: OpenAPI and the interactive documentation under /api/v1 without a
key; `recoup serve` serving it with several workers, Nagle off on their connections."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from recoup.api.app import create_app, create_served_app
from recoup.cli.serve_cmds import tcp_listener
from tests.live_server import free_port


def test_openapi_and_docs_are_served_under_the_prefix(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Recoup"
    assert "/api/v1/plans" in schema["paths"] and "/api/v1/plans/{plan_id}/pause" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_serve_answers_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RECOUP_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    recoup = Path(sys.executable).with_name("recoup")
    migrate = subprocess.run([str(recoup), "init"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    command = [str(recoup), "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json") as r:
                    assert json.load(r)["info"]["title"] == "Recoup"
                    break
            except OSError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "recoup serve did not answer"
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_the_workers_listener_turns_nagle_off_on_every_connection() -> None:
    """uvicorn binds the workers' socket without saying TCP, and asyncio then leaves Nagle on:
    each keep-alive answer would wait ~40 ms on the client's delayed ACK."""
    config = uvicorn.Config("recoup.api.app:create_app", host="127.0.0.1", port=free_port())
    assert config.bind_socket().proto == 0  # uvicorn's, which tcp_listener mends
    listener = tcp_listener(uvicorn.Config("x:y", host="127.0.0.1", port=free_port()).bind_socket())
    assert listener.proto == socket.IPPROTO_TCP

    async def nodelay_of_accepted() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(nodelay_of_accepted()) == 1


def test_the_served_app_freezes_what_startup_built(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_DATABASE_URL", db_url)
    gc.unfreeze()
    try:
        with TestClient(create_served_app()) as client:
            assert gc.get_freeze_count() > 0
            assert client.get("/api/v1/openapi.json").status_code == 200
    finally:
        gc.unfreeze()  # a test process builds many apps: let the collector see them again
    with TestClient(create_app(db_url)):
        assert gc.get_freeze_count() == 0  # the tests' apps freeze nothing
