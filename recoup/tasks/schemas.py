"""Tasks as every face shows them: SPEC §5's fields (`TaskRead`), then what a collector needs
to act (`WorkItemRead`, the work list), then one task with its invoices and history
(`TaskDetailRead`, `task show`). `TaskComplete`: what completing a task takes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from recoup.core.schemas import Schema, Timestamp
from recoup.domain.enums import TaskStatus
from recoup.domain.money import round_money
from recoup.log.schemas import LogEntryRead

if TYPE_CHECKING:
    from recoup.tasks.repository import TaskDetail, WorkItem


class TaskRead(Schema):
    id: int
    plan_id: int | None
    role: str
    status: TaskStatus
    action: str | None
    claimed_by: str | None


class TaskComplete(Schema):
    """Complete a task (`note`: what was done); with `promise`, the customer promised to pay
    by that date (`amount`, a decimal string: how much; default the balance)."""

    note: str | None = None
    promise: date | None = None
    amount: str | None = None


class WorkItemRead(TaskRead):
    customer_id: str | None
    customer_name: str | None
    phone: str | None
    invoice_ids: list[str]
    balance: Decimal | None
    currency: str | None
    days_overdue: int | None
    instructions: str | None
    level: str | None
    created_on: date
    created_at: Timestamp
    claimed_at: Timestamp | None
    completed_at: Timestamp | None
    outcome: str | None

    @classmethod
    def fields_of(cls, item: WorkItem) -> dict[str, Any]:
        task, plan, customer = item.task, item.plan, item.customer
        fields: dict[str, Any] = {name: getattr(task, name) for name in TaskRead.model_fields}
        fields.update(
            customer_id=customer.id if customer else None,
            customer_name=customer.name if customer else None,
            phone=customer.phone if customer else None,
            invoice_ids=list(item.invoice_ids),
            balance=round_money(plan.balance, plan.currency) if plan else None,
            currency=plan.currency if plan else None,
            days_overdue=item.days_overdue,
            instructions=task.instructions,
            level=task.level,
            created_on=task.created_on,
            created_at=task.created_at,
            claimed_at=task.claimed_at,
            completed_at=task.completed_at,
            outcome=task.outcome,
        )
        return fields

    @classmethod
    def of(cls, item: WorkItem) -> WorkItemRead:
        return cls.model_validate(cls.fields_of(item))


class TaskInvoice(Schema):
    """An invoice of the task's plan, as the task shows it."""

    id: str
    number: str
    due_date: date
    amount_due: Decimal
    currency: str
    status: str
    disputed: bool


class TaskDetailRead(WorkItemRead):
    email: str | None
    customer_status: str | None
    plan_status: str | None
    plan_level: str | None
    policy: str | None
    pause_reason: str | None
    pause_until: date | None
    promise_amount: Decimal | None
    waited: str
    invoices: list[TaskInvoice]
    log: list[LogEntryRead]

    @classmethod
    def of_detail(cls, detail: TaskDetail, *, waited: str) -> TaskDetailRead:
        item = detail.item
        customer, plan = item.customer, item.plan
        fields = cls.fields_of(item)
        fields.update(
            email=customer.email if customer else None,
            customer_status=customer.status if customer else None,
            plan_status=plan.status if plan else None,
            plan_level=plan.level if plan else None,
            policy=plan.policy.name if plan else None,
            pause_reason=plan.pause_reason if plan else None,
            pause_until=plan.pause_until if plan else None,
            promise_amount=(
                round_money(plan.promise_amount, plan.currency)
                if plan and plan.promise_amount is not None
                else None
            ),
            waited=waited,
            invoices=[
                TaskInvoice(
                    id=inv.id,
                    number=inv.number,
                    due_date=inv.due_date,
                    amount_due=round_money(inv.amount_due, inv.currency),
                    currency=inv.currency,
                    status=inv.status,
                    disputed=inv.disputed,
                )
                for inv in detail.invoices
            ],
            log=detail.log,
        )
        return cls.model_validate(fields)


__all__ = ["TaskComplete", "TaskDetailRead", "TaskInvoice", "TaskRead", "WorkItemRead"]
