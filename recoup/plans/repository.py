"""Every query of plans: a plan by id, the listing (whole or in cursor pages), the open plans
of invoices or of a customer's currency, the invoices a plan covers, and a plan with all its
parts (what `plan show` and the plan page show). The open-plan condition is `Plan.is_open`."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from recoup.charges import repository as charge_repository
from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import DEFAULT_LIMIT, check_limit, decode_cursor, encode_cursor
from recoup.domain.enums import PlanStatus
from recoup.log import repository as log_repository
from recoup.models import ActionInstance, Charge, Document, LogEntry, Plan, PolicyRow, Task
from recoup.plans.links import plan_links
from recoup.tasks import repository as task_repository


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
        key = decode_cursor(cursor)
        if len(key) != 1 or not isinstance(key[0], int):
            raise InvalidInput("{field}: not a cursor this list gave out", field="cursor")
        query = query.where(Plan.id < key[0])
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor([rows[limit - 1].id])
    return rows, None


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


__all__ = [
    "PlanParts",
    "ended_unrecovered_for_invoices",
    "get_or_not_found",
    "get_parts",
    "invoice_ids",
    "list_plans",
    "open_for_customers",
    "open_for_invoices",
    "page",
]
