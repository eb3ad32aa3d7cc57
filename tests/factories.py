"""Factory functions for tests: keyword defaults, flushed rows, never committed.

customer = make_customer(session, id="C1", category="smb")
invoice = make_invoice(session, customer, due_date=date(2026, 1, 10), amount="100.00")
policy = make_policy(session)                      # levels first_notice (5) and final (20)
plan = make_plan(session, invoice, policy)         # an active invoice-mode plan
make_action_instance(session, plan, level="first_notice", action="email_notice_1")
make_template(session, "notice_1", language="fr")  # an email template
make_action(session, "fee", "late_fee_fixed", amounts={"EUR": "15.00"})
write_csv(tmp_path / "invoices.csv", ["id", ...], [[...], ...])

The action tests' world (fixed ids, dated 2024, the clock at NOW = 2024-03-01 09:00 UTC):

customer = make_acme_customer(session)             # C1 "Acme SARL", billing@acme.test
invoice = make_acme_invoice(session, customer)     # I1 "INV-I1", due 2024-01-01, 1234.50 owed
policy = make_acme_policy(session, levels=[("first", 5, ["fee"]), ("final", 90, [])])
plan = make_plan(session, invoice, policy, level="first")  # opened 2024-01-06
instance = make_instance(session, action, plan=plan, level="first")  # due now
stats = execute(session_factory, make_env(db_url, tmp_path))         # run as of NOW
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.runner import ExecutionStats, execute_pending
from recoup.core.env import EnvConfig
from recoup.domain.defaults import SETTINGS_ID, settings_defaults
from recoup.models import (
    ActionInstance,
    ActionRow,
    Customer,
    Invoice,
    LevelRow,
    Plan,
    PlanInvoice,
    PolicyRow,
    SettingsRow,
    TemplateRow,
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
    policy: PolicyRow | None = None,
    *,
    status: str = "active",
    level: str | None = "first_notice",
    opened_on: date | None = None,
    **kw: Any,
) -> Plan:
    """An invoice-mode plan on `invoice` (it covers its own invoice: no link row), opened 5 days
    after its due date, its balance the invoice's amount due (default policy: a new one)."""
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


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, delimiter: str = ","
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
    return path


# The action tests' world: a fixed customer C1 "Acme SARL", invoices dated 2024, a policy
# "Standard" whose levels are (code, days, action codes), and the clock at NOW.

NOW = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
TODAY = date(2024, 3, 1)


def make_env(db_url: str, tmp_path: Path, smtp_url: str | None = None) -> EnvConfig:
    return EnvConfig(database_url=db_url, data_dir=tmp_path / "data", smtp_url=smtp_url, user=None)


def make_acme_customer(
    session: Session,
    id: str = "C1",
    *,
    name: str = "Acme SARL",
    email: str | None = "billing@acme.test",
    language: str | None = "en",
    status: str = "active",
    **fields: Any,
) -> Customer:
    return make_customer(
        session, id, name=name, email=email, language=language, status=status, **fields
    )


def make_acme_invoice(
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
    """Invoice `INV-<id>` issued 2023-12-01, still owed in full unless `amount_due` says
    otherwise, whatever its status (`make_invoice` owes nothing on a paid one)."""
    return make_invoice(
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


def make_acme_policy(
    session: Session,
    *,
    name: str = "Standard",
    priority: int = 10,
    levels: Sequence[tuple[str, int, Sequence[str]]] = (),
    end: str | None = None,
    attach_invoice: bool = False,
) -> PolicyRow:
    """`levels`: (code, days, action codes), a reminder when days < 0; the `end` code (default:
    the last) is the end."""
    end = end or (levels[-1][0] if levels else None)
    return make_policy(
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
    """An instance of `action` due NOW: a plan's (`plan:<id>:<level>:<action>`, no invoice id)
    or, with only `invoice`, a reminder's (`inv:<id>:<level>:<action>`). Unlike
    `make_action_instance`, it takes the action row and sets the attempt time."""
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
    """Run the pending action instances as of `today` / `now`."""
    return execute_pending(factory, env=env, today=today, now=lambda: now, **kwargs)


def rearm(factory: sessionmaker[Session], instance_id: int, *, now: datetime = NOW) -> None:
    """Simulate a retry of a finished instance (what a crash before the commit would leave)."""
    with factory() as session, session.begin():
        instance = session.get(ActionInstance, instance_id)
        assert instance is not None
        instance.status = "pending"
        instance.next_attempt_at = now
        instance.finished_at = None


__all__ = [
    "NOW",
    "TODAY",
    "execute",
    "make_acme_customer",
    "make_acme_invoice",
    "make_acme_policy",
    "make_action",
    "make_action_instance",
    "make_customer",
    "make_customer_plan",
    "make_env",
    "make_instance",
    "make_invoice",
    "make_plan",
    "make_policy",
    "make_settings",
    "make_template",
    "rearm",
    "write_csv",
]
