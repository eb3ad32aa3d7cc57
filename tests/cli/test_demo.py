"""`recoup demo` end to end with a tiny book: it builds its workspace, dunning happens, emails
land in the outbox, and the summary points at real plans and invoices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.models import Invoice, Plan


def test_demo_small_book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("RECOUP_SMTP_URL", raising=False)
    args = ["demo", "--customers", "20", "--days", "20", "--end", "2026-03-31", "--quiet"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    out = result.output
    folder = tmp_path / "demo-data"
    assert "collection plans opened" in out
    assert re.search(r"recovered|unrecovered|still active", out)
    assert "Aging" in out
    assert any(currency in out for currency in ("EUR", "USD", "GBP", "JPY"))
    emails = list((folder / "outbox").glob("*.eml"))
    assert emails, "the demo wrote no email to the outbox"
    assert str(folder / "outbox") in out
    assert re.search(
        rf"RECOUP_DATABASE_URL=sqlite:///{re.escape(str(folder / 'recoup.db'))} \S*recoup plans",
        out,
    )
    assert re.search(r"\S*recoup report\n", out)

    engine = create_engine(f"sqlite:///{folder / 'recoup.db'}")
    with engine.connect() as conn:
        plans = conn.scalar(select(func.count()).select_from(Plan))
        explained = re.search(r"recoup explain (\S+)", out)
        assert explained is not None
        assert conn.scalar(select(Invoice.id).where(Invoice.id == explained.group(1)))
    engine.dispose()
    assert plans and plans > 0

    # a second run wipes and rebuilds the same workspace
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output


def test_demo_refuses_to_wipe_a_foreign_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")

    result = CliRunner().invoke(app, ["demo", "--dir", str(precious), "--quiet"])

    assert result.exit_code == 1
    assert (precious / "keep.txt").read_text() == "mine"
