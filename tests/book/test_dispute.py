"""`recoup invoice dispute|undispute` (R10), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.book.invoices import dispute_invoice, undispute_invoice
from recoup.cli.main import app
from recoup.core.db import unit_of_work
from recoup.core.errors import Conflict, NotFound
from recoup.models import ActionInstance, Invoice, LogEntry, Plan
from recoup.schedule.service import CHECK_NOW, check_on
from tests.factories import (
    make_action_instance,
    make_customer,
    make_customer_plan,
    make_invoice,
    make_plan,
    make_settings,
)

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def invoice_with_plan(session_factory: sessionmaker[Session]) -> int:
    with unit_of_work(session_factory) as session:
        customer = make_customer(session, id="C1")
        invoice = make_invoice(session, customer, id="I1", due_date=date(2026, 1, 10))
        plan = make_plan(session, invoice, opened_on=date(2026, 1, 15))
        make_action_instance(session, plan)
        return plan.id


def test_dispute_pauses_and_undispute_resumes_the_plan(
    env: dict[str, str], session_factory: sessionmaker[Session], invoice_with_plan: int
) -> None:
    code, out = invoke("invoice", "dispute", "I1", "--reason", "wrong quantity", "--user", "eve")
    assert code == 0, out
    assert "invoice I1 disputed" in out and f"plan {invoice_with_plan} paused (dispute)" in out
    with session_factory() as session:
        invoice = session.get(Invoice, "I1")
        plan = session.get(Plan, invoice_with_plan)
        assert invoice is not None and plan is not None
        assert invoice.disputed is True and check_on(session, "I1") == CHECK_NOW
        assert plan.status == "paused" and plan.pause_reason == "dispute"
        assert plan.pause_until is None
        # pausing is not stopping: pending work waits
        assert session.scalars(select(ActionInstance.status)).all() == ["pending"]
        entries = session.scalars(select(LogEntry).order_by(LogEntry.id)).all()
        assert [e.event for e in entries] == ["invoice_disputed", "plan_paused"]
        assert entries[0].details == {"reason": "wrong quantity"} and entries[0].actor == "eve"
        assert entries[1].details["reason"] == "dispute"

    code, out = invoke("invoice", "undispute", "I1")
    assert code == 0, out
    assert "invoice I1 no longer disputed" in out and f"plan {invoice_with_plan} resumed" in out
    with session_factory() as session:
        invoice = session.get(Invoice, "I1")
        plan = session.get(Plan, invoice_with_plan)
        assert invoice is not None and plan is not None
        assert invoice.disputed is False
        assert plan.status == "active" and plan.pause_reason is None
        assert plan.next_step_on == CHECK_NOW
        events = session.scalars(select(LogEntry.event).order_by(LogEntry.id)).all()
        assert events[-2:] == ["invoice_undisputed", "plan_resumed"]


def test_dispute_unknown_invoice_is_a_clear_error(env: dict[str, str]) -> None:
    code, out = invoke("invoice", "dispute", "NOPE")
    assert code == 1
    assert "error: invoice 'NOPE' not found" in out
    code, out = invoke("invoice", "undispute", "NOPE")
    assert code == 1 and "not found" in out


def test_dispute_twice_and_undispute_undisputed_are_refused(
    session_factory: sessionmaker[Session], invoice_with_plan: int
) -> None:
    with unit_of_work(session_factory) as session, pytest.raises(Conflict, match="not disputed"):
        undispute_invoice(session, "I1")
    with unit_of_work(session_factory) as session:
        dispute_invoice(session, "I1", on=date(2026, 2, 1))
    with unit_of_work(session_factory) as session, pytest.raises(Conflict, match="already"):
        dispute_invoice(session, "I1")
    with unit_of_work(session_factory) as session, pytest.raises(NotFound):
        dispute_invoice(session, "ghost")


def test_paused_days_count_from_the_dispute(
    session_factory: sessionmaker[Session], invoice_with_plan: int
) -> None:
    with unit_of_work(session_factory) as session:
        result = dispute_invoice(session, "I1", on=date(2026, 2, 1), actor="eve")
        assert result.plans_paused == [invoice_with_plan]
    with unit_of_work(session_factory) as session:
        result = undispute_invoice(session, "I1", on=date(2026, 2, 11))
        assert result.plans_resumed == [invoice_with_plan]
    with session_factory() as session:
        plan = session.get(Plan, invoice_with_plan)
        assert plan is not None and plan.paused_days == 10


def test_a_plan_paused_by_hand_stays_paused(
    session_factory: sessionmaker[Session], invoice_with_plan: int
) -> None:
    with unit_of_work(session_factory) as session:
        plan = session.get(Plan, invoice_with_plan)
        assert plan is not None
        plan.status, plan.pause_reason, plan.paused_on = "paused", "holiday", date(2026, 1, 20)
    with unit_of_work(session_factory) as session:
        result = dispute_invoice(session, "I1", on=date(2026, 2, 1))
        assert result.plans_paused == [] and result.plans_untouched == [invoice_with_plan]
    with unit_of_work(session_factory) as session:
        result = undispute_invoice(session, "I1", on=date(2026, 2, 5))
        assert result.plans_resumed == []
    with session_factory() as session:
        plan = session.get(Plan, invoice_with_plan)
        assert plan is not None and plan.status == "paused" and plan.pause_reason == "holiday"


def test_dispute_without_plan_just_flags(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        make_invoice(session, make_customer(session, id="C1"), id="I1")
    with unit_of_work(session_factory) as session:
        result = dispute_invoice(session, "I1", reason="damaged")
        assert result.plans_paused == [] and result.disputed
    with session_factory() as session:
        assert session.get(Invoice, "I1").disputed is True  # type: ignore[union-attr]


def test_customer_mode_disputed_invoice_leaves_the_balance(
    session_factory: sessionmaker[Session],
) -> None:
    with unit_of_work(session_factory) as session:
        make_settings(session, mode="customer")
        customer = make_customer(session, id="C1")
        a = make_invoice(session, customer, id="A", due_date=date(2026, 1, 5), amount="60")
        b = make_invoice(session, customer, id="B", due_date=date(2026, 1, 9), amount="40")
        plan_id = make_customer_plan(session, customer, [a, b]).id
    with unit_of_work(session_factory) as session:
        result = dispute_invoice(session, "A", on=date(2026, 2, 15))
        assert result.plans_paused == [] and result.plans_recovered == []
    with session_factory() as session:
        plan = session.get(Plan, plan_id)
        assert plan is not None and plan.status == "active" and plan.balance == Decimal(40)
    with unit_of_work(session_factory) as session:
        undispute_invoice(session, "A", on=date(2026, 2, 16))
    with session_factory() as session:
        assert session.get(Plan, plan_id).balance == Decimal(100)  # type: ignore[union-attr]
    with unit_of_work(session_factory) as session:  # every invoice disputed: nothing is owed
        dispute_invoice(session, "A", on=date(2026, 2, 17))
        result = dispute_invoice(session, "B", on=date(2026, 2, 17))
        assert result.plans_recovered == [plan_id]
