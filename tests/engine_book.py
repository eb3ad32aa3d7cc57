"""A small book for the engine's date and balance tests: a reminder 3 days before the due date,
a notice at 5 days, an end level at 20 (a letter, interest, suspension), a minimum balance of
50 EUR; driven through the CLI."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.runs.test_run_e2e import CUSTOMERS, Cli, invoice_csv

DUE = date(2026, 3, 2)  # in the past of the machine's clock: no --future needed

POLICY = """
settings:
  mode: {mode}
  invoice_types: [commercial]
  timezone: UTC
templates:
  - {{code: reminder, channel: email, language: en, subject: "Due soon", body: "REMINDER {{{{ today|date }}}}: {{{{ balance|money }}}} is due on {{{{ invoice.due_date|date }}}}."}}
  - {{code: notice, channel: email, language: en, subject: "Overdue", body: "Please pay {{{{ balance|money }}}}."}}
  - {{code: final_letter, channel: letter, language: en, body: "LETTER {{{{ today|date }}}}: {{{{ plan.days_overdue }}}} days overdue, {{{{ balance|money }}}}."}}
actions:
  - {{code: email_reminder, type: send_email, template: reminder}}
  - {{code: email_notice, type: send_email, template: notice}}
  - {{code: letter_final, type: send_letter, template: final_letter}}
  - {{code: interest, type: interest, annual_rate: "36.5", service: INTEREST}}
  - {{code: suspend, type: change_account_status, status: suspended}}
policies:
  - name: Standard
    default: true
    priority: 10
    min_balance: {{EUR: "50.00"}}
    levels:
      - {{code: before_due, days: -3, reminder: true, actions: [email_reminder]}}
      - {{code: notice, days: 5, actions: [email_notice]}}
      - {{code: final, days: 20, end: true, actions: [letter_final, interest, suspend]}}
"""


class Book(Cli):
    def start(self, *, mode: str = "invoice", invoices: str | None = None) -> None:
        self("init")
        self("config", "apply", self.file("policy.yaml", POLICY.format(mode=mode)))
        self("import", "customers", self.file("customers.csv", CUSTOMERS))
        if invoices is None:
            invoices = invoice_csv(("I1", "C1", DUE, "100.00", "EUR"))
        self("import", "invoices", self.file("invoices.csv", invoices))

    def pay(self, invoice_id: str, amount: str, day: int, payment_id: str = "P1") -> str:
        csv = (
            "id,customer_id,invoice_id,amount,currency,date\n"
            f"{payment_id},C1,{invoice_id},{amount},EUR,{DUE + timedelta(days=day)}\n"
        )
        return self("import", "payments", self.file(f"{payment_id}.csv", csv))

    def plan(self, **match: Any) -> dict[str, Any]:
        found = [p for p in self.plans() if all(p[k] == v for k, v in match.items())]
        assert len(found) == 1, found
        return found[0]


def day(offset: int) -> str:
    return (DUE + timedelta(days=offset)).isoformat()


def make_book(tmp_path: Path) -> Book:
    return Book(tmp_path)
