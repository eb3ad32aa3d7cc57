"""What webhook bodies say about a plan or an invoice: plain JSON values, money as decimal
strings rounded to the currency's minor unit, dates as ISO text (SPEC §3, §5)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from recoup.domain.fees import days_overdue
from recoup.domain.money import money_text
from recoup.models import Invoice, Plan
from recoup.plans import repository as plan_repository


def plan_days_overdue(plan: Plan, today: date) -> int:
    paused = plan.paused_days
    if plan.paused_on is not None and plan.closed_on is None:
        paused += max(0, (today - plan.paused_on).days)  # the current pause counts too (R1)
    return max(0, days_overdue(today, plan.anchor_date, paused))


def plan_payload(plan: Plan, invoice_ids: list[str], today: date) -> dict[str, Any]:
    ids = list(invoice_ids) or ([plan.invoice_id] if plan.invoice_id else [])
    return {
        "id": plan.id,
        "status": plan.status,
        "level": plan.level,
        "policy": plan.policy.name if plan.policy is not None else None,
        "customer_id": plan.customer_id,
        "invoice_id": plan.invoice_id,
        "invoice_ids": ids,
        "currency": plan.currency,
        "balance": money_text(plan.balance, plan.currency),
        "days_overdue": plan_days_overdue(plan, today),
        "opened_on": plan.opened_on.isoformat(),
        "closed_on": plan.closed_on.isoformat() if plan.closed_on else None,
    }


def invoice_payload(invoice: Invoice, today: date) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "customer_id": invoice.customer_id,
        "status": invoice.status,
        "due_date": invoice.due_date.isoformat(),
        "currency": invoice.currency,
        "amount": money_text(invoice.amount, invoice.currency),
        "amount_due": money_text(invoice.amount_due, invoice.currency),
        "days_overdue": (today - invoice.due_date).days,
    }


def describe_plan(session: Session, plan: Plan, today: date) -> dict[str, Any]:
    return plan_payload(plan, plan_repository.invoice_ids(session, plan.id), today)


__all__ = [
    "describe_plan",
    "invoice_payload",
    "plan_days_overdue",
    "plan_payload",
]
