"""`recoup explain`: the evaluator's reasons for one invoice, on any date, without changing
anything (it evaluates exactly what the run would)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.domain.enums import InvoiceStatus, Mode, PlanStatus
from recoup.domain.evaluator import (
    ClosePlan,
    CustomerFacts,
    OpenPlan,
    QueueReminder,
    ReachLevel,
    SkipLevel,
    SkipReminder,
    Unit,
    evaluate,
)
from recoup.domain.rules import resolve_policy
from recoup.models import Customer, Invoice, Plan
from recoup.plans.links import plan_links
from recoup.runs.run import (
    OPEN_INVOICE_VALUES,
    OPEN_PLAN_VALUES,
    _invoice_facts,
    _plan_counts,
    _plan_state,
    _reminders_done,
    customer_fields,
    load_domain_config,
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
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} not found")
    customer = session.get(Customer, invoice.customer_id)
    assert customer is not None
    config = load_domain_config(session)
    resolution = resolve_policy(customer_fields(customer), config.policies)
    mode = config.settings.mode
    plan: Plan | None
    if mode is Mode.invoice:
        invoices = [invoice]
        plan = session.scalars(
            select(Plan).where(Plan.invoice_id == invoice.id).order_by(Plan.id.desc())
        ).first()
        joined = frozenset({invoice.id})
    else:
        links = plan_links()
        covering = session.scalar(select(links.c.plan_id).where(links.c.invoice_id == invoice.id))
        plan = session.get(Plan, covering) if covering else None
        if plan is None:
            plan = session.scalars(
                select(Plan).where(
                    Plan.customer_id == customer.id,
                    Plan.currency == invoice.currency,
                    Plan.status.in_(OPEN_PLAN_VALUES),
                )
            ).first()
        invoices = list(
            session.scalars(
                select(Invoice).where(
                    Invoice.customer_id == customer.id,
                    Invoice.currency == invoice.currency,
                    Invoice.status.in_(OPEN_INVOICE_VALUES),
                )
            )
        )
        if invoice not in invoices:
            invoices.append(invoice)
        joined = frozenset(
            session.scalars(
                select(links.c.invoice_id).where(links.c.plan_id == plan.id)
            ).all()
            if plan
            else []
        )
    tasks, unfinished = _plan_counts(session, [plan.id] if plan else [])
    done = _reminders_done(session, [inv.id for inv in invoices])
    unit = Unit(
        today=as_of,
        settings=config.settings,
        customer=CustomerFacts(customer.id, customer.excluded, customer.status),
        currency=invoice.currency,
        invoices=tuple(_invoice_facts(inv) for inv in invoices),
        policy=resolution.policy,
        policy_reason=resolution.reason,
        plan=_plan_state(plan, tasks, unfinished, joined) if plan else None,
        reminders_done=frozenset(x for inv in invoices for x in done.get(inv.id, set())),
        actions={a.code: a for a in config.actions},
    )
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
