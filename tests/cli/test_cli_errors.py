"""A database that is not set up gives a clear message, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoup.cli.main import app


def test_uninitialised_database_says_run_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(app, ["plans"])
    assert result.exit_code == 1
    assert "run `recoup init`" in result.stderr
    assert "Traceback" not in result.output
