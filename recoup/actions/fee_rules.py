"""What a late fee or interest action would charge now (SPEC §3), read from its parameters:
the executor charges it (recoup.actions.executors), and a notice of the same step announces
it before it is charged (`level_fees`), since fees follow their notice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from recoup.actions.context import ActionContext
from recoup.actions.notice import FEE_TYPES, step_instances
from recoup.actions.outcomes import PermanentFailure
from recoup.domain import fees
from recoup.domain.enums import ActionType
from recoup.domain.money import parse_amount
from recoup.models import ActionInstance, ActionRow

# --- parameters ----------------------------------------------------------------------------


def param_decimal(ctx: ActionContext, value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):  # a YAML number: its shortest repr is what the user wrote
        value = repr(value)
    try:
        return parse_amount(value)
    except ValueError as exc:
        raise PermanentFailure(f"action {ctx.instance.action}: {what}: {exc}") from exc


def param_per_currency(ctx: ActionContext, key: str) -> dict[str, Decimal]:
    raw = ctx.params.get(key) or {}
    if not isinstance(raw, dict):
        raise PermanentFailure(f"action {ctx.instance.action}: {key} must map currency to amount")
    out: dict[str, Decimal] = {}
    for currency, value in raw.items():
        amount = param_decimal(ctx, value, f"{key}.{currency}")
        if amount is not None:
            out[str(currency).upper()] = amount
    return out


def _fixed_decision(ctx: ActionContext) -> tuple[fees.FeeDecision, dict[str, Any]]:
    return fees.fixed_fee(param_per_currency(ctx, "amounts"), ctx.currency), {}


def _percent_decision(ctx: ActionContext) -> tuple[fees.FeeDecision, dict[str, Any]]:
    rate = param_decimal(ctx, ctx.params.get("rate"), "rate")
    if rate is None:
        raise PermanentFailure(f"action {ctx.instance.action} has no rate")
    currency = ctx.currency
    decision = fees.percent_fee(
        ctx.balance,
        rate,
        minimum=param_per_currency(ctx, "min").get(currency),
        maximum=param_per_currency(ctx, "max").get(currency),
    )
    return decision, {"rate": str(rate), "balance": str(ctx.balance.amount)}


def _interest_decision(ctx: ActionContext) -> tuple[fees.FeeDecision, dict[str, Any]]:
    rate = param_decimal(ctx, ctx.params.get("annual_rate"), "annual_rate")
    if rate is None:
        raise PermanentFailure(f"action {ctx.instance.action} has no annual_rate")
    if ctx.plan is not None:
        days = fees.days_overdue(ctx.today, ctx.plan.anchor_date, ctx.plan.paused_days)
    else:
        assert ctx.invoice is not None
        days = fees.days_overdue(ctx.today, ctx.invoice.due_date)
    decision = fees.interest(ctx.balance, rate, days)
    return decision, {"annual_rate": str(rate), "days": days, "balance": str(ctx.balance.amount)}


# What each fee type would charge now: the executor charges it, a notice announces it.
FEE_DECISIONS: dict[str, Callable[[ActionContext], tuple[fees.FeeDecision, dict[str, Any]]]] = {
    ActionType.late_fee_fixed.value: _fixed_decision,
    ActionType.late_fee_percent.value: _percent_decision,
    ActionType.interest.value: _interest_decision,
}


def level_fees(ctx: ActionContext) -> list[dict[str, Any]]:
    """The fees the message's own step will charge once it is delivered (fees follow a
    notice, so they are not among `charges` yet): what each would charge now, for a notice to
    state. A fee that would charge nothing, or whose action is misconfigured, is left out."""
    waiting = ctx.session.scalars(
        step_instances(select(ActionInstance), ctx.instance)
        .where(
            ActionInstance.type.in_(FEE_TYPES),
            ActionInstance.is_unfinished,
        )
        .order_by(ActionInstance.id)
    ).all()
    found: list[dict[str, Any]] = []
    for instance in waiting:
        action = ctx.session.scalar(select(ActionRow).where(ActionRow.code == instance.action))
        if action is None:
            continue
        fee_ctx = replace(ctx, instance=instance, action=action, overrides={})
        try:
            decision, _details = FEE_DECISIONS[instance.type](fee_ctx)
        except PermanentFailure:
            continue
        if isinstance(decision, fees.Fee):
            found.append(
                {
                    "action": instance.action,
                    "service": (action.params or {}).get("service"),
                    "kind": instance.type,
                    "amount": decision.money,
                }
            )
    return found


__all__ = ["FEE_DECISIONS", "level_fees", "param_decimal", "param_per_currency"]
