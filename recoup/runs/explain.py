"""`recoup explain`: the evaluator's reasons for one invoice, on any date, without changing
anything (it evaluates exactly what the run would)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from recoup.core.db import undone
from recoup.core.errors import NotFound
from recoup.domain.enums import InvoiceStatus, Mode, PlanStatus
from recoup.domain.evaluator import (
    ClosePlan,
    OpenPlan,
    QueueReminder,
    ReachLevel,
    SkipLevel,
    SkipReminder,
    Unit,
    evaluate,
)
from recoup.models import Invoice, Plan
from recoup.runs.units import (
    CustomerRec,
    Deciding,
    PlanRec,
    coverage,
    customer_unit,
    invoice_unit,
    latest_plans,
    load_customers,
    load_domain_config,
    load_invoices,
    load_plan,
    open_plans,
    pair_invoices,
    plan_counts,
    reminders_done,
    unit_invoices,
)

SETTLED = frozenset({InvoiceStatus.paid.value, InvoiceStatus.cancelled.value})


@dataclass
class Explanation:
    invoice_id: str
    customer_id: str
    as_of: date
    policy: str | None
    policy_reason: str
    days_overdue: int | None
    balance: Decimal
    currency: str
    plan_id: int | None
    plan_status: str | None
    level: str | None
    today: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    next_level: str | None = None
    next_on: date | None = None
    invoice_status: str = InvoiceStatus.open.value

    def __post_init__(self) -> None:
        if self.invoice_status in SETTLED:  # nothing is overdue on an invoice no longer owed
            self.days_overdue = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def explain_invoice(session: Session, invoice_id: str, as_of: date) -> Explanation:
    """Why the invoice is (or is not) dunned on `as_of`, and what the run would do. Changes
    nothing: whatever explaining touches is undone, and the caller's own work is left as it
    was, uncommitted (the faces neither commit nor roll back around it)."""
    with undone(session):
        return _explain(session, invoice_id, as_of)


def _explain(session: Session, invoice_id: str, as_of: date) -> Explanation:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} not found")
    config = load_domain_config(session)
    ctx = Deciding(
        as_of=as_of, config=config, actions={a.code: a for a in config.actions}, explain=True
    )
    customer = load_customers(session, ctx, [invoice.customer_id])[invoice.customer_id]
    resolution = ctx.resolve(customer)
    unit, record = _unit(session, ctx, invoice, customer)
    plan = session.get(Plan, record.id) if record is not None else None
    outcome = evaluate(unit)
    today: list[str] = []
    for decision in outcome.decisions:
        if isinstance(decision, QueueReminder):
            today.append(
                f"send reminder {decision.level.code!r} ({', '.join(decision.level.actions)})"
            )
        elif isinstance(decision, SkipReminder):
            today.append(f"record reminder {decision.level.code!r} as skipped: {decision.reason}")
        elif isinstance(decision, OpenPlan):
            today.append(f"open a plan for {decision.balance} {invoice.currency}")
        elif isinstance(decision, ReachLevel):
            actions = ", ".join(decision.level.actions) or "no actions"
            today.append(f"reach level {decision.level.code!r} ({actions})")
        elif isinstance(decision, SkipLevel):
            today.append(f"skip level {decision.level.code!r}: {decision.reason}")
        elif isinstance(decision, ClosePlan):
            today.append(f"close the plan {decision.status.value}: {decision.reason}")
    status = plan.status if plan else None
    if plan is not None and PlanStatus(plan.status).is_final:
        reason = plan.stop_reason or ""
        today.append(f"nothing: the plan is {plan.status} since {plan.closed_on} {reason}".strip())
    return Explanation(
        invoice_id=invoice.id,
        customer_id=customer.id,
        as_of=as_of,
        policy=resolution.policy.name if resolution.policy else None,
        policy_reason=resolution.reason,
        days_overdue=outcome.days_overdue
        if outcome.days_overdue is not None
        else (as_of - invoice.due_date).days,
        balance=outcome.balance if plan or outcome.balance else invoice.amount_due,
        currency=invoice.currency,
        plan_id=plan.id if plan else None,
        plan_status=status,
        level=outcome.level,
        today=today,
        reasons=list(outcome.reasons),
        next_level=outcome.next_level.code if outcome.next_level else None,
        next_on=outcome.next_level_on,
        invoice_status=invoice.status,
    )


def _unit(
    session: Session, ctx: Deciding, invoice: Invoice, customer: CustomerRec
) -> tuple[Unit, PlanRec | None]:
    """The unit the run would decide for the invoice, loaded as the run loads it (units.py),
    and its plan. Customer mode: the plan that dunned the invoice, even one that has ended
    (explain says so), else the open plan of its customer and currency; the invoice itself is
    in the unit even when the run no longer looks at it (paid, cancelled)."""
    if ctx.config.settings.mode is Mode.invoice:
        [record] = load_invoices(session, [invoice.id])
        plan = latest_plans(session, [invoice.id]).get(invoice.id)
        tasks, unfinished = plan_counts(session, [plan.id] if plan else [])
        done = reminders_done(session, [invoice.id])
        return invoice_unit(ctx, customer, record, plan, tasks, unfinished, done), plan
    pair = (customer.id, invoice.currency)
    candidates = pair_invoices(session, [customer.id], [pair]).get(pair, [])
    if all(inv.id != invoice.id for inv in candidates):
        candidates = [*candidates, *load_invoices(session, [invoice.id])]
    covered = coverage(session, [inv.id for inv in candidates])
    covering = covered.get(invoice.id)
    if covering is not None:
        plan = load_plan(session, covering)
    else:
        plan = open_plans(session, [customer.id]).get(pair)
    invoices = unit_invoices(candidates, plan, covered)
    tasks, unfinished = plan_counts(session, [plan.id] if plan else [])
    done = reminders_done(session, [inv.id for inv in invoices])
    unit = customer_unit(
        ctx, customer, invoice.currency, invoices, plan, covered, tasks, unfinished, done
    )
    return unit, plan
