"""The execution loop: what is claimed (due, automatic, not paused), leases, limits, the end
level closing the plan (R7), and two workers at once executing every instance once (R13)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.claims import LEASE, count_held
from recoup.actions.context import ActionContext
from recoup.actions.outcomes import ActionOutcome, PermanentFailure
from recoup.actions.registry import EXECUTORS
from recoup.actions.runner import ExecutionStats, execute_pending
from recoup.core.locks import holding
from recoup.models import (
    ActionInstance,
    ActionRow,
    Charge,
    Customer,
    LogEntry,
    Plan,
    PolicyRow,
    Task,
)
from tests.factories import (
    NOW,
    TODAY,
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_plan,
)


def _fee_plan(
    s: Session,
    invoice_id: str = "I1",
    *,
    level: str = "first",
    plan_status: str = "active",
) -> tuple[Plan, int]:
    """A plan on a new invoice of customer C1 with a pending 15 EUR fee at `level`."""
    customer = s.get(Customer, "C1") or make_acme_customer(s, "C1")
    invoice = make_acme_invoice(s, customer, invoice_id)
    action = s.scalar(select(ActionRow).where(ActionRow.code == "fee")) or make_action(
        s, "fee", "late_fee_fixed", service="LATE_FEE", amounts={"EUR": "15.00"}
    )
    policy = s.scalar(select(PolicyRow)) or make_acme_policy(
        s, levels=[("first", 5, ["fee"]), ("final", 20, ["fee"])]
    )
    plan = make_plan(s, invoice, policy, level=level, status=plan_status)
    return plan, make_instance(s, action, plan=plan, level=level).id


def _instance(factory: sessionmaker[Session], instance_id: int) -> ActionInstance:
    with factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        return instance


def test_manual_and_future_instances_are_not_claimed(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer)
        call = make_action(s, "call", "manual", mode="manual", role="collector")
        fee = make_action(s, "fee", "late_fee_fixed", service="F", amounts={"EUR": "15"})
        policy = make_acme_policy(s, levels=[("first", 5, ["call", "fee"]), ("final", 20, [])])
        plan = make_plan(s, invoice, policy, level="first")
        manual_id = make_instance(s, call, plan=plan, level="first", next_attempt_at=None).id
        later_id = make_instance(
            s, fee, plan=plan, level="first", next_attempt_at=NOW + timedelta(minutes=5)
        ).id
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats == ExecutionStats()
    assert _instance(session_factory, manual_id).status == "pending"
    assert _instance(session_factory, later_id).status == "pending"
    stats = execute(session_factory, make_env(db_url, tmp_path), now=NOW + timedelta(minutes=5))
    assert stats.done == 1
    assert _instance(session_factory, manual_id).status == "pending"


def test_manual_mode_instance_queued_by_mistake_is_released_not_executed(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer)
        fee = make_action(
            s, "fee", "late_fee_fixed", mode="manual", service="F", amounts={"EUR": "15"}
        )
        policy = make_acme_policy(s, levels=[("first", 5, ["fee"]), ("final", 20, [])])
        plan = make_plan(s, invoice, policy, level="first")
        instance_id = make_instance(s, fee, plan=plan, level="first").id
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats.deferred == 1
    instance = _instance(session_factory, instance_id)
    assert (instance.status, instance.next_attempt_at, instance.leased_by) == (
        "pending",
        None,
        None,
    )
    with session_factory() as s:
        assert s.scalars(select(Charge)).all() == []


def test_paused_plan_waits_and_runs_after_resume(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        plan, instance_id = _fee_plan(s, plan_status="paused")
        plan_id = plan.id
    env = make_env(db_url, tmp_path)
    assert execute(session_factory, env) == ExecutionStats()
    assert _instance(session_factory, instance_id).status == "pending"
    with session_factory() as s, s.begin():
        plan = s.get(Plan, plan_id)
        assert plan is not None
        plan.status = "active"  # resume: nothing else to re-arm
    assert execute(session_factory, env).done == 1
    assert _instance(session_factory, instance_id).status == "done"


def test_expired_lease_is_reclaimed_live_lease_is_left(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        _, dead_id = _fee_plan(s, "I1")
        _, live_id = _fee_plan(s, "I2")
        for instance_id, until in ((dead_id, NOW - timedelta(seconds=1)), (live_id, NOW + LEASE)):
            instance = s.get(ActionInstance, instance_id)
            assert instance is not None
            instance.status = "running"
            instance.leased_by = "live-worker"
            instance.lease_until = until
    engine = session_factory.kw["bind"]
    with holding(engine, "live-worker"):  # its process is alive: only the expiry frees it
        stats = execute(session_factory, make_env(db_url, tmp_path))
        assert stats.done == 1
        assert _instance(session_factory, dead_id).status == "done"
        live = _instance(session_factory, live_id)
        assert (live.status, live.leased_by) == ("running", "live-worker")
        assert count_held(session_factory, now=NOW) == 1
    assert count_held(session_factory, now=NOW) == 0


def test_a_dead_holders_lease_is_taken_over_at_once_and_logged(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """R13: a lease whose process is gone (its liveness lock free) is not waited out."""
    with session_factory() as s, s.begin():
        _, instance_id = _fee_plan(s, "I1")
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        instance.status, instance.attempts = "running", 1
        instance.leased_by = "crashed-worker#1"
        instance.lease_until = NOW + LEASE  # unexpired
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats.done == 1
    done = _instance(session_factory, instance_id)
    assert (done.status, done.attempts, done.crashes) == ("done", 2, 1)
    with session_factory() as s:
        [retry] = s.scalars(select(LogEntry).where(LogEntry.event == "action_retry")).all()
    assert retry.details["kind"] == "crashed"
    assert retry.details["error"] == "the process executing it (crashed-worker#1) died"


def test_limit_and_progress(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        for n in range(5):
            _fee_plan(s, f"I{n}")
    seen: list[int] = []
    env = make_env(db_url, tmp_path)
    stats = execute(session_factory, env, limit=3, on_progress=seen.append)
    assert stats.done == 3
    assert seen == [1, 1, 1]
    assert execute(session_factory, env).done == 2


def test_end_level_closes_the_plan_unrecovered(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        plan, instance_id = _fee_plan(s, level="final")
        plan_id = plan.id
    assert execute(session_factory, make_env(db_url, tmp_path)).done == 1
    with session_factory() as s:
        plan = s.get(Plan, plan_id)
        assert plan is not None
        assert (plan.status, plan.closed_on, plan.open_key) == ("unrecovered", TODAY, None)
        events = [e.event for e in s.scalars(select(LogEntry).order_by(LogEntry.id))]
        assert events == ["charge_created", "action_done", "plan_unrecovered"]


def _telepathy_instance(factory: sessionmaker[Session]) -> int:
    """A pending instance of an action of type `telepathy`, which has no executor."""
    with factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer)
        odd = make_action(s, "odd", "telepathy")
        policy = make_acme_policy(s, levels=[("first", 5, ["odd"]), ("final", 20, [])])
        plan = make_plan(s, invoice, policy, level="first")
        return make_instance(s, odd, plan=plan, level="first").id


def test_unknown_action_type_fails_at_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id = _telepathy_instance(session_factory)
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert (stats.failed, stats.retried) == (1, 0)
    instance = _instance(session_factory, instance_id)
    assert instance.error == "no executor for action type telepathy"
    with session_factory() as s:
        [task] = s.scalars(select(Task)).all()
        assert task.role == "collector" and task.action_instance_id == instance_id


@pytest.mark.parametrize(
    ("error", "traceback_shown"),
    [
        (PermanentFailure("no endpoint configured"), False),  # a refusal: one line
        (ConnectionRefusedError("connection refused"), False),  # the network: one line
        (ZeroDivisionError("division by zero"), True),  # a bug: its traceback
    ],
)
def test_a_failure_is_one_line_unless_unexpected(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    traceback_shown: bool,
) -> None:
    def failing(ctx: ActionContext) -> ActionOutcome:
        raise error

    monkeypatch.setitem(EXECUTORS, "telepathy", failing)
    instance_id = _telepathy_instance(session_factory)
    with caplog.at_level(logging.WARNING, logger="recoup.actions.runner"):
        execute(session_factory, make_env(db_url, tmp_path))
    [record] = [r for r in caplog.records if r.name == "recoup.actions.runner"]
    assert f"action instance {instance_id} failed: {error}" in record.getMessage()
    assert (record.exc_info is not None) is traceback_shown
    assert str(error) in (_instance(session_factory, instance_id).error or "")


def test_two_workers_execute_every_instance_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    count = 30
    with session_factory() as s, s.begin():
        for n in range(count):
            _fee_plan(s, f"I{n:02d}")
    env = make_env(db_url, tmp_path)
    results: list[ExecutionStats] = []
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            results.append(
                execute_pending(
                    session_factory, env=env, today=TODAY, worker_id=worker, now=lambda: NOW
                )
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.done for r in results) == count
    assert sum(r.retried + r.failed for r in results) == 0
    with session_factory() as s:
        charges = s.scalars(select(Charge)).all()
        assert len(charges) == count
        assert sum((c.amount for c in charges), Decimal(0)) == Decimal("15.00") * count
        assert {i.status for i in s.scalars(select(ActionInstance))} == {"done"}
