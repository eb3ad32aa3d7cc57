"""Which executor performs each automatic action type (SPEC §3): an explicit table, built by
importing the executor modules by name. A new action type is a function in one of them and a
line here. `manual` has no executor: a person does it, through its task."""

from __future__ import annotations

from collections.abc import Callable

from recoup.actions import executors, letter, sms, webhook
from recoup.actions.context import ActionContext
from recoup.actions.outcomes import ActionOutcome
from recoup.domain.enums import ActionType

Executor = Callable[[ActionContext], ActionOutcome]

EXECUTORS: dict[str, Executor] = {
    ActionType.send_email.value: executors.send_email,
    ActionType.send_letter.value: letter.send_letter,
    ActionType.send_sms.value: sms.send_sms,
    ActionType.late_fee_fixed.value: executors.charge_fee,
    ActionType.late_fee_percent.value: executors.charge_fee,
    ActionType.interest.value: executors.charge_fee,
    ActionType.change_account_status.value: executors.change_account_status,
    ActionType.retry_payment.value: webhook.retry_payment,
    ActionType.webhook.value: webhook.webhook,
}


def executor_for(action_type: str) -> Executor | None:
    """The executor of an action type; None for a type without one (manual, unknown)."""
    return EXECUTORS.get(action_type)


__all__ = ["EXECUTORS", "Executor", "executor_for"]
