"""The book the late-invoice, plan and customer page tests work on: two customers, five late
invoices (one below the minimum balance: no plan) and one not yet due, a policy with a fee, a
letter, a call and a suspension, and a run today with `catch_up: all`, so that:

    I5  C1 EUR   20.00  due today-30  no plan (below 50 EUR)
    I3  C2 USD  900.00  due today-20  level call (a task), next final on due+30
    I1  C1 EUR  400.00  due today-12  level letter (its 15 EUR fee, its PDF letter), next call
    I4  C2 USD  300.00  due today-9   level notice (a fee)
    I2  C1 EUR  250.00  due today-7   level notice (a fee)
    I6  C1 EUR  100.00  due today+5   not late

Dates follow the machine's clock: the pages count on today's business date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from recoup.core.sessions import transaction
from recoup.models import Plan
from recoup.schedule.service import recheck_invoices
from tests.factories import make_acme_customer, make_acme_invoice
from tests.runs.test_run_e2e import Cli

POLICY = """
settings:
  mode: invoice
  invoice_types: [commercial]
  timezone: UTC
  catch_up: all
templates:
  - {code: notice, channel: email, language: en, subject: "Overdue: {{ balance|money }}", body: "Please pay {{ balance|money }}."}
  - {code: final_letter, channel: letter, language: en, body: "LETTER about invoice {{ invoice.id }} ({{ invoice.number }}): {{ balance|money }} is overdue."}
actions:
  - {code: email_notice, type: send_email, template: notice}
  - {code: fee_15, type: late_fee_fixed, amounts: {EUR: "15.00", USD: "15.00"}, service: LATE_FEE}
  - {code: letter_final, type: send_letter, template: final_letter}
  - {code: call, type: manual, role: collector, instructions: "Call the customer"}
  - {code: suspend, type: change_account_status, status: suspended}
policies:
  - name: Standard
    default: true
    priority: 10
    min_balance: {EUR: "50.00"}
    levels:
      - {code: notice, days: 5, actions: [email_notice, fee_15]}
      - {code: letter, days: 10, actions: [letter_final]}
      - {code: call, days: 15, actions: [call]}
      - {code: final, days: 30, end: true, actions: [suspend]}
"""

INVOICES = {  # id: (customer, currency, amount, days overdue)
    "I5": ("C1", "EUR", "20.00", 30),
    "I3": ("C2", "USD", "900.00", 20),
    "I1": ("C1", "EUR", "400.00", 12),
    "I4": ("C2", "USD", "300.00", 9),
    "I2": ("C1", "EUR", "250.00", 7),
    "I6": ("C1", "EUR", "100.00", -5),
}
LATE_ORDER = ["I5", "I3", "I1", "I4", "I2"]  # oldest due first


@dataclass(frozen=True)
class PlansBook:
    today: date
    plans: dict[str, int]  # invoice id → its plan's id

    def due(self, invoice_id: str) -> date:
        return self.today - timedelta(days=INVOICES[invoice_id][3])


def seed_plans_book(db_url: str, tmp_path: Path) -> PlansBook:
    """The book above, run today. Needs the `env` fixture (the CLI reads RECOUP_*)."""
    today = datetime.now(UTC).date()
    with transaction(db_url) as session:
        acme = make_acme_customer(session, "C1", currency="EUR", phone="+33 1 23 45 67 89")
        bolt = make_acme_customer(
            session, "C2", name="Bolt Inc", email="ap@bolt.test", currency="USD", country="US"
        )
        for invoice_id, (customer, currency, amount, late) in INVOICES.items():
            make_acme_invoice(
                session,
                acme if customer == "C1" else bolt,
                invoice_id,
                currency=currency,
                amount=amount,  # type: ignore[arg-type]
                due_date=today - timedelta(days=late),
            )
        recheck_invoices(session, list(INVOICES))
    cli = Cli(tmp_path)
    cli("config", "apply", cli.file("plans-policy.yaml", POLICY))
    summary = cli.json("run", "--as-of", today.isoformat())[0]
    assert summary.get("failed", 0) == 0, summary
    with transaction(db_url) as session:
        plans = {p.invoice_id: p.id for p in session.scalars(select(Plan)) if p.invoice_id}
    assert sorted(plans) == ["I1", "I2", "I3", "I4"], plans
    return PlansBook(today=today, plans=plans)


def plan_statuses(db_url: str) -> dict[str, str]:
    """invoice id → its plan's status, read from the database."""
    with transaction(db_url) as session:
        return {p.invoice_id: p.status for p in session.scalars(select(Plan)) if p.invoice_id}
