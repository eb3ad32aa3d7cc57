"""change_account_status (R12): the previous status is remembered once per instance and
comes back when the plan closes recovered."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.enums import PlanStatus
from recoup.models import ActionInstance, Customer, LogEntry, Plan, StatusChange
from recoup.plans.closing import close_plan
from tests.factories import (
    TODAY,
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_plan,
    rearm,
)


def _setup(
    factory: sessionmaker[Session],
    *,
    status: str = "suspended",
    customer_status: str = "active",
    invoices: tuple[str, ...] = ("I1",),
) -> list[int]:
    with factory() as s, s.begin():
        customer = make_acme_customer(s, status=customer_status)
        action = make_action(s, "suspend", "change_account_status", status=status)
        policy = make_acme_policy(s, levels=[("first", 5, []), ("final", 20, ["suspend"])])
        ids = []
        for invoice_id in invoices:
            invoice = make_acme_invoice(s, customer, invoice_id)
            plan = make_plan(s, invoice, policy, level="first")
            ids.append(make_instance(s, action, plan=plan, level="first").id)
        return ids


def _customer_status(factory: sessionmaker[Session]) -> str:
    with factory() as s:
        customer = s.get(Customer, "C1")
        assert customer is not None
        return customer.status


def _recover(factory: sessionmaker[Session], instance_id: int) -> None:
    with factory() as s, s.begin():
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.plan_id is not None
        plan = s.get(Plan, instance.plan_id)
        assert plan is not None
        close_plan(s, plan, PlanStatus.recovered, on=TODAY, reason="paid")


def test_status_change_recorded_once_and_restored_on_recovery(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    [instance_id] = _setup(session_factory)
    env = make_env(db_url, tmp_path)
    assert execute(session_factory, env).done == 1
    assert _customer_status(session_factory) == "suspended"

    rearm(session_factory, instance_id)  # a retry must not record a second change
    assert execute(session_factory, env).done == 1
    with session_factory() as s:
        [change] = s.scalars(select(StatusChange)).all()
        assert (change.previous_status, change.new_status) == ("active", "suspended")
        assert change.action_instance_id == instance_id
        assert change.customer_id == "C1"
        [logged] = s.scalars(select(LogEntry).where(LogEntry.event == "status_changed")).all()
        assert logged.details == {"previous": "active", "status": "suspended"}
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.result is not None
        assert instance.result["already_recorded"] is True

    _recover(session_factory, instance_id)
    assert _customer_status(session_factory) == "active"
    with session_factory() as s:
        [change] = s.scalars(select(StatusChange)).all()
        assert change.restored_at is not None


def test_status_already_set_is_done_without_change(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    [instance_id] = _setup(session_factory, customer_status="suspended")
    assert execute(session_factory, make_env(db_url, tmp_path)).done == 1
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.status == "done"
        assert instance.result is not None
        assert instance.result["changed"] is False
        assert "already had status suspended" in instance.result["note"]
        assert s.scalars(select(LogEntry).where(LogEntry.event == "status_changed")).all() == []
    _recover(session_factory, instance_id)
    assert _customer_status(session_factory) == "suspended"


def test_two_plans_restore_only_when_the_last_one_recovers(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    first, second = _setup(session_factory, invoices=("I1", "I2"))
    assert execute(session_factory, make_env(db_url, tmp_path)).done == 2
    assert _customer_status(session_factory) == "suspended"
    _recover(session_factory, first)
    assert _customer_status(session_factory) == "suspended"  # the other plan still holds it
    _recover(session_factory, second)
    assert _customer_status(session_factory) == "active"


def test_cancelled_is_never_set(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    [instance_id] = _setup(session_factory, status="cancelled")
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats.skipped == 1
    assert _customer_status(session_factory) == "active"
    with session_factory() as s:
        assert s.scalars(select(StatusChange)).all() == []
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.status == "skipped"
        assert instance.result is not None and "cancelled is final" in instance.result["reason"]
