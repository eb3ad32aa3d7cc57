"""Runs over HTTP: POST /runs answers 202 at once and the run goes on in the background until
GET /runs/{id} says finished, with its progress and summary; R13's date rules and a run in
progress are refused before anything runs. And explain, which changes nothing."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from recoup.core.clock import today_in
from recoup.core.db import make_engine
from recoup.core.env import load_env
from recoup.core.locks import run_lock
from recoup.core.sessions import session_factory
from recoup.models import Run
from recoup.runs.context import Progress
from recoup.runs.service import RecordedProgress, run_dunning
from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.setup(
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C2", DUE, "80.00", "USD"))
    )
    return cli


def _finished(client: TestClient, run_id: int, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
        if run["status"] != "running":
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end: {run}")


def test_a_run_in_the_background_reaches_finished(
    cli: Cli, client: TestClient, keys: dict[str, str]
) -> None:
    collector = auth(keys["collector"])
    day = DUE + timedelta(days=5)
    started = client.post("/api/v1/runs", json={"as_of": day.isoformat()}, headers=collector)
    assert started.status_code == 202, started.text
    run = started.json()
    assert started.headers["location"] == f"/api/v1/runs/{run['id']}"
    assert run["as_of"] == day.isoformat() and run["actor"] == "collector"
    assert run["status"] in ("running", "finished")

    done = _finished(client, run["id"], auth(keys["viewer"]))
    assert done["status"] == "finished" and done["error"] is None
    assert done["summary"]["considered"] == 2 and done["summary"]["plans_opened"] == 2
    assert done["summary"]["actions_done"] == done["actions_done"] >= 2
    assert done["plans_opened"] == 2 and done["finished_at"] is not None
    assert done["phase"] == "Executing actions"
    assert done["units_done"] == done["units_total"]
    history = client.get("/api/v1/runs", headers=collector).json()["data"]
    assert [r["id"] for r in history] == [run["id"]]
    plans = client.get("/api/v1/plans", headers=collector).json()["data"]
    assert sorted(p["invoice_id"] for p in plans) == ["I1", "I2"]

    # R13: not before the latest finished run; not after tomorrow unless a simulation
    earlier = client.post("/api/v1/runs", json={"as_of": DUE.isoformat()}, headers=collector)
    problem = assert_problem(earlier, 409)
    assert [e["field"] for e in problem["errors"]] == ["as_of"]
    future = (today_in("UTC") + timedelta(days=5)).isoformat()
    problem = assert_problem(
        client.post("/api/v1/runs", json={"as_of": future}, headers=collector), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["future"]
    body = {"as_of": "someday", "execute": "maybe"}
    problem = assert_problem(client.post("/api/v1/runs", json=body, headers=collector), 422)
    assert sorted(e["field"] for e in problem["errors"]) == ["as_of", "execute"]
    assert len(client.get("/api/v1/runs", headers=collector).json()["data"]) == 1  # none ran

    simulated = client.post(
        "/api/v1/runs", json={"as_of": future, "future": True, "execute": False}, headers=collector
    )
    assert simulated.status_code == 202, simulated.text
    sim = _finished(client, simulated.json()["id"], collector)
    assert sim["status"] == "finished" and sim["execute"] is False
    assert sim["phase"] == "Evaluating" and sim["units_done"] == sim["units_total"] == 2


def test_a_run_in_progress_refuses_another(
    cli: Cli, db_url: str, client: TestClient, keys: dict[str, str]
) -> None:
    engine = make_engine(db_url)
    try:
        with run_lock(engine):  # another process's run holds the lock
            response = client.post("/api/v1/runs", json={}, headers=auth(keys["admin"]))
            problem = assert_problem(response, 409)
            assert (
                problem["detail"] == "another run is in progress on this database; try again later"
            )
    finally:
        engine.dispose()
    assert client.get("/api/v1/runs", headers=auth(keys["admin"])).json()["data"] == []
    assert_problem(client.get("/api/v1/runs/999", headers=auth(keys["viewer"])), 404)


def test_a_run_without_policies_is_refused(
    env: dict[str, str], client: TestClient, keys: dict[str, str]
) -> None:
    problem = assert_problem(client.post("/api/v1/runs", headers=auth(keys["admin"])), 422)
    assert problem["detail"] == "no policies configured yet"  # no CLI command named here


def test_explain_an_invoice(cli: Cli, client: TestClient, keys: dict[str, str]) -> None:
    viewer = auth(keys["viewer"])
    url = "/api/v1/invoices/I1/explain"
    before = client.get(
        url, params={"as_of": (DUE + timedelta(days=5)).isoformat()}, headers=viewer
    )
    assert before.status_code == 200, before.text
    why = before.json()
    assert why["invoice_id"] == "I1" and why["policy"] == "Standard" and why["plan_id"] is None
    assert why["days_overdue"] == 5 and why["balance"] == "100.00"
    assert any("open a plan" in step for step in why["today"])
    assert client.get("/api/v1/plans", headers=viewer).json()["data"] == []  # nothing changed
    # what the request itself wrote (the key's use) is kept: explaining undid only its own work
    [key] = [k for k in cli.json("apikey", "list") if k["name"] == "viewer"]
    assert key["last_used_at"] is not None

    cli.run(5)
    after = client.get(
        url, params={"as_of": (DUE + timedelta(days=10)).isoformat()}, headers=viewer
    )
    assert after.json()["plan_id"] is not None and after.json()["plan_status"] == "active"
    assert any("second_notice" in step for step in after.json()["today"])

    assert (
        assert_problem(client.get("/api/v1/invoices/NOPE/explain", headers=viewer), 404)["detail"]
        == "invoice NOPE not found"
    )
    problem = assert_problem(client.get(url, params={"as_of": "x"}, headers=viewer), 422)
    assert [e["field"] for e in problem["errors"]] == ["as_of"]


def test_the_run_row_follows_its_progress_chunk_by_chunk(
    cli: Cli, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What GET /runs/{id} shows while a run works: the row's phase and units, written after
    each chunk (here one invoice a chunk, and no half-second wait between writes)."""
    monkeypatch.setenv("RECOUP_RUN_CHUNK", "1")
    monkeypatch.setattr(RecordedProgress, "PROGRESS_EVERY", 0.0)
    factory = session_factory(db_url)
    seen: list[tuple[str | None, int | None, int | None]] = []

    def look(_n: int) -> None:
        with factory() as session:
            run = session.scalars(select(Run)).one()
            seen.append((run.phase, run.units_done, run.units_total))

    run_dunning(
        factory,
        as_of=DUE + timedelta(days=5),
        env=load_env(),
        execute=False,
        progress=Progress(advance=look),
    )
    # the face hears of a chunk before the row is written: the row is one chunk behind it
    assert seen == [("Evaluating", 0, 2), ("Evaluating", 1, 2)]
    look(0)
    assert seen[-1] == ("Evaluating", 2, 2)
