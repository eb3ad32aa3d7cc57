"""Factory functions for tests: keyword defaults, flushed rows, never committed.

customer = make_customer(session, id="C1", category="smb")
invoice = make_invoice(session, customer, due_date=date(2026, 1, 10), amount="100.00")
policy = make_policy(session)                      # levels first_notice (5) and final (20)
plan = make_plan(session, invoice, policy=policy)  # an active invoice-mode plan
make_action_instance(session, plan, level="first_notice", action="email_notice_1")
write_csv(tmp_path / "invoices.csv", ["id", ...], [[...], ...])
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from recoup.domain.defaults import SETTINGS_ID, settings_defaults
from recoup.models import (
    ActionInstance,
    Customer,
    Invoice,
    LevelRow,
    Plan,
    PlanInvoice,
    PolicyRow,
    SettingsRow,
)

_ids = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def _money(value: Decimal | str | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def make_settings(session: Session, **kw: Any) -> SettingsRow:
    """The settings row (the migrations create it with the SPEC's defaults), with the given
    fields set."""
    row = session.get(SettingsRow, SETTINGS_ID)
    if row is None:  # a database built without the migrations
        row = SettingsRow(**settings_defaults())
        session.add(row)
    for key, value in kw.items():
        setattr(row, key, value)
    session.flush()
    return row


def make_customer(session: Session, id: str | None = None, **kw: Any) -> Customer:
    customer_id = id or _next("C")
    values: dict[str, Any] = {
        "name": f"Customer {customer_id}",
        "email": f"{customer_id.lower()}@example.com",
        "language": "en",
        "country": "FR",
        "currency": "EUR",
        "is_company": True,
        "status": "active",
        "excluded": False,
        "attributes": {},
    }
    values.update(kw)
    customer = Customer(id=customer_id, **values)
    session.add(customer)
    session.flush()
    return customer


def make_invoice(
    session: Session,
    customer: Customer | str,
    id: str | None = None,
    *,
    due_date: date = date(2026, 1, 31),
    issue_date: date | None = None,
    amount: Decimal | str | int = "100.00",
    amount_due: Decimal | str | int | None = None,
    currency: str = "EUR",
    status: str = "open",
    **kw: Any,
) -> Invoice:
    invoice_id = id or _next("INV")
    customer_id = customer if isinstance(customer, str) else customer.id
    total = _money(amount)
    assert total is not None
    due = _money(amount_due)
    if due is None:
        due = total if status == "open" else Decimal(0)
    invoice = Invoice(
        id=invoice_id,
        customer_id=customer_id,
        number=kw.pop("number", invoice_id),
        type=kw.pop("type", "commercial"),
        issue_date=issue_date or due_date - timedelta(days=30),
        due_date=due_date,
        currency=currency,
        amount=total,
        amount_due=due,
        status=status,
        disputed=kw.pop("disputed", False),
        **kw,
    )
    session.add(invoice)
    session.flush()
    return invoice


def make_policy(
    session: Session,
    name: str | None = None,
    *,
    priority: int | None = None,
    levels: Sequence[dict[str, Any]] | None = None,
    **kw: Any,
) -> PolicyRow:
    """A policy with levels (default: `first_notice` at 5 days, `final` at 20, the end)."""
    number = next(_ids)
    if levels is None:
        levels = [
            {"code": "first_notice", "days": 5, "actions": ["email_notice_1"]},
            {"code": "final", "days": 20, "end": True, "actions": ["letter_final"]},
        ]
    policy = PolicyRow(
        name=name or f"Policy {number}",
        priority=priority if priority is not None else number,
        description=kw.pop("description", ""),
        active=kw.pop("active", True),
        is_default=kw.pop("is_default", True),
        min_balance=kw.pop("min_balance", {}),
        transition=kw.pop("transition", "days_overdue"),
        **kw,
    )
    for position, level in enumerate(levels):
        level = {"reminder": False, "end": False, "min_balance": {}, "actions": [], **level}
        policy.levels.append(LevelRow(position=position, **level))
    session.add(policy)
    session.flush()
    return policy


def make_plan(
    session: Session,
    invoice: Invoice,
    *,
    policy: PolicyRow | None = None,
    status: str = "active",
    level: str | None = "first_notice",
    opened_on: date | None = None,
    **kw: Any,
) -> Plan:
    """An invoice-mode plan on `invoice` (it covers its own invoice: no link row)."""
    policy = policy or make_policy(session)
    opened = opened_on or invoice.due_date + timedelta(days=5)
    open_status = status in ("active", "paused")
    plan = Plan(
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        currency=invoice.currency,
        mode="invoice",
        policy_id=policy.id,
        status=status,
        level=level,
        balance=kw.pop("balance", invoice.amount_due),
        opened_on=opened,
        anchor_date=kw.pop("anchor_date", invoice.due_date),
        open_key=kw.pop("open_key", f"inv:{invoice.id}" if open_status else None),
        **kw,
    )
    session.add(plan)
    session.flush()
    return plan


def make_customer_plan(
    session: Session,
    customer: Customer,
    invoices: Iterable[Invoice],
    *,
    currency: str = "EUR",
    policy: PolicyRow | None = None,
    status: str = "active",
    level: str | None = "first_notice",
    opened_on: date = date(2026, 2, 10),
    **kw: Any,
) -> Plan:
    """A customer-mode plan on (customer, currency) covering `invoices`."""
    policy = policy or make_policy(session)
    invoices = list(invoices)
    plan = Plan(
        customer_id=customer.id,
        invoice_id=None,
        currency=currency,
        mode="customer",
        policy_id=policy.id,
        status=status,
        level=level,
        balance=kw.pop("balance", sum((i.amount_due for i in invoices), Decimal(0))),
        opened_on=opened_on,
        anchor_date=kw.pop("anchor_date", min(i.due_date for i in invoices)),
        open_key=kw.pop("open_key", f"cust:{customer.id}:{currency}"),
        **kw,
    )
    session.add(plan)
    session.flush()
    for invoice in invoices:
        session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, joined_on=opened_on))
    session.flush()
    return plan


def make_action_instance(
    session: Session,
    plan: Plan,
    *,
    level: str = "first_notice",
    action: str = "email_notice_1",
    type: str = "send_email",
    status: str = "pending",
    due_on: date | None = None,
    **kw: Any,
) -> ActionInstance:
    instance = ActionInstance(
        key=kw.pop("key", f"plan:{plan.id}:{level}:{action}"),
        plan_id=plan.id,
        invoice_id=plan.invoice_id,
        customer_id=plan.customer_id,
        policy_id=plan.policy_id,
        level=level,
        action=action,
        type=type,
        status=status,
        due_on=due_on or plan.opened_on,
        **kw,
    )
    session.add(instance)
    session.flush()
    return instance


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ","
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return path


__all__ = [
    "make_action_instance",
    "make_customer",
    "make_customer_plan",
    "make_invoice",
    "make_plan",
    "make_policy",
    "make_settings",
    "write_csv",
]
