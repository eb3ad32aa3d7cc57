"""A small book for the pages: Acme owes 1,200.00 EUR (45 days late) and 300.00 EUR (10 days),
Bolt 80.00 USD (not yet due); Acme's first invoice has a plan at the `call` level with a task
for collectors, Bolt's a task for account managers; Cora paid 250.00 EUR three days ago and
her plan ended recovered; today's run finished. Dated from the real business date, as the
pages are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from recoup.core.clock import utc_now
from recoup.core.sessions import transaction
from recoup.models import Payment, Run, Task
from recoup.settings.service import business_today
from tests.factories import make_customer, make_invoice, make_plan, make_policy


@dataclass(frozen=True)
class Book:
    today: date
    collector_task: int
    manager_task: int
    plan_id: int


def seed(db_url: str) -> Book:
    with transaction(db_url) as session:
        today = business_today(session)
        acme = make_customer(session, "C1", name="Acme SARL", phone="+33 1 23 45 67 89")
        bolt = make_customer(session, "C2", name="Bolt Inc", phone=None, currency="USD")
        late = make_invoice(
            session, acme, "I1", due_date=today - timedelta(days=45), amount="1200.00"
        )
        make_invoice(session, acme, "I2", due_date=today - timedelta(days=10), amount="300.00")
        soon = make_invoice(
            session, bolt, "I3", due_date=today + timedelta(days=5), amount="80.00", currency="USD"
        )
        policy = make_policy(session, "Standard")
        plan = make_plan(session, late, policy, level="call", opened_on=today - timedelta(days=40))
        usd_plan = make_plan(session, soon, policy, level="call", opened_on=today)
        call = Task(
            plan_id=plan.id,
            level="call",
            action="call",
            role="collector",
            instructions="Call the customer about the overdue invoice",
            status="open",
            created_on=today - timedelta(days=2),
        )
        manager = Task(
            plan_id=usd_plan.id,
            level="call",
            action="visit",
            role="account_manager",
            instructions="Visit the customer",
            status="open",
            created_on=today - timedelta(days=1),
        )
        session.add_all([call, manager])
        # Cora paid three days ago: her plan ended recovered (the weekly chart, the rate)
        cora = make_customer(session, "C3", name="Cora GmbH")
        paid = make_invoice(
            session, cora, "I4", due_date=today - timedelta(days=20), amount="250.00",
            status="paid",
        )  # fmt: skip
        make_plan(
            session, paid, policy, status="recovered", level="call", balance=Decimal(0),
            closed_on=today - timedelta(days=3),
        )  # fmt: skip
        session.add(
            Payment(
                id="P1", customer_id="C3", invoice_id="I4", amount=Decimal("250.00"),
                currency="EUR", date=today - timedelta(days=3),
            )
        )  # fmt: skip
        now = utc_now()
        session.add(Run(as_of=today, status="finished", started_at=now, finished_at=now))
        session.flush()
        return Book(today, call.id, manager.id, plan.id)
