"""Every query of plans: a plan by id, the listing (whole or in cursor pages), the open plans
of invoices or of a customer's currency, the invoices a plan covers, and a plan with all its
parts (what `plan show` and the plan page show); what closing a plan reads (its unfinished
work, the account statuses it changed, the invoices its balance comes from) and what a
promise reads (what was promised, what was paid toward it). The open-plan condition is
`Plan.is_open`."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from recoup.charges import repository as charge_repository
from recoup.core.errors import NotFound
from recoup.core.schemas import (
    DEFAULT_LIMIT,
    check_limit,
    decode_id_cursor,
    split_page,
)
from recoup.domain.enums import PROMISE_PAUSE_REASON, PlanStatus
from recoup.log import repository as log_repository
from recoup.models import (
    ActionInstance,
    Charge,
    Customer,
    Document,
    Invoice,
    LogEntry,
    Payment,
    PaymentAllocation,
    Plan,
    PolicyRow,
    StatusChange,
    Task,
)
from recoup.plans.links import plan_links
from recoup.tasks import repository as task_repository


def find(session: Session, plan_id: int) -> Plan | None:
    return session.get(Plan, plan_id)


def get_or_not_found(session: Session, plan_id: int) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    return plan


def _filtered(
    status: str | None,
    customer_id: str | None,
    *,
    policy: str | None = None,
    level: str | None = None,
    currency: str | None = None,
) -> Select[Any]:
    query = select(Plan)
    if status:
        query = query.where(Plan.status == status)
    if customer_id:
        query = query.where(Plan.customer_id == customer_id)
    if policy:
        query = query.where(
            Plan.policy_id.in_(select(PolicyRow.id).where(PolicyRow.name == policy))
        )
    if level:
        query = query.where(Plan.level == level)
    if currency:
        query = query.where(Plan.currency == currency.upper())
    return query


def list_plans(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    limit: int = 1000,
) -> list[Plan]:
    """The newest `limit` matching plans, newest first."""
    query = _filtered(status, customer_id).order_by(Plan.id.desc()).limit(limit)
    return list(session.scalars(query))


def page(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    policy: str | None = None,
    level: str | None = None,
    currency: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[Plan], str | None]:
    """One page of the matching plans, newest first, and the cursor of the next page."""
    limit = check_limit(limit)
    query = _filtered(status, customer_id, policy=policy, level=level, currency=currency).order_by(
        Plan.id.desc()
    )
    if cursor is not None:
        query = query.where(Plan.id < decode_id_cursor(cursor))
    return split_page(list(session.scalars(query.limit(limit + 1))), limit)


def open_for_invoices(session: Session, invoice_ids: Collection[str]) -> list[Plan]:
    """The open invoice-mode plans of these invoices."""
    if not invoice_ids:
        return []
    return list(
        session.scalars(select(Plan).where(Plan.invoice_id.in_(list(invoice_ids)), Plan.is_open))
    )


def open_for_customers(session: Session, pairs: Iterable[tuple[str, str]]) -> list[Plan]:
    """The open customer-mode plans of these (customer, currency) pairs."""
    plans: list[Plan] = []
    for customer_id, currency in pairs:
        plans.extend(
            session.scalars(
                select(Plan).where(
                    Plan.customer_id == customer_id,
                    Plan.currency == currency,
                    Plan.invoice_id.is_(None),
                    Plan.is_open,
                )
            )
        )
    return plans


def ended_unrecovered_for_invoices(session: Session, invoice_ids: Collection[str]) -> list[Plan]:
    """The plans covering these invoices that ended `unrecovered` (R8 may still recover them)."""
    links = plan_links()
    return list(
        session.scalars(
            select(Plan)
            .where(
                Plan.id.in_(
                    select(links.c.plan_id).where(links.c.invoice_id.in_(list(invoice_ids)))
                ),
                Plan.status == PlanStatus.unrecovered.value,
            )
            .order_by(Plan.id)
        )
    )


def invoice_ids(session: Session, plan_id: int) -> list[str]:
    """The invoices the plan covers, in the order they joined it."""
    links = plan_links()
    return list(
        session.scalars(
            select(links.c.invoice_id)
            .where(links.c.plan_id == plan_id)
            .order_by(links.c.joined_on, links.c.invoice_id)
        )
    )


@dataclass(frozen=True)
class PlanParts:
    """A plan and everything attached to it, each list in the order it happened."""

    plan: Plan
    invoice_ids: list[str] = field(default_factory=list)
    actions: list[ActionInstance] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)


def get_parts(session: Session, plan_id: int) -> PlanParts:
    """The plan with its invoices, action instances, tasks, charges, letters and log."""
    plan = get_or_not_found(session, plan_id)
    return PlanParts(
        plan=plan,
        invoice_ids=invoice_ids(session, plan.id),
        actions=list(
            session.scalars(
                select(ActionInstance)
                .where(ActionInstance.plan_id == plan.id)
                .order_by(ActionInstance.id)
            )
        ),
        tasks=task_repository.of_plan(session, plan.id),
        charges=charge_repository.of_plan(session, plan.id),
        documents=list(
            session.scalars(
                select(Document).where(Document.plan_id == plan.id).order_by(Document.id)
            )
        ),
        log=log_repository.for_plan(session, plan.id),
    )


# --- what closing a plan reads -------------------------------------------------------------


def unfinished_instances_locked(session: Session, plan_id: int) -> Sequence[ActionInstance]:
    """The plan's unfinished action instances, locked FOR UPDATE: one a worker is executing is
    waited for, and its status read again once it is done."""
    return session.scalars(
        select(ActionInstance)
        .where(ActionInstance.plan_id == plan_id, ActionInstance.is_unfinished)
        .with_for_update()
    ).all()


def has_unfinished_instance(session: Session, plan_id: int) -> bool:
    unfinished = session.scalar(
        select(ActionInstance.id)
        .where(ActionInstance.plan_id == plan_id, ActionInstance.is_unfinished)
        .limit(1)
    )
    return unfinished is not None


def unrestored_status_changes(session: Session, plan_id: int) -> Sequence[StatusChange]:
    """The account status changes this plan made and did not give back yet, oldest first."""
    return session.scalars(
        select(StatusChange)
        .where(StatusChange.plan_id == plan_id, StatusChange.restored_at.is_(None))
        .order_by(StatusChange.id)
    ).all()


def other_open_status_change(session: Session, plan: Plan) -> int | None:
    """The id of a status change of the plan's customer still held by another open plan."""
    return session.scalar(
        select(StatusChange.id)
        .join(Plan, Plan.id == StatusChange.plan_id)
        .where(
            StatusChange.customer_id == plan.customer_id,
            StatusChange.plan_id != plan.id,
            StatusChange.restored_at.is_(None),
            Plan.is_open,
        )
        .limit(1)
    )


def customer_of(session: Session, plan: Plan) -> Customer | None:
    return session.get(Customer, plan.customer_id)


def policy_of(session: Session, plan: Plan) -> PolicyRow | None:
    return session.get(PolicyRow, plan.policy_id)


def invoice(session: Session, invoice_id: str) -> Invoice | None:
    return session.get(Invoice, invoice_id)


def invoices(session: Session, invoice_ids: Collection[str]) -> Sequence[Invoice]:
    return session.scalars(select(Invoice).where(Invoice.id.in_(invoice_ids))).all()


def open_invoices_of_account(
    session: Session, customer_id: str, currency: str
) -> Sequence[Row[Any]]:
    """The open invoices of a customer in a currency, each with the plan covering it (or None):
    (id, due_date, currency, amount_due, type, status, disputed, plan_id)."""
    links = plan_links()
    return session.execute(
        select(
            Invoice.id,
            Invoice.due_date,
            Invoice.currency,
            Invoice.amount_due,
            Invoice.type,
            Invoice.status,
            Invoice.disputed,
            links.c.plan_id,
        )
        .outerjoin(links, links.c.invoice_id == Invoice.id)
        .where(
            Invoice.customer_id == customer_id,
            Invoice.currency == currency,
            Invoice.is_open,
        )
    ).all()


# --- what a promise reads ------------------------------------------------------------------


def promised(session: Session, plan_ids: Collection[int]) -> Sequence[Row[Any]]:
    """The plans among these paused on a promise: (id, promise_made_on, pause_until,
    promise_amount, balance, currency)."""
    return session.execute(
        select(
            Plan.id,
            Plan.promise_made_on,
            Plan.pause_until,
            Plan.promise_amount,
            Plan.balance,
            Plan.currency,
        ).where(Plan.id.in_(plan_ids), Plan.pause_reason == PROMISE_PAUSE_REASON)
    ).all()


def paid_toward_promises(session: Session, plan_ids: Collection[int]) -> dict[int, Decimal]:
    """By plan paused on a promise: the payments on its invoices dated from the day the
    promise was made to its date."""
    links = plan_links()
    paid: dict[int, Decimal] = {}
    for plan_id, total in session.execute(
        select(links.c.plan_id, func.sum(PaymentAllocation.amount))
        .join(PaymentAllocation, PaymentAllocation.invoice_id == links.c.invoice_id)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .join(Plan, Plan.id == links.c.plan_id)
        .where(
            links.c.plan_id.in_(plan_ids),
            Plan.pause_reason == PROMISE_PAUSE_REASON,
            Payment.date >= Plan.promise_made_on,
            Payment.date <= Plan.pause_until,
        )
        .group_by(links.c.plan_id)
    ):
        paid[plan_id] = Decimal(total or 0)
    return paid


__all__ = [
    "PlanParts",
    "customer_of",
    "ended_unrecovered_for_invoices",
    "find",
    "get_or_not_found",
    "get_parts",
    "has_unfinished_instance",
    "invoice",
    "invoice_ids",
    "invoices",
    "list_plans",
    "open_for_customers",
    "open_for_invoices",
    "open_invoices_of_account",
    "other_open_status_change",
    "page",
    "paid_toward_promises",
    "policy_of",
    "promised",
    "unfinished_instances_locked",
    "unrestored_status_changes",
]
