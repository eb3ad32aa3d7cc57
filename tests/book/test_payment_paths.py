"""One payment recorded the short way (recoup.book.payments.record_one: `POST /payments`, a file
of one row) does exactly what the import of any batch does with it (R8): the same rows, log
entries (so the same webhook events), plans closed or recovered, statuses restored, invoices
checked again, the same answer and the same refusals, on books of every shape. On SQLite and
PostgreSQL; each way runs in a savepoint rolled back, on the same book."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.book import payments, repository, writes
from recoup.book.imports import ImportReport, parse
from recoup.book.rows import parse_payment
from recoup.book.schemas import PaymentCreate, PaymentRead
from recoup.core.db import UTCDateTime
from recoup.core.errors import InvalidInput
from recoup.models import (
    ActionInstance,
    Customer,
    Invoice,
    InvoiceCheck,
    LogEntry,
    Payment,
    PaymentAllocation,
    Plan,
    PlanInvoice,
    StatusChange,
    Task,
)
from recoup.plans import repository as plan_repository
from tests.factories import (
    make_action_instance,
    make_customer,
    make_customer_plan,
    make_invoice,
    make_plan,
    make_policy,
    make_settings,
)

PAID_ON = date(2026, 3, 1)
SNAPSHOT = (
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    Plan,
    PlanInvoice,
    ActionInstance,
    Task,
    StatusChange,
    LogEntry,
    InvoiceCheck,
)
# ids a sequence gives the rows a payment writes: not rolled back with it on PostgreSQL
RENUMBERED = (PaymentAllocation, LogEntry)


# --- the books -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    amount: int  # cents
    due: int  # cents still due
    status: str
    due_in: int  # days from the payment's date (negative: overdue)
    currency: str = "EUR"
    customer: str = "C1"
    disputed: bool = False


@dataclass(frozen=True)
class Spec:
    mode: str
    invoices: tuple[Owed, ...]  # the payment names the first
    plan: str | None  # the status of the plan over the first invoice (its own, or C1's)
    covered: int  # customer mode: how many of C1's EUR invoices the plan covers
    other_plan: str | None  # a plan of another invoice of C1 (invoice mode)
    pending: int  # unfinished action instances of the plan
    task: bool  # an open task on it
    status_change: str | None  # None, "own" (the plan suspended C1), "shared" (the other too)
    min_balance: str | None  # the policy's threshold in EUR (customer mode closes below it)
    pay: int  # cents
    named: str | None  # "first", another invoice id (refusals), None: spread over C1's
    currency: str
    customer: str
    before: str | None  # "same" or "other": the payment id was recorded before
    loaded: bool  # the session holds the invoices and plans as objects when it pays


STATUSES = ("open", "partially_paid", "paid", "cancelled")


@st.composite
def owed(draw: st.DrawFn, *, currency: str = "EUR", customer: str = "C1") -> Owed:
    amount = draw(st.integers(1, 20_000))
    status = draw(st.sampled_from(STATUSES))
    if status == "open":
        due = amount
    elif status == "partially_paid":
        due = draw(st.integers(0, amount))
    else:
        due = draw(st.sampled_from([0, 0, amount]))  # a paid invoice still showing a debt
    return Owed(
        amount=amount,
        due=due,
        status=status,
        due_in=draw(st.integers(-60, 20)),
        currency=currency,
        customer=customer,
        disputed=draw(st.booleans()) and draw(st.booleans()),
    )


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    mode = draw(st.sampled_from(["invoice", "customer"]))
    first = draw(owed())
    others = draw(st.lists(owed(), max_size=2))
    others += draw(st.lists(owed(currency="USD"), max_size=1))
    invoices = (first, *others)
    plan = draw(st.sampled_from([None, "active", "paused", "unrecovered", "recovered", "stopped"]))
    eur = sum(1 for i in invoices if i.currency == "EUR")
    due = first.due
    pay = draw(
        st.one_of(
            st.just(max(due, 1)),  # exactly what is due
            st.integers(1, max(1, due)),  # part of it
            st.integers(due + 1, due + 5_000),  # more than is due
            st.integers(1, 30_000),
        )
    )
    spread = draw(st.booleans())
    if spread:  # oldest due first over what is due in its currency
        due = sum(i.due for i in invoices if i.currency == "EUR" and i.status in STATUSES[:2])
        pay = draw(st.sampled_from([max(due, 1), max(1, due // 2), due + 700, 1]))
    refusal = draw(st.sampled_from([None] * 8 + ["unknown", "customer", "currency", "before"]))
    if spread and refusal == "unknown":
        refusal = None
    return Spec(
        mode=mode,
        invoices=invoices,
        plan=plan,
        covered=draw(st.integers(1, eur)),
        other_plan=(
            draw(st.sampled_from([None, "active", "paused"]))
            if mode == "invoice" and len(others)
            else None
        ),
        pending=draw(st.integers(0, 2)),
        task=draw(st.booleans()),
        status_change=draw(st.sampled_from([None, "own", "shared"])),
        min_balance=draw(st.sampled_from([None, "50.00", "150.00"])),
        pay=pay,
        named=None if spread else "I-missing" if refusal == "unknown" else "first",
        currency="USD" if refusal == "currency" else "EUR",  # spread: over C1's USD invoices
        customer=("C-missing" if spread else "C2") if refusal == "customer" else "C1",
        before=draw(st.sampled_from(["same", "other"])) if refusal == "before" else None,
        loaded=draw(st.booleans()),
    )


def cents(value: int) -> Decimal:
    return Decimal(value) / 100


def build(session: Session, spec: Spec) -> None:
    if spec.mode == "customer":
        make_settings(session, mode="customer")
    c1 = make_customer(session, "C1")
    make_customer(session, "C2")
    policy = make_policy(session, min_balance={"EUR": spec.min_balance} if spec.min_balance else {})
    invoices = [
        make_invoice(
            session,
            owed.customer,
            f"I{n}",
            due_date=PAID_ON + timedelta(days=owed.due_in),
            amount=cents(owed.amount),
            amount_due=cents(owed.due),
            currency=owed.currency,
            status=owed.status,
            disputed=owed.disputed,
        )
        for n, owed in enumerate(spec.invoices)
    ]
    first = invoices[0]
    plan: Plan | None = None
    if spec.plan is not None:
        is_open = spec.plan in ("active", "paused")
        closed = {} if is_open else {"closed_on": PAID_ON - timedelta(days=3)}
        paused = {"paused_on": PAID_ON - timedelta(days=4)} if spec.plan == "paused" else {}
        if spec.mode == "invoice":
            plan = make_plan(
                session,
                first,
                policy,
                status=spec.plan,
                opened_on=PAID_ON - timedelta(days=30),
                **closed,
                **paused,
            )
        else:
            eur = [i for i in invoices if i.currency == "EUR"]
            plan = make_customer_plan(
                session,
                c1,
                eur[: spec.covered],
                policy=policy,
                status=spec.plan,
                opened_on=PAID_ON - timedelta(days=30),
                open_key="cust:C1:EUR" if is_open else None,
                **closed,
                **paused,
            )
    other: Plan | None = None
    if spec.other_plan is not None:
        other = make_plan(
            session,
            invoices[1],
            policy,
            status=spec.other_plan,
            opened_on=PAID_ON - timedelta(days=20),
        )
    if plan is not None:
        for n in range(spec.pending):
            make_action_instance(
                session,
                plan,
                level="first_notice",
                action=f"step_{n}",
                status="pending" if n == 0 else "running",
            )
        if spec.task:
            session.add(
                Task(
                    plan_id=plan.id,
                    level="first_notice",
                    action="call",
                    role="collector",
                    status="open",
                    created_on=PAID_ON - timedelta(days=2),
                )
            )
        if spec.status_change is not None:
            c1.status = "suspended"
            session.add(
                StatusChange(
                    plan_id=plan.id,
                    customer_id="C1",
                    previous_status="active",
                    new_status="suspended",
                )
            )
            if spec.status_change == "shared" and other is not None:
                session.add(
                    StatusChange(
                        plan_id=other.id,
                        customer_id="C1",
                        previous_status="suspended",
                        new_status="blocked",
                    )
                )
    if spec.before is not None:
        amount = cents(spec.pay) if spec.before == "same" else cents(spec.pay) + 1
        session.add(
            Payment(
                id="P1",
                customer_id=spec.customer,
                invoice_id=_named(spec),
                amount=amount,
                currency=spec.currency,
                date=PAID_ON,
            )
        )
    session.flush()


def _named(spec: Spec) -> str | None:
    return "I0" if spec.named == "first" else spec.named


def body(spec: Spec) -> PaymentCreate:
    return PaymentCreate(
        id="P1",
        customer_id=spec.customer,
        invoice_id=_named(spec),
        amount=cents(spec.pay),
        currency=spec.currency,
        date=PAID_ON,
    )


# --- what a way of paying did --------------------------------------------------------------------


def snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every row a payment can write or change, as the database has it; timestamps as whether
    they are set (they are the clock's), renumbered ids left out."""
    session.flush()
    tables: dict[str, list[dict[str, Any]]] = {}
    for model in SNAPSHOT:
        table = model.__table__
        order = list(table.primary_key.columns)
        rows = []
        for row in session.execute(select(table).order_by(*order)).mappings():
            values = {}
            for column in table.columns:
                if model in RENUMBERED and column.name == "id":
                    continue
                value = row[column]
                values[column.name] = (
                    value is not None if isinstance(column.type, UTCDateTime) else value
                )
            rows.append(values)
        tables[table.name] = rows
    return tables


@dataclass
class Outcome:
    tables: dict[str, list[dict[str, Any]]]
    answer: Any  # the answer's JSON, a report's fields, or the refusal
    seen: list[Any]  # what the objects the session held show afterwards


def refusal(exc: InvalidInput) -> Any:
    return (
        "refused",
        exc.template,
        exc.details,
        [(e.field, e.message, e.index) for e in exc.errors],
    )


def report_fields(report: ImportReport) -> Any:
    return (
        report.rows,
        report.created,
        report.unchanged,
        report.allocations,
        report.unallocated,
        report.plans_recovered,
        report.rechecked,
    )


def general(session: Session, rows: Any, *, actor: str | None) -> ImportReport:
    """The import of a batch, whatever its size."""
    return payments.import_payments(session, rows, actor=actor, short=False)


def record_read_back(session: Session, payment: PaymentCreate, *, actor: str) -> Any:
    """writes.record_payment as it was before the short way: the import, then what it wrote
    read back."""
    report = writes._one(general, session, payment.row(), actor)
    stored = repository.get_payment_or_not_found(session, payment.id)
    recorded = writes.PaymentRecorded(
        id=stored.id,
        customer_id=stored.customer_id,
        invoice_id=stored.invoice_id,
        amount=stored.amount,
        currency=stored.currency,
        date=stored.date,
        allocations=repository.allocations_of_payment(session, payment.id),
        unallocated=sum((u.amount for u in report.unallocated), start=Decimal(0)),
        plans_closed=[plan_repository.get_or_not_found(session, i) for i in report.plans_recovered],
        created=report.created > 0,
    )
    return recorded


def answered(recorded: writes.PaymentRecorded) -> Any:
    return (recorded.created, PaymentRead.model_validate(recorded).model_dump(mode="json"))


def attempt(session: Session, spec: Spec, pay: Callable[[Session], Any]) -> Outcome:
    nested = session.begin_nested()
    try:
        held: list[Any] = []
        if spec.loaded:
            held = [session.get(Invoice, f"I{n}") for n in range(len(spec.invoices))]
            held += list(session.scalars(select(Plan).order_by(Plan.id)))
        try:
            answer = pay(session)
        except InvalidInput as exc:
            answer = refusal(exc)
        seen = [
            (o.amount_due, o.status) if isinstance(o, Invoice) else (o.status, o.balance)
            for o in held
        ]
        return Outcome(snapshot(session), answer, seen)
    finally:
        nested.rollback()
        session.expunge_all()


def check_same_ways(session: Session, spec: Spec) -> bool:
    """True when the short way recorded the payment (else it left it to the import)."""
    build(session, spec)
    session.expunge_all()
    before = snapshot(session)
    payment = body(spec)
    rows = [payment.row()]

    # the short way alone: it records the payment, or writes nothing and leaves it to the import
    def short(session: Session) -> Any:
        value = parse("payments", rows, parse_payment, None).values[0]
        one = payments.record_one(session, value, actor="tester")
        if one is None:
            assert snapshot(session) == before
            return None
        return report_fields(one.report)

    short_way = attempt(session, spec, short)
    many = attempt(session, spec, lambda s: report_fields(general(s, rows, actor="tester")))
    if short_way.answer is not None:
        assert short_way.answer == many.answer
        assert short_way.tables == many.tables
        assert short_way.seen == many.seen
    # the import of one row, whichever way it takes
    one_row = attempt(
        session, spec, lambda s: report_fields(payments.import_payments(s, rows, actor="tester"))
    )
    assert one_row.answer == many.answer
    assert one_row.tables == many.tables
    assert one_row.seen == many.seen
    # the API's service: its answer as the stored rows read back give it
    new = attempt(
        session, spec, lambda s: answered(writes.record_payment(s, payment, actor="tester"))
    )
    old = attempt(session, spec, lambda s: answered(record_read_back(s, payment, actor="tester")))
    assert new.answer == old.answer
    assert new.tables == old.tables == many.tables
    assert new.seen == old.seen
    return short_way.answer is not None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=specs())
def test_one_payment_the_short_way_does_what_the_import_does(
    session_factory: sessionmaker[Session], spec: Spec
) -> None:
    with session_factory() as session:
        try:
            short = check_same_ways(session, spec)
        finally:
            session.rollback()
    event("recorded the short way" if short else "left to the import")


# the shapes that matter most, each named (and run on every change, whatever hypothesis draws)
BASE = Spec(
    mode="invoice",
    invoices=(Owed(10_000, 10_000, "open", -10), Owed(5_000, 5_000, "open", -40)),
    plan="active",
    covered=1,
    other_plan=None,
    pending=1,
    task=True,
    status_change="own",
    min_balance=None,
    pay=10_000,
    named="first",
    currency="EUR",
    customer="C1",
    before=None,
    loaded=False,
)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="pays-off-the-plan"),
        pytest.param({"pay": 1}, id="partial"),
        pytest.param({"pay": 1, "loaded": True}, id="partial-objects-held"),
        pytest.param({"loaded": True}, id="pays-off-objects-held"),
        pytest.param({"pay": 15_000}, id="overpaid"),
        pytest.param({"plan": None}, id="no-plan"),
        pytest.param({"plan": "paused"}, id="paused-plan"),
        pytest.param({"plan": "unrecovered"}, id="after-the-end"),
        pytest.param({"plan": "unrecovered", "pay": 5_000}, id="after-the-end-partial"),
        pytest.param({"other_plan": "active", "status_change": "shared"}, id="status-shared"),
        pytest.param({"mode": "customer", "covered": 2}, id="customer-plan-still-owed"),
        pytest.param({"mode": "customer", "covered": 2, "pay": 1}, id="customer-partial"),
        pytest.param(
            {"mode": "customer", "covered": 2, "min_balance": "60.00"}, id="customer-below-min"
        ),
        pytest.param(
            {"mode": "customer", "covered": 1, "plan": "unrecovered"}, id="customer-after-the-end"
        ),
        pytest.param(
            {"invoices": (Owed(10_000, 0, "paid", -10),), "pay": 500}, id="invoice-paid-already"
        ),
        pytest.param({"before": "same"}, id="recorded-before"),
        pytest.param({"before": "other"}, id="recorded-before-otherwise"),
        pytest.param({"named": "I-missing"}, id="unknown-invoice"),
        pytest.param({"named": None}, id="spread-pays-the-oldest"),
        pytest.param({"named": None, "pay": 12_000}, id="spread-over-two"),
        pytest.param({"named": None, "pay": 20_000}, id="spread-beyond-what-is-due"),
        pytest.param({"named": None, "pay": 12_000, "loaded": True}, id="spread-objects-held"),
        pytest.param({"named": None, "pay": 12_000, "other_plan": "active"}, id="spread-two-plans"),
        pytest.param(
            {"named": None, "mode": "customer", "covered": 2, "pay": 12_000},
            id="spread-customer-plan",
        ),
        pytest.param({"named": None, "currency": "USD"}, id="spread-nothing-due-in-it"),
        pytest.param({"named": None, "customer": "C2"}, id="spread-customer-owes-nothing"),
        pytest.param({"named": None, "customer": "C-missing"}, id="spread-unknown-customer"),
        pytest.param({"named": None, "before": "same"}, id="spread-recorded-before"),
        pytest.param({"customer": "C2"}, id="another-customers-invoice"),
        pytest.param({"currency": "USD"}, id="another-currency"),
    ],
)
def test_each_shape_the_short_way_does_what_the_import_does(
    session_factory: sessionmaker[Session], changes: dict[str, Any]
) -> None:
    spec = Spec(**{**BASE.__dict__, **changes})
    with session_factory() as session:
        try:
            short = check_same_ways(session, spec)
        finally:
            session.rollback()
    refused = (
        "before" in changes
        or changes.get("named", "first") not in ("first", None)
        or (changes.get("named", "first") is not None and {"customer", "currency"} & set(changes))
        or changes.get("customer") == "C-missing"
    )
    assert short == (not refused)


def test_the_short_way_is_taken_for_a_new_payment_naming_its_invoice(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        build(session, BASE)
        value = parse("payments", [body(BASE).row()], parse_payment, None).values[0]
        one = payments.record_one(session, value, actor="tester")
        assert one is not None
        assert [(a.invoice_id, a.amount) for a in one.allocations] == [("I0", Decimal("100.00"))]
        assert [p.status for p in one.plans_closed] == ["recovered"]
        session.rollback()
