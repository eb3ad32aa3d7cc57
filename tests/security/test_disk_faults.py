"""Issue 8.8 (part): a full disk at the run lock, and any file-system fault at the CLI edge,
is one line naming the place, and nothing is applied."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.db import make_engine, make_sessionmaker
from recoup.models import ActionInstance, LogEntry, Plan, Run
from tests.factories import make_acme_customer, make_acme_invoice, make_acme_policy, make_action

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite book (the run lock is a file next to it) with a policy, so that a
    run has something to record."""
    path = tmp_path / "recoup.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    with make_sessionmaker(engine).begin() as s:
        make_action(s, "fee", "late_fee_fixed", amounts={"EUR": "15.00"}, service="LATE")
        make_acme_policy(s, levels=[("first", 5, ["fee"]), ("final", 90, [])])
        make_acme_invoice(s, make_acme_customer(s))
    engine.dispose()
    monkeypatch.setenv("RECOUP_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path / "data"))
    return path


def _lock_file_fails(monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    """The disk fills up under the lock file: its creation or its write fails with ENOSPC
    (the kernel's answer on a full disk; other files are written as usual)."""
    real = getattr(os, call)

    def full(target: object, *args: object) -> object:
        name = str(target) if call == "open" else os.readlink(f"/proc/self/fd/{target}")
        if name.endswith(".run.lock"):
            raise FULL
        return real(target, *args)

    monkeypatch.setattr(os, call, full)


def _applied(path: Path) -> tuple[int, int, int, int]:
    engine = make_engine(f"sqlite:///{path}")
    with make_sessionmaker(engine)() as s:
        counts = tuple(
            int(s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Run, Plan, ActionInstance, LogEntry)
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


@pytest.mark.parametrize("call", ["open", "write"])
def test_a_full_disk_at_the_run_lock_is_one_line_and_applies_nothing(
    sqlite_db: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    before = _applied(sqlite_db)
    _lock_file_fails(monkeypatch, call)
    result = CliRunner().invoke(app, ["run", "--as-of", "2024-03-01", "--quiet"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"error: cannot take the run lock {sqlite_db}.run.lock: No space left on device; "
        "nothing was done"
    )
    assert _applied(sqlite_db) == before == (0, 0, 0, 0)
    monkeypatch.undo()  # the disk has room again: the same run goes through
    monkeypatch.setenv("RECOUP_DATABASE_URL", f"sqlite:///{sqlite_db}")
    monkeypatch.setenv("RECOUP_DATA_DIR", str(sqlite_db.parent / "data"))
    again = CliRunner().invoke(app, ["run", "--as-of", "2024-03-01", "--quiet", "--json"])
    assert again.exit_code == 0, again.output
    assert _applied(sqlite_db)[0] == 1  # the run is recorded this time


def test_a_file_system_fault_at_the_cli_edge_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(blocker / "demo"), "--days", "1", "--customers", "1", "-q"]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert line == f"error: {blocker / 'demo'}: Not a directory"
