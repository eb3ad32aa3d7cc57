"""Plans as every face shows them: SPEC §5's fields (`PlanRead`: the listing), one plan with
its invoices, actions, tasks, charges, letters and log (`PlanDetail`: `plan show`), and what
pausing, stopping and recording a promise to pay take."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from recoup.charges.schemas import ChargeRead
from recoup.core.schemas import Schema, Timestamp
from recoup.domain.enums import PlanStatus
from recoup.domain.money import round_money
from recoup.log.schemas import LogEntryRead
from recoup.tasks.schemas import TaskRead

if TYPE_CHECKING:
    from recoup.plans.repository import PlanParts


class PlanRead(Schema):
    id: int
    customer_id: str
    invoice_id: str | None
    currency: str
    status: PlanStatus
    level: str | None
    balance: Decimal
    opened_on: date | None
    closed_on: date | None

    @model_validator(mode="after")
    def _rounded(self) -> PlanRead:
        self.balance = round_money(self.balance, self.currency)
        return self


class PlanAction(Schema):
    """An action instance of the plan, as the plan shows it."""

    id: int
    level: str
    action: str
    type: str
    status: str
    attempts: int
    error: str | None


class PlanDocument(Schema):
    """A letter generated for the plan, as the plan shows it."""

    id: int
    kind: str
    path: str
    created_at: Timestamp


class PlanDetail(PlanRead):
    policy: str
    anchor_date: date
    paused_days: int
    pause_reason: str | None
    pause_until: date | None
    promise_amount: Decimal | None
    promise_made_on: date | None
    stop_reason: str | None
    next_step_on: date | None
    invoices: list[str]
    actions: list[PlanAction]
    tasks: list[TaskRead]
    charges: list[ChargeRead]
    documents: list[PlanDocument]
    log: list[LogEntryRead]

    @model_validator(mode="after")
    def _promise_rounded(self) -> PlanDetail:
        if self.promise_amount is not None:
            self.promise_amount = round_money(self.promise_amount, self.currency)
        return self

    @classmethod
    def of(cls, parts: PlanParts) -> PlanDetail:
        plan = parts.plan
        fields: dict[str, Any] = {name: getattr(plan, name) for name in _PLAN_COLUMNS}
        fields.update(
            policy=parts.policy,
            invoices=parts.invoice_ids,
            actions=parts.actions,
            tasks=parts.tasks,
            charges=parts.charges,
            documents=parts.documents,
            log=parts.log,
        )
        return cls.model_validate(fields)


_PLAN_COLUMNS = (
    *PlanRead.model_fields,
    "anchor_date",
    "paused_days",
    "pause_reason",
    "pause_until",
    "promise_amount",
    "promise_made_on",
    "stop_reason",
    "next_step_on",
)


class LateInvoiceRead(Schema):
    """A late invoice (open, past due) with its dunning status, Openbravo's "payment in plan":
    the latest plan that covers it (`plan_id`, `plan_status`, `level`, `policy`, and
    `next_step_on`, the date the run looks at the plan again), or `plan_status` "none".
    `days_overdue`: from the invoice's own due date."""

    id: str
    customer_id: str
    customer_name: str
    number: str
    type: str
    due_date: date
    days_overdue: int
    amount: Decimal
    amount_due: Decimal
    currency: str
    status: str
    disputed: bool
    plan_id: int | None
    plan_status: str
    level: str | None
    policy: str | None
    next_step_on: date | None

    @model_validator(mode="after")
    def _late_rounded(self) -> LateInvoiceRead:
        self.amount = round_money(self.amount, self.currency)
        self.amount_due = round_money(self.amount_due, self.currency)
        return self

    @classmethod
    def of(cls, row: Any, today: date) -> LateInvoiceRead:
        invoice, customer_name, plan_id, plan_status, level, policy, next_step_on = row[:7]
        return cls(
            id=invoice.id,
            customer_id=invoice.customer_id,
            customer_name=customer_name,
            number=invoice.number,
            type=invoice.type,
            due_date=invoice.due_date,
            days_overdue=(today - invoice.due_date).days,
            amount=invoice.amount,
            amount_due=invoice.amount_due,
            currency=invoice.currency,
            status=invoice.status,
            disputed=invoice.disputed,
            plan_id=plan_id,
            plan_status=plan_status or "none",
            level=level,
            policy=policy,
            next_step_on=next_step_on if plan_status in ("active", "paused") else None,
        )


class PlanPause(Schema):
    """Pause an active plan: why, and (optionally) the date it resumes by itself."""

    reason: str
    until: date | None = None


class PlanStop(Schema):
    """Stop a plan for good: why."""

    reason: str


class PromiseCreate(Schema):
    """A promise to pay (R10): by `until`; `amount` (a decimal string) defaults to the whole
    balance; `note`: what was agreed."""

    until: date
    amount: str | None = None
    note: str | None = None


__all__ = [
    "LateInvoiceRead",
    "PlanAction",
    "PlanDetail",
    "PlanDocument",
    "PlanPause",
    "PlanRead",
    "PlanStop",
    "PromiseCreate",
]
