"""Issue 8.4: a poison action — one that hangs or kills the process executing it every time
— must not block everyone. Each run that dies on it counts an attempt (at claim); after
MAX_ATTEMPTS it is `failed` with its collector task, and the other customers' emails go out
on the first restart. A real `recoup run` process, killed (SIGKILL) while it hangs on a mail
server that never answers for one recipient, as an operator kills a hung run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from recoup.core.db import make_engine
from recoup.domain.retry import MAX_ATTEMPTS
from recoup.models import ActionInstance, LogEntry, Task
from tests.runs.test_crash_restart import (
    SlowSmtp,
    kill,
    make_book,
    run_args,
    serve,
    spawn,
    statuses,
    wait_for,
)

POISON = "poison@example.test"
OTHERS = [f"c{i}@example.test" for i in range(1, 5)]


@pytest.fixture
def hanging() -> Iterator[tuple[SlowSmtp, str]]:
    handler = SlowSmtp(delay=0.0, hang=frozenset({POISON}))
    for url in serve(handler):
        yield handler, url


def test_a_poison_action_is_failed_after_max_attempts_and_holds_back_nobody(
    env: dict[str, str], tmp_path: Path, db_url: str, hanging: tuple[SlowSmtp, str]
) -> None:
    handler, url = hanging
    make_book(tmp_path, [POISON, *OTHERS])  # the poison customer's plan comes first
    kills = 0
    for _ in range(MAX_ATTEMPTS + 2):
        before = handler.seen(POISON)
        process = spawn(env, url, *run_args())
        try:
            wait_for(
                lambda p=process, n=before: p.poll() is not None or handler.seen(POISON) > n,
                60,
                "the run to end or to hang on the poison email",
            )
        finally:
            if process.poll() is None:
                kill(process)  # hung: the operator kills it
                kills += 1
        if process.returncode == 0:
            break
        # the others went out on the first restart, each once, while the poison hung
        if kills >= 2:
            assert sorted(handler.received) == sorted(OTHERS)
    assert process.returncode == 0, process.communicate()[1]
    assert kills == MAX_ATTEMPTS  # one attempt per process it killed, then given up
    assert sorted(handler.received) == sorted(OTHERS)

    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            poison = s.scalars(
                select(ActionInstance).where(
                    ActionInstance.customer_id == "C0", ActionInstance.type == "send_email"
                )
            ).one()
            assert (poison.status, poison.attempts, poison.crashes) == (
                "failed",
                MAX_ATTEMPTS,
                MAX_ATTEMPTS,
            )
            assert poison.error is not None
            assert f"the process executing it died {MAX_ATTEMPTS} times" in poison.error
            [task] = s.scalars(select(Task).where(Task.action_instance_id == poison.id)).all()
            assert task.status == "open" and task.role == "collector"
            [failed] = s.scalars(
                select(LogEntry).where(
                    LogEntry.event == "action_failed", LogEntry.customer_id == "C0"
                )
            ).all()
            assert failed.details["crashes"] == MAX_ATTEMPTS
            crashes = s.scalars(
                select(LogEntry).where(
                    LogEntry.event == "action_retry", LogEntry.customer_id == "C0"
                )
            ).all()
            assert len(crashes) == MAX_ATTEMPTS - 1  # each death logged with its reason
            assert all(c.details["kind"] == "crashed" for c in crashes)
            # no innocent instance was blamed for the poison's crashes
            others = s.scalars(
                select(ActionInstance).where(
                    ActionInstance.customer_id != "C0", ActionInstance.type == "send_email"
                )
            ).all()
            assert {(o.status, o.attempts, o.crashes) for o in others} == {("done", 1, 0)}
    finally:
        engine.dispose()
    assert "running" not in statuses(db_url)
