"""Factory functions for the action tests: ORM rows with keyword defaults. Customers,
invoices and plans are `tests.factories` rows with the defaults these tests were written
for (a fixed customer C1, invoices dated 2024); templates, actions and instances are here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.runner import ExecutionStats, execute_pending
from recoup.core.env import EnvConfig
from recoup.models import (
    ActionInstance,
    ActionRow,
    Customer,
    Invoice,
    Plan,
    PolicyRow,
    TemplateRow,
)
from tests import factories

NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
TODAY = date(2024, 3, 1)


def make_env(db_url: str, tmp_path: Path, smtp_url: str | None = None) -> EnvConfig:
    return EnvConfig(database_url=db_url, data_dir=tmp_path / "data", smtp_url=smtp_url, user=None)


def make_customer(
    session: Session,
    id: str = "C1",
    *,
    name: str = "Acme SARL",
    email: str | None = "billing@acme.test",
    language: str | None = "en",
    status: str = "active",
    **fields: Any,
) -> Customer:
    return factories.make_customer(
        session, id, name=name, email=email, language=language, status=status, **fields
    )


def make_invoice(
    session: Session,
    customer: Customer,
    id: str = "I1",
    *,
    number: str | None = None,
    due_date: date = date(2024, 1, 1),
    currency: str = "EUR",
    amount: Decimal = Decimal("1234.50"),
    amount_due: Decimal | None = None,
    status: str = "open",
    pdf_path: str | None = None,
    disputed: bool = False,
) -> Invoice:
    """An invoice still owed in full unless `amount_due` says otherwise, whatever its status."""
    return factories.make_invoice(
        session,
        customer,
        id,
        number=number or f"INV-{id}",
        issue_date=date(2023, 12, 1),
        due_date=due_date,
        currency=currency,
        amount=amount,
        amount_due=amount if amount_due is None else amount_due,
        status=status,
        pdf_path=pdf_path,
        disputed=disputed,
    )


def make_template(
    session: Session,
    code: str = "notice_1",
    *,
    language: str = "en",
    channel: str = "email",
    subject: str | None = "Invoice {{ invoice.number }} is overdue",
    body: str = "Dear {{ customer.name }},\n\nPlease pay {{ balance|money }}.\n",
    position: int = 0,
    active: bool = True,
) -> TemplateRow:
    row = TemplateRow(
        code=code,
        channel=channel,
        language=language,
        subject=subject,
        body=body,
        position=position,
        active=active,
    )
    session.add(row)
    session.flush()
    return row


def make_action(
    session: Session, code: str, type: str, *, mode: str = "automatic", **params: Any
) -> ActionRow:
    row = ActionRow(code=code, type=type, mode=mode, params=params)
    session.add(row)
    session.flush()
    return row


def make_policy(
    session: Session,
    *,
    name: str = "Standard",
    priority: int = 10,
    levels: Sequence[tuple[str, int, Sequence[str]]] = (),
    end: str | None = None,
    attach_invoice: bool = False,
) -> PolicyRow:
    """`levels`: (code, days, action codes); the `end` code (default: the last) is the end."""
    end = end or (levels[-1][0] if levels else None)
    return factories.make_policy(
        session,
        name,
        priority=priority,
        levels=[
            {
                "code": code,
                "days": days,
                "actions": list(actions),
                "reminder": days < 0,
                "end": code == end,
            }
            for code, days, actions in levels
        ],
        attach_invoice=attach_invoice,
    )


def make_plan(
    session: Session,
    invoice: Invoice,
    policy: PolicyRow,
    *,
    level: str,
    status: str = "active",
    opened_on: date = date(2024, 1, 6),
    paused_days: int = 0,
    balance: Decimal | None = None,
) -> Plan:
    return factories.make_plan(
        session,
        invoice,
        policy=policy,
        level=level,
        status=status,
        opened_on=opened_on,
        paused_days=paused_days,
        balance=invoice.amount_due if balance is None else balance,
    )


def make_instance(
    session: Session,
    action: ActionRow,
    *,
    plan: Plan | None = None,
    invoice: Invoice | None = None,
    level: str,
    policy: PolicyRow | None = None,
    next_attempt_at: datetime | None = NOW,
    status: str = "pending",
    due_on: date = TODAY,
) -> ActionInstance:
    """A plan's instance (`plan:<id>:<level>:<action>`) or, with only `invoice`, a reminder's
    (`inv:<id>:<level>:<action>`)."""
    if plan is not None:
        key = f"plan:{plan.id}:{level}:{action.code}"
        customer_id, policy_id = plan.customer_id, plan.policy_id
    else:
        assert invoice is not None and policy is not None
        key = f"inv:{invoice.id}:{level}:{action.code}"
        customer_id, policy_id = invoice.customer_id, policy.id
    instance = ActionInstance(
        key=key,
        plan_id=plan.id if plan is not None else None,
        invoice_id=invoice.id if invoice is not None and plan is None else None,
        customer_id=customer_id,
        policy_id=policy_id,
        level=level,
        action=action.code,
        type=action.type,
        status=status,
        next_attempt_at=next_attempt_at,
        due_on=due_on,
    )
    session.add(instance)
    session.flush()
    return instance


def execute(
    factory: sessionmaker[Session],
    env: EnvConfig,
    *,
    today: date = TODAY,
    now: datetime = NOW,
    **kwargs: Any,
) -> ExecutionStats:
    return execute_pending(factory, env=env, today=today, now=lambda: now, **kwargs)


def rearm(factory: sessionmaker[Session], instance_id: int, *, now: datetime = NOW) -> None:
    """Simulate a retry of a finished instance (what a crash before the commit would leave)."""
    with factory() as session, session.begin():
        instance = session.get(ActionInstance, instance_id)
        assert instance is not None
        instance.status = "pending"
        instance.next_attempt_at = now
        instance.finished_at = None
