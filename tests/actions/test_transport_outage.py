"""A mail server down for a while (issue 8.7): transport errors back off over hours without
using up attempts, the channel is paused for the batch instead of failing every email, the
summary and `recoup runs` say so, and `recoup actions retry` queues the actions again. With a
real SMTP server (aiosmtpd) on a port where nothing listens at first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.retry import (
    MAX_ATTEMPTS,
    TRANSPORT_CAP,
    TRANSPORT_HORIZON,
    FailureKind,
    GiveUp,
    RetryAt,
    retry_decision,
    transport_waited,
)
from recoup.models import ActionInstance, LogEntry, Task
from tests.actions.test_actions_email import Collector, _free_port
from tests.factories import (
    NOW,
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_plan,
    make_template,
)
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


# --- the decision (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "kind", "failures", "jitter", "expected"),
    [
        (1, FailureKind.transient, 0, 0.0, RetryAt(T0 + timedelta(minutes=1))),
        (2, FailureKind.transient, 0, 0.0, RetryAt(T0 + timedelta(minutes=2))),
        (4, FailureKind.transient, 0, 0.0, RetryAt(T0 + timedelta(minutes=8))),
        (MAX_ATTEMPTS, FailureKind.transient, 0, 0.0, GiveUp("5 attempts, the most allowed")),
        (3, FailureKind.crashed, 0, 0.0, RetryAt(T0 + timedelta(minutes=4))),
        (MAX_ATTEMPTS, FailureKind.crashed, 0, 0.0, GiveUp("5 attempts, the most allowed")),
        (1, FailureKind.permanent, 0, 0.0, GiveUp("refused: retrying cannot help")),
        # transport: attempts do not matter, the outage's length does
        (0, FailureKind.transport, 1, 0.0, RetryAt(T0 + timedelta(minutes=1))),
        (4, FailureKind.transport, 1, 0.0, RetryAt(T0 + timedelta(minutes=1))),
        (0, FailureKind.transport, 5, 0.0, RetryAt(T0 + timedelta(minutes=16))),
        (0, FailureKind.transport, 5, 1.0, RetryAt(T0 + timedelta(minutes=16) * 1.1)),
        (0, FailureKind.transport, 5, -1.0, RetryAt(T0 + timedelta(minutes=16) * 0.9)),
        (0, FailureKind.transport, 10, 0.0, RetryAt(T0 + TRANSPORT_CAP)),
        (0, FailureKind.transport, 16, 0.0, RetryAt(T0 + TRANSPORT_CAP)),
        (
            0,
            FailureKind.transport,
            17,
            0.0,
            GiveUp("the server was unreachable for 50 h (17 tries)"),
        ),
    ],
)
def test_retry_decision(
    attempts: int, kind: FailureKind, failures: int, jitter: float, expected: object
) -> None:
    decision = retry_decision(attempts, kind, T0, transport_failures=failures, jitter=jitter)
    assert decision == expected


def test_transport_backoff_spans_the_horizon() -> None:
    assert transport_waited(16) < TRANSPORT_HORIZON <= transport_waited(17)
    # a quarter of an hour down costs five quick tries, not the email
    assert transport_waited(5) == timedelta(minutes=15)


# --- the framework, with a real SMTP server ------------------------------------------------


@dataclass
class Smtp:
    port: int
    collector: Collector

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @contextmanager
    def up(self) -> Iterator[Collector]:
        controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        controller.start()
        try:
            yield self.collector
        finally:
            controller.stop()


@pytest.fixture
def smtp() -> Smtp:
    """A server that is down (nothing listens on its port) until `with smtp.up():`."""
    return Smtp(_free_port(), Collector())


def _emails(factory: sessionmaker[Session], n: int) -> list[int]:
    """`n` plans, each with a pending email notice, and one pending fee (another channel)."""
    with factory() as s, s.begin():
        make_template(s, "notice_1")
        email = make_action(s, "email_notice_1", "send_email", template="notice_1")
        # charged whether or not the notice went (fees otherwise wait for their step's notice)
        fee = make_action(
            s,
            "fee",
            "late_fee_fixed",
            service="LATE_FEE",
            amounts={"EUR": "15"},
            without_notice=True,
        )
        policy = make_acme_policy(s, levels=[("first", 5, ["email_notice_1"]), ("final", 90, [])])
        ids = []
        for i in range(n):
            customer = make_acme_customer(s, f"C{i}", email=f"c{i}@example.test")
            plan = make_plan(s, make_acme_invoice(s, customer, f"I{i}"), policy, level="first")
            ids.append(make_instance(s, email, plan=plan, level="first").id)
        make_instance(s, fee, plan=plan, level="first")
        return ids


def _rows(factory: sessionmaker[Session], ids: list[int]) -> list[ActionInstance]:
    with factory() as s:
        return list(
            s.scalars(
                select(ActionInstance).where(ActionInstance.id.in_(ids)).order_by(ActionInstance.id)
            )
        )


def _log(factory: sessionmaker[Session], event: str) -> list[LogEntry]:
    with factory() as s:
        return list(s.scalars(select(LogEntry).where(LogEntry.event == event)))


def test_a_server_down_pauses_the_channel_and_everything_goes_once_it_is_back(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, smtp: Smtp
) -> None:
    ids = _emails(session_factory, 6)
    env = make_env(db_url, tmp_path, smtp_url=smtp.url)
    stats = execute(session_factory, env)
    # one email tried, the five others not even tried: the channel is paused for the batch
    assert (stats.retried, stats.postponed, stats.failed) == (1, 5, 0)
    assert stats.done == 1  # the fee: another channel goes on
    [down] = stats.channels_down.values()
    assert (down.channel, down.reason, down.instances) == ("email", "server unreachable", 6)
    assert down.retry_at - NOW <= timedelta(minutes=1.1)
    rows = _rows(session_factory, ids)
    assert {(r.status, r.attempts, r.transport_failures) for r in rows} == {("pending", 0, 1)}
    assert {r.next_attempt_at for r in rows} == {down.retry_at}
    [logged] = _log(session_factory, "channel_down")  # once, not per email
    assert logged.details["channel"] == "email"
    assert logged.details["instances"] == 6
    assert "unreachable" in logged.details["error"]
    assert len(_log(session_factory, "action_retry")) == 1
    assert _log(session_factory, "action_failed") == []
    # nothing is due before the retry time
    assert execute(session_factory, env, now=down.retry_at - timedelta(seconds=1)).processed == 0

    with smtp.up() as received:
        stats = execute(session_factory, env, now=down.retry_at)
    assert stats.done == 6 and stats.channels_down == {}
    assert sorted(e.rcpt_tos[0] for e in received.envelopes) == [
        f"c{i}@example.test" for i in range(6)
    ]
    rows = _rows(session_factory, ids)
    assert {(r.status, r.attempts) for r in rows} == {("done", 1)}
    with session_factory() as s:
        assert s.scalars(select(Task)).all() == []  # nobody has to do anything by hand


def test_a_quarter_of_an_hour_down_fails_nothing(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, smtp: Smtp
) -> None:
    """The outage of the issue: 15 minutes. Before, five tries in 15 minutes failed every
    email for good, each with a collector task."""
    ids = _emails(session_factory, 3)
    env = make_env(db_url, tmp_path, smtp_url=smtp.url)
    now = NOW
    while now <= NOW + timedelta(minutes=15):  # tries at 0, 1, 3, 7 and 15 minutes
        execute(session_factory, env, now=now)
        [row, *_] = _rows(session_factory, ids)
        if row.status != "pending":
            break
        assert row.next_attempt_at is not None
        now = row.next_attempt_at
    assert {r.status for r in _rows(session_factory, ids)} == {"pending"}
    with smtp.up() as received:
        assert execute(session_factory, env, now=now).done == 3
    assert len(received.envelopes) == 3
    assert _log(session_factory, "action_failed") == []


@dataclass
class Answering(Collector):
    """Answers every DATA with `code`."""

    code: str = "451 4.3.0 try again later"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return self.code


@pytest.mark.parametrize(
    ("answer", "status", "attempts", "failures"),
    [
        ("451 4.3.0 mailbox busy, try later", "pending", 0, 1),  # deferred: an outage
        ("554 5.7.1 message refused", "failed", 1, 0),  # a refusal stays permanent
    ],
)
def test_a_4xx_answer_is_waited_out_a_5xx_refusal_is_final(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    answer: str,
    status: str,
    attempts: int,
    failures: int,
) -> None:
    [instance_id] = _emails(session_factory, 1)
    smtp = Smtp(_free_port(), Answering(code=answer))
    with smtp.up():
        execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp.url))
    [row] = _rows(session_factory, [instance_id])
    assert (row.status, row.attempts, row.transport_failures) == (status, attempts, failures)
    assert answer.split()[0] in (row.error or "")


# --- from the command line ------------------------------------------------------------------


def test_run_summary_runs_and_actions_retry(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: Smtp
) -> None:
    monkeypatch.setenv("RECOUP_SMTP_URL", smtp.url)
    cli = Cli(tmp_path)
    cli.setup(invoices=invoice_csv(*[(f"I{i}", "C1", DUE, "100.00", "EUR") for i in range(4)]))
    as_of = (DUE + timedelta(days=5)).isoformat()
    out = " ".join(cli("run", "--as-of", as_of, "--quiet").split())
    assert "email: server unreachable, 4 actions will be retried from" in out
    assert "actions postponed" in out
    [run] = cli.json("runs")
    assert run["actions_postponed"] == 3
    [down] = run["channels_down"]
    assert (down["channel"], down["reason"], down["instances"]) == (
        "email",
        "server unreachable",
        4,
    )
    table = "".join(cli("runs").split())  # the table may fold a long note
    assert "email:serverunreachable,4actionswillberetriedfrom" in table

    # a worker says so too
    cli("actions", "retry")
    out = " ".join(cli("worker", "--once").split())
    assert "email: server unreachable, 4 actions will be retried from" in out

    # the server is back: no need to wait for the backoff
    out = cli("actions", "retry")
    assert "4 action(s) queued again (0 failed, 4 backed off)" in out
    queued = [e for e in cli.log("--event", "action_queued") if e["details"].get("retry")]
    assert len(queued) == 8
    assert all(e["details"]["previous_status"] == "pending" for e in queued)
    with smtp.up() as received:
        worker = json.loads(cli("worker", "--once", "--json"))[0]
    assert worker["done"] == 8  # the 4 notices, then the 4 fees that waited for them
    assert len(received.envelopes) == 4
    assert cli("actions", "retry").startswith("0 action(s) queued again")


def test_actions_retry_failed_requeues_what_no_person_has_taken(
    session_factory: sessionmaker[Session], env: dict[str, str], tmp_path: Path, smtp: Smtp
) -> None:
    ids = _emails(session_factory, 3)
    with session_factory() as s, s.begin():
        for n, instance_id in enumerate(ids):
            row = s.get(ActionInstance, instance_id)
            assert row is not None
            row.status, row.attempts, row.error = "failed", MAX_ATTEMPTS, "boom"
            row.finished_at = NOW
            s.add(
                Task(
                    plan_id=row.plan_id,
                    action_instance_id=row.id,
                    role="collector",
                    status=["open", "completed", "claimed"][n],
                    created_on=NOW.date(),
                )
            )
    cli = Cli(tmp_path)
    out = " ".join(cli("actions", "retry", "--failed", "--action", "email_notice_1").split())
    assert "1 action(s) queued again (1 failed, 0 backed off)" in out
    assert f"instance {ids[1]} (email_notice_1): its task" in out and "completed" in out
    assert f"instance {ids[2]} (email_notice_1): its task" in out and "claimed" in out
    rows = _rows(session_factory, ids)
    assert [(r.status, r.attempts) for r in rows] == [
        ("pending", 0),
        ("failed", MAX_ATTEMPTS),
        ("failed", MAX_ATTEMPTS),
    ]
    [queued] = _log(session_factory, "action_queued")
    assert queued.details["retry"] is True and queued.details["previous_status"] == "failed"
    assert queued.details["previous_error"] == "boom"
    # --since is the business date it was queued for: none is that late
    assert cli("actions", "retry", "--failed", "--since", "2099-01-01").startswith("0 action(s)")
