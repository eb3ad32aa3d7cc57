"""Everything an executor needs about one action instance, loaded in a handful of queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recoup.core.env import EnvConfig
from recoup.domain.money import Money
from recoup.models import (
    ActionInstance,
    ActionRow,
    Charge,
    Customer,
    Invoice,
    LevelRow,
    Plan,
    PolicyRow,
    SettingsRow,
)
from recoup.plans.links import plan_links
from recoup.settings.service import get_settings

# Key in an unfinished instance's `result` holding a person's request (recoup.actions.manual):
# {"actor": user, "params": {"template": ...}} — who asked, and what they chose.
MANUAL_REQUEST = "manual"


def manual_request(instance: ActionInstance) -> dict[str, Any] | None:
    """The request of an action a person asked for by hand, while it waits to run."""
    if not instance.is_unfinished:
        return None
    request = (instance.result or {}).get(MANUAL_REQUEST)
    return request if isinstance(request, dict) else None


@dataclass
class ActionContext:
    session: Session
    instance: ActionInstance
    env: EnvConfig
    today: date
    now: datetime
    customer: Customer
    policy: PolicyRow | None
    settings: SettingsRow
    action: ActionRow | None = None
    level: LevelRow | None = None
    plan: Plan | None = None
    # invoice mode and reminders: the one invoice; customer mode: None
    invoice: Invoice | None = None
    # the outstanding invoices the message is about, oldest due first
    invoices: list[Invoice] = field(default_factory=list)
    run_id: int | None = None
    # an action a person asked for by hand: who (logged as the actor), and the parameters
    # they chose over the action's own (a template, a status)
    actor: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    by_hand: bool = False
    # the business date of the process executing it (a run's as-of, the worker's latest run),
    # while `today` is the date it was queued for (R13): whether a reminder is still timely
    executing_on: date | None = None

    _charges: list[Charge] | None = field(default=None, repr=False)

    @property
    def charges(self) -> list[Charge]:
        """The plan's charges (a reminder's: its invoice's), oldest first; read when a
        message needs them, not for every action."""
        if self._charges is None:
            query = select(Charge).order_by(Charge.created_on, Charge.id)
            if self.plan is not None:
                query = query.where(Charge.plan_id == self.plan.id)
            else:
                query = query.where(Charge.invoice_id == self.invoice_id)
            self._charges = list(self.session.scalars(query))
        return self._charges

    @property
    def is_reminder(self) -> bool:
        return self.instance.plan_id is None

    @property
    def params(self) -> dict[str, Any]:
        params = dict(self.action.params or {}) if self.action is not None else {}
        return {**params, **self.overrides}

    @property
    def currency(self) -> str:
        if self.plan is not None:
            return self.plan.currency
        assert self.invoice is not None
        return self.invoice.currency

    @property
    def balance(self) -> Money:
        """What is still owed: the plan's balance, or the reminder invoice's amount due."""
        if self.plan is not None:
            return Money(self.plan.balance, self.plan.currency)
        assert self.invoice is not None
        return Money(self.invoice.amount_due, self.invoice.currency)

    @property
    def invoice_id(self) -> str | None:
        if self.plan is not None:
            return self.plan.invoice_id
        return self.instance.invoice_id

    def log_kwargs(self) -> dict[str, Any]:
        """The columns every log entry about this instance carries."""
        return {
            "on": self.today,
            "customer_id": self.instance.customer_id,
            "invoice_id": self.invoice_id,
            "plan_id": self.instance.plan_id,
            "level": self.instance.level,
            "action": self.instance.action,
            "run_id": self.run_id,
            "actor": self.actor,
        }


def load_context(
    session: Session,
    instance: ActionInstance,
    *,
    env: EnvConfig,
    today: date,
    now: datetime,
    run_id: int | None = None,
) -> ActionContext:
    customer = session.get(Customer, instance.customer_id)
    if customer is None:  # customers are never deleted
        raise LookupError(f"customer {instance.customer_id} not found")
    plan = session.get(Plan, instance.plan_id) if instance.plan_id is not None else None
    policy = session.get(PolicyRow, instance.policy_id)
    level = None
    if policy is not None:
        level = next((lvl for lvl in policy.levels if lvl.code == instance.level), None)
    action = session.scalar(select(ActionRow).where(ActionRow.code == instance.action))
    invoice_id = plan.invoice_id if plan is not None else instance.invoice_id
    invoice = session.get(Invoice, invoice_id) if invoice_id is not None else None
    if plan is not None:
        links = plan_links()
        invoices = list(
            session.scalars(
                select(Invoice)
                .join(links, links.c.invoice_id == Invoice.id)
                .where(
                    links.c.plan_id == plan.id,
                    Invoice.is_open,
                    Invoice.amount_due > Decimal(0),
                )
                .order_by(Invoice.due_date, Invoice.id)
            ).all()
        )
        if not invoices and invoice is not None:
            invoices = [invoice]
    else:
        invoices = [invoice] if invoice is not None else []
    request = manual_request(instance)
    return ActionContext(
        session=session,
        instance=instance,
        env=env,
        # R13: every effect (letter dates, days overdue, fees, the log's `on`) uses the
        # business date the instance was queued for, whenever and wherever it executes
        today=instance.due_on or today,
        now=now,
        customer=customer,
        policy=policy,
        settings=get_settings(session),
        action=action,
        level=level,
        plan=plan,
        invoice=invoice,
        invoices=invoices,
        run_id=run_id,
        actor=str(request["actor"]) if request and request.get("actor") else None,
        overrides=dict(request.get("params") or {}) if request else {},
        by_hand=request is not None,
        executing_on=today,
    )


__all__ = ["MANUAL_REQUEST", "ActionContext", "load_context", "manual_request"]
