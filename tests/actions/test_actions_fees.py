"""Late fees and interest: the pure arithmetic (tables, no database) and the executors on
both databases, each charging exactly once per action instance (R13)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.fees import Fee, NoFee, days_overdue, fixed_fee, interest, percent_fee
from recoup.domain.money import Money
from recoup.models import ActionInstance, Charge, LogEntry
from tests.factories import (
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

D = Decimal

# --- pure arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amounts", "currency", "expected"),
    [
        ({"EUR": D("15.00"), "USD": D("15")}, "EUR", Fee(D("15.00"), "EUR")),
        ({"EUR": D("15.00"), "USD": D("15")}, "USD", Fee(D("15.00"), "USD")),
        ({"EUR": D("15.00")}, "JPY", NoFee("no fixed fee for currency JPY")),
        ({"JPY": D("1500.4")}, "JPY", Fee(D("1500"), "JPY")),
        ({"EUR": D("2.005")}, "EUR", Fee(D("2.01"), "EUR")),  # half up, not half even
        ({"EUR": D("0")}, "EUR", NoFee("fixed fee is 0.00 EUR: nothing to charge")),
    ],
)
def test_fixed_fee(amounts: dict[str, Decimal], currency: str, expected: object) -> None:
    assert fixed_fee(amounts, currency) == expected


@pytest.mark.parametrize(
    ("balance", "rate", "minimum", "maximum", "expected"),
    [
        (Money(D("1000.00"), "EUR"), D("1.5"), None, None, D("15.00")),
        (Money(D("333.33"), "EUR"), D("1"), None, None, D("3.33")),
        (Money(D("100.50"), "EUR"), D("1"), None, None, D("1.01")),  # 1.005 half up
        (Money(D("100.00"), "EUR"), D("1"), D("5.00"), None, D("5.00")),  # raised to min
        (Money(D("10000.00"), "EUR"), D("2"), D("5.00"), D("50.00"), D("50.00")),  # capped
        (Money(D("1000.00"), "EUR"), D("2"), D("5.00"), D("50.00"), D("20.00")),  # within
        (Money(D("12345"), "JPY"), D("1.5"), None, None, D("185")),
        (Money(D("1.000"), "KWD"), D("12.345"), None, None, D("0.123")),
    ],
)
def test_percent_fee(
    balance: Money,
    rate: Decimal,
    minimum: Decimal | None,
    maximum: Decimal | None,
    expected: Decimal,
) -> None:
    assert percent_fee(balance, rate, minimum=minimum, maximum=maximum) == Fee(
        expected, balance.currency
    )


def test_percent_fee_on_nothing_is_no_fee() -> None:
    assert isinstance(percent_fee(Money(D("0"), "EUR"), D("2")), NoFee)
    assert isinstance(percent_fee(Money(D("0.10"), "EUR"), D("1")), NoFee)  # rounds to 0.00


@pytest.mark.parametrize(
    ("balance", "annual_rate", "days", "expected"),
    [
        (Money(D("1000.00"), "EUR"), D("10"), 365, Fee(D("100.00"), "EUR")),
        (Money(D("1000.00"), "EUR"), D("10"), 50, Fee(D("13.70"), "EUR")),  # 13.6986…
        (Money(D("1000.00"), "EUR"), D("10"), 0, NoFee("0 days overdue: no interest")),
        (Money(D("1000.00"), "EUR"), D("10"), -3, NoFee("-3 days overdue: no interest")),
        (Money(D("100000"), "JPY"), D("14.6"), 30, Fee(D("1200"), "JPY")),
        (Money(D("0.00"), "EUR"), D("10"), 30, NoFee("balance is 0.00 EUR: nothing to charge")),
    ],
)
def test_interest(balance: Money, annual_rate: Decimal, days: int, expected: object) -> None:
    assert interest(balance, annual_rate, days) == expected


@pytest.mark.parametrize(
    ("today", "anchor", "paused", "expected"),
    [
        (date(2024, 3, 1), date(2024, 1, 1), 0, 60),
        (date(2024, 3, 1), date(2024, 1, 1), 10, 50),
        (date(2024, 1, 1), date(2024, 1, 4), 0, -3),
    ],
)
def test_days_overdue(today: date, anchor: date, paused: int, expected: int) -> None:
    assert days_overdue(today, anchor, paused) == expected


# --- executors on both databases -----------------------------------------------------------


def _setup(
    factory: sessionmaker[Session],
    action_type: str,
    *,
    currency: str = "EUR",
    amount_due: Decimal = D("1000.00"),
    paused_days: int = 0,
    **params: object,
) -> int:
    with factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(
            s, customer, currency=currency, amount=amount_due, due_date=date(2024, 1, 1)
        )
        action = make_action(s, "fee", action_type, service="LATE_FEE", **params)
        policy = make_acme_policy(s, levels=[("first", 5, ["fee"]), ("final", 90, [])])
        plan = make_plan(s, invoice, policy, level="first", paused_days=paused_days)
        return make_instance(s, action, plan=plan, level="first").id


def _charges(factory: sessionmaker[Session]) -> list[Charge]:
    with factory() as s:
        return list(s.scalars(select(Charge)).all())


def _execute_twice(factory: sessionmaker[Session], env_cfg: object, instance_id: int) -> None:
    stats = execute(factory, env_cfg)  # type: ignore[arg-type]
    assert stats.done + stats.skipped == 1
    rearm(factory, instance_id)
    stats = execute(factory, env_cfg)  # type: ignore[arg-type]
    assert stats.done + stats.skipped == 1


def test_fixed_fee_charged_once(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id = _setup(session_factory, "late_fee_fixed", amounts={"EUR": "15.00"})
    _execute_twice(session_factory, make_env(db_url, tmp_path), instance_id)
    charges = _charges(session_factory)
    assert len(charges) == 1
    charge = charges[0]
    assert (charge.amount, charge.currency, charge.service) == (D("15.00"), "EUR", "LATE_FEE")
    assert (charge.customer_id, charge.invoice_id, charge.kind) == ("C1", "I1", "late_fee_fixed")
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.status == "done"
        assert instance.result is not None and instance.result["already_charged"] is True
        created = s.scalars(select(LogEntry).where(LogEntry.event == "charge_created")).all()
        assert len(created) == 1
        assert created[0].details["amount"] == "15.00"
        assert created[0].details["service"] == "LATE_FEE"


def test_fixed_fee_without_the_currency_is_a_logged_skip(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id = _setup(
        session_factory,
        "late_fee_fixed",
        currency="JPY",
        amount_due=D("150000"),
        amounts={"EUR": "15.00", "USD": "15.00"},
    )
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert (stats.done, stats.skipped) == (0, 1)
    assert _charges(session_factory) == []
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.status == "skipped"
        entry = s.scalars(select(LogEntry).where(LogEntry.event == "action_skipped")).one()
        assert entry.details["reason"] == "no fixed fee for currency JPY"
        assert (entry.plan_id, entry.action, entry.level) == (instance.plan_id, "fee", "first")


@pytest.mark.parametrize(
    ("amount_due", "params", "expected"),
    [
        (D("1000.00"), {"rate": "1.5"}, D("15.00")),
        (D("100.00"), {"rate": "1", "min": {"EUR": "5.00"}}, D("5.00")),
        (D("10000.00"), {"rate": "2", "min": {"EUR": "5"}, "max": {"EUR": "50.00"}}, D("50.00")),
        (D("10000.00"), {"rate": "2", "max": {"USD": "50.00"}}, D("200.00")),  # other currency
    ],
)
def test_percent_fee_charged_once(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    amount_due: Decimal,
    params: dict[str, object],
    expected: Decimal,
) -> None:
    instance_id = _setup(session_factory, "late_fee_percent", amount_due=amount_due, **params)
    _execute_twice(session_factory, make_env(db_url, tmp_path), instance_id)
    charges = _charges(session_factory)
    assert [(c.amount, c.currency, c.kind) for c in charges] == [
        (expected, "EUR", "late_fee_percent")
    ]


def test_interest_charged_once_counting_paused_days_out(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    # due 2024-01-01, today 2024-03-01: 60 days, 10 of them paused → 50 days
    instance_id = _setup(session_factory, "interest", annual_rate="10", paused_days=10)
    _execute_twice(session_factory, make_env(db_url, tmp_path), instance_id)
    charges = _charges(session_factory)
    assert [(c.amount, c.currency, c.kind) for c in charges] == [(D("13.70"), "EUR", "interest")]
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None and instance.result is not None
        assert instance.result["charge_id"] == charges[0].id


def test_fee_on_a_paid_plan_is_skipped(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer, amount_due=D("0"), status="paid")
        action = make_action(s, "fee", "late_fee_fixed", service="F", amounts={"EUR": "15"})
        policy = make_acme_policy(s, levels=[("first", 5, ["fee"]), ("final", 90, [])])
        plan = make_plan(s, invoice, policy, level="first")
        make_instance(s, action, plan=plan, level="first")
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert (stats.done, stats.skipped) == (0, 1)
    assert _charges(session_factory) == []
    with session_factory() as s:
        count = s.scalar(
            select(func.count()).select_from(LogEntry).where(LogEntry.event == "action_skipped")
        )
        assert count == 1
