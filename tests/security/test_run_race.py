"""Issue 8, "what held": a run, an import and a payment at once stay consistent. The run
decides a chunk before it writes it (in a second process, while the previous chunk is
written); a payment that commits in between, or while the chunk is written, must still
leave no plan open on a paid debt. These tests force each interleaving in-process."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from recoup.book.payments import import_payments
from recoup.core.db import unit_of_work
from recoup.runs import apply as run_module
from tests.runs.test_run_e2e import DUE, Cli, invoice_csv

AS_OF = DUE + timedelta(days=10)


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Any) -> Cli:
    return Cli(tmp_path)


def _setup(cli: Cli, mode: str) -> None:
    cli.setup(
        mode=mode,
        invoices=invoice_csv(("I1", "C1", DUE, "100.00", "EUR"), ("I2", "C1", DUE, "50.00", "EUR")),
    )


def _pay(factory: sessionmaker[Session]) -> None:
    """Both invoices paid in full, by one payment spread over them (oldest due first)."""
    row = {
        "id": "P1",
        "customer_id": "C1",
        "invoice_id": "",
        "amount": "150.00",
        "currency": "EUR",
        "date": AS_OF.isoformat(),
    }
    with unit_of_work(factory) as session:
        import_payments(session, [row], actor="bank")


def _plans(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    """Each plan: status, balance, and its unfinished action instances."""
    with factory() as s:
        return [
            tuple(row)
            for row in s.execute(
                text(
                    "SELECT p.status, p.balance, (SELECT count(*) FROM action_instances a "
                    "WHERE a.plan_id = p.id AND a.status IN ('pending', 'running')) "
                    "FROM plans p ORDER BY p.id"
                )
            )
        ]


def _assert_settled(cli: Cli, factory: sessionmaker[Session]) -> None:
    with factory() as s:
        invoices = s.execute(text("SELECT status, amount_due FROM invoices ORDER BY id")).all()
    assert [tuple(i) for i in invoices] == [("paid", 0), ("paid", 0)]
    plans = _plans(factory)
    assert plans, "the run opened its plans"
    assert all(status == "recovered" and pending == 0 for status, _b, pending in plans), plans
    cli.run(AS_OF)  # the same day again changes nothing
    assert _plans(factory) == plans


@pytest.mark.parametrize("mode", ["invoice", "customer"])
def test_a_payment_committed_after_the_chunk_was_decided_closes_its_plans(
    cli: Cli,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    _setup(cli, mode)
    build = run_module.Batch.build

    def build_then_pay(batch: Any, session: Session, items: list[Any]) -> None:
        build(batch, session, items)
        _pay(session_factory)  # between the decider's read and the chunk's write

    monkeypatch.setattr(run_module.Batch, "build", build_then_pay)
    stats = cli.run(AS_OF, "--no-execute")
    assert stats["plans_opened"] >= 1
    _assert_settled(cli, session_factory)


@pytest.mark.parametrize("mode", ["invoice", "customer"])
def test_a_payment_made_while_the_chunk_is_written_finds_its_plans(
    cli: Cli,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    _setup(cli, mode)
    flush = run_module.Batch.flush
    payer: list[threading.Thread] = []

    def pay_then_flush(batch: Any, session: Session) -> None:
        if not payer:
            payer.append(threading.Thread(target=_pay, args=(session_factory,)))
            payer[0].start()
            time.sleep(1)  # the payment reaches the invoices the chunk holds, and waits
            assert payer[0].is_alive(), "the payment did not wait for the chunk"
        flush(batch, session)

    monkeypatch.setattr(run_module.Batch, "flush", pay_then_flush)
    cli.run(AS_OF, "--no-execute")
    payer[0].join(timeout=60)
    _assert_settled(cli, session_factory)


def test_a_payment_while_an_email_is_sent_keeps_the_sent_one_done(
    cli: Cli,
    env: dict[str, str],
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The payment closes the plans (R8) and cancels their unfinished actions, but the one a
    worker is sending stays `done`: each email written is its instance's."""
    from recoup.actions import runner
    from tests.runs.test_run_e2e import outbox

    _setup(cli, "invoice")
    cli.run(AS_OF, "--no-execute")
    assert [pending for _s, _b, pending in _plans(session_factory)] == [1, 1]
    executor_for = runner.executor_for
    payer: list[threading.Thread] = []

    def pay_while_sending(action_type: str) -> Any:
        execute = executor_for(action_type)
        assert execute is not None

        def sending(ctx: Any) -> Any:
            outcome = execute(ctx)  # the email is written; its instance is not yet done
            if not payer:
                payer.append(threading.Thread(target=_pay, args=(session_factory,)))
                payer[0].start()
                time.sleep(1)  # the payment reaches the instance being sent, and waits
            return outcome

        return sending

    monkeypatch.setattr(runner, "executor_for", pay_while_sending)
    cli.run(AS_OF)  # nothing new to decide: it sends what is pending
    payer[0].join(timeout=60)
    with session_factory() as s:
        done = s.scalar(
            text(
                "SELECT count(*) FROM action_instances WHERE type = 'send_email' AND status = 'done'"
            )
        )
    assert len(outbox(env)) == done >= 1  # each email written is its instance, done
    assert [(status, pending) for status, _b, pending in _plans(session_factory)] == [
        ("recovered", 0),
        ("recovered", 0),
    ]


def test_a_chunk_waits_for_a_writer_holding_its_invoices_then_settles_what_it_wrote(
    cli: Cli,
    db_url: str,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A writer holds one of the chunk's invoices (uncommitted) when the chunk is written: the
    chunk waits for it (PostgreSQL: retrying its locks, none held meanwhile) and then sees
    the invoice paid; the plan it opened for it closes `recovered`, the other stays active."""
    _setup(cli, "invoice")
    build = run_module.Batch.build
    locked = threading.Event()

    def writer() -> None:
        with session_factory.kw["bind"].connect() as connection:
            connection.execute(
                text("UPDATE invoices SET amount_due = 0, status = 'paid' WHERE id = 'I1'")
            )
            locked.set()
            time.sleep(1)
            connection.commit()

    def build_then_hold(batch: Any, session: Session, items: list[Any]) -> None:
        build(batch, session, items)
        threading.Thread(target=writer).start()
        assert locked.wait(30)

    monkeypatch.setattr(run_module.Batch, "build", build_then_hold)
    caplog.set_level(logging.INFO, logger="recoup.runs.apply")
    cli.run(AS_OF, "--no-execute")
    if db_url.startswith("postgresql"):
        assert "invoices are being changed; waiting" in caplog.text  # no lock held meanwhile
    assert "1 invoice(s) changed while their chunk was decided (I1)" in caplog.text
    assert [(status, pending) for status, _b, pending in _plans(session_factory)] == [
        ("recovered", 0),
        ("active", 1),
    ]
