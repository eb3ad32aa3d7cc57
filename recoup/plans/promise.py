"""A promise to pay (R10): a person records a date, optionally an amount; the plan pauses with
reason `promise` until that date. Paid in time, the plan closes `recovered` through the payment
path (R8). On the date the run resumes it (paused days do not count, R1) and looks at what was
paid since the promise: the promised amount reached, the promise was kept (the plan carries on
for any rest); otherwise it logs `promise_broken` and escalates from the level where it stood.

A promise of no amount is a promise of the whole balance as it stood when it was made, so the
run's test is the same in both cases: payments dated from the promise to its date, on the
plan's invoices, reach the amount. Services flush, never commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from recoup.core.errors import Conflict, InvalidInput, NotFound
from recoup.domain.enums import (
    DISPUTE_REASON,
    PROMISE_PAUSE_REASON,
    SYSTEM_ACTOR,
    Event,
    PlanStatus,
)
from recoup.domain.money import minor_unit, money_text, parse_amount
from recoup.log.service import log_for_plan
from recoup.models import Plan, Task
from recoup.plans import repository


@dataclass(frozen=True, slots=True)
class PromiseCheck:
    """How a promise stands on its date: what was promised, what was paid toward it."""

    plan_id: int
    made_on: date | None
    until: date
    amount: Decimal
    paid: Decimal
    currency: str

    @property
    def kept(self) -> bool:
        return self.paid >= self.amount

    def details(self) -> dict[str, Any]:
        """For the log (JSON-ready)."""
        return {
            "promised_on": self.made_on.isoformat() if self.made_on else None,
            "until": self.until.isoformat(),
            "amount": money_text(self.amount, self.currency),
            "paid": money_text(self.paid, self.currency),
            "currency": self.currency,
            "kept": self.kept,
        }


def check_amount(amount: Decimal, currency: str, field: str = "amount") -> Decimal:
    """A promised amount: positive, in the currency's minor unit (no 10.005 EUR)."""
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"{{field}} {amount}: a promised amount must be positive", field=field)
    unit = minor_unit(currency)
    if amount % unit != 0:
        places = max(0, -unit.as_tuple().exponent)  # type: ignore[operator]
        raise InvalidInput(
            f"{{field}} {amount}: {currency} amounts have {places} decimal(s)", field=field
        )
    return amount


def parse_promised_amount(text: str | None, field: str = "amount") -> Decimal | None:
    """A promised amount as typed (a decimal string; no floats, no exponent)."""
    if text is None:
        return None
    try:
        value = parse_amount(text)
    except ValueError as exc:
        raise InvalidInput(f"{{field}}: {exc}", field=field) from None
    if "e" in text.lower():
        raise InvalidInput(
            f"{{field}}: {text!r}: write the amount in full (like 1000.00)", field=field
        )
    return value


def check_person(actor: str | None) -> str:
    """A promise to pay is recorded by a person, not by the system."""
    if not actor or actor == SYSTEM_ACTOR:
        raise InvalidInput(
            "a promise to pay is recorded by a person: pass {field} NAME or set RECOUP_USER",
            field="user",
        )
    return actor


def make_promise(
    session: Session,
    plan: Plan,
    *,
    until: date,
    on: date,
    amount: Decimal | None = None,
    actor: str | None = None,
    task_id: int | None = None,
    note: str | None = None,
) -> None:
    """Pause the plan with reason `promise` until `until` (log `promise_made`). A plan paused
    by hand (or under an earlier promise) takes the new promise; its pause goes on from the
    day it began. A disputed plan waits for its dispute, not for a promise."""
    if not plan.is_open:
        raise Conflict(
            f"plan {plan.id} is {plan.status}: a promise to pay is for an active or paused plan"
        )
    if plan.status == PlanStatus.paused and plan.pause_reason == DISPUTE_REASON:
        raise Conflict(
            f"plan {plan.id} is paused for a dispute: clear the dispute before recording a "
            "promise to pay"
        )
    if until <= on:
        raise InvalidInput(f"the promise date {until} must be after {on}", field="until")
    if amount is not None:
        check_amount(amount, plan.currency)
        if amount > plan.balance:
            raise InvalidInput(
                f"{{field}} {money_text(amount, plan.currency)} is more than the plan's balance "
                f"{money_text(plan.balance, plan.currency)} {plan.currency}",
                field="amount",
            )
    previous = (
        {"reason": plan.pause_reason, "until": plan.pause_until}
        if plan.status == PlanStatus.paused
        else None
    )
    promised = plan.balance if amount is None else amount
    if plan.status == PlanStatus.active:
        plan.status = PlanStatus.paused
        plan.paused_on = on
    plan.pause_reason = PROMISE_PAUSE_REASON
    plan.pause_until = until
    plan.promise_amount = promised
    plan.promise_made_on = on
    plan.next_step_on = until  # R15: the run looks again on the promise date
    log_for_plan(
        session,
        Event.promise_made,
        plan,
        on=on,
        actor=actor,
        until=until,
        amount=money_text(promised, plan.currency),
        currency=plan.currency,
        whole_balance=amount is None,
        task_id=task_id,
        note=note,
        replaces=previous,
    )
    session.flush()


def promise_for_task(
    session: Session,
    task: Task,
    *,
    until: date,
    on: date,
    amount: Decimal | None = None,
    actor: str | None = None,
) -> Plan:
    """A promise recorded while completing a task (typically the collector's call)."""
    if task.plan_id is None:
        raise InvalidInput(f"task {task.id} belongs to no plan: there is nothing to pause")
    plan = repository.find(session, task.plan_id)
    if plan is None:  # pragma: no cover - a task's plan is never deleted
        raise NotFound(f"plan {task.plan_id} of task {task.id} not found")
    make_promise(session, plan, until=until, on=on, amount=amount, actor=actor, task_id=task.id)
    return plan


def promises_due(session: Session, plan_ids: Iterable[int]) -> dict[int, PromiseCheck]:
    """For plans paused on a promise: what was promised and what was paid toward it, from the
    day it was made to its date (payments dated in that span, on the plan's invoices)."""
    ids = sorted(set(plan_ids))
    if not ids:
        return {}
    rows = repository.promised(session, ids)
    paid = repository.paid_toward_promises(session, ids)
    out: dict[int, PromiseCheck] = {}
    for plan_id, made_on, until, amount, balance, currency in rows:
        if until is None:
            continue
        out[plan_id] = PromiseCheck(
            plan_id=plan_id,
            made_on=made_on,
            until=until,
            amount=amount if amount is not None else balance,
            paid=paid.get(plan_id, Decimal(0)),
            currency=currency,
        )
    return out


__all__ = [
    "PromiseCheck",
    "check_amount",
    "check_person",
    "make_promise",
    "parse_promised_amount",
    "promise_for_task",
    "promises_due",
]
