"""The application itself: OpenAPI and the interactive documentation under /api/v1 without a
key, and `recoup serve` starting uvicorn with the factory by its import string."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recoup.cli.main import app as cli_app


def test_openapi_and_docs_are_served_under_the_prefix(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Recoup"
    assert "/api/v1/plans" in schema["paths"] and "/api/v1/plans/{plan_id}/pause" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_serve_runs_uvicorn_with_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    result = CliRunner().invoke(cli_app, ["serve", "--port", "8123", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert calls == [
        (
            "recoup.api.app:create_app",
            {"factory": True, "host": "127.0.0.1", "port": 8123, "workers": 2},
        )
    ]
