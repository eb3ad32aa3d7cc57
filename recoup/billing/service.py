"""The billing system's answer to a `retry_payment` request (SPEC §3).

Success is a payment: the billing system records it with `recoup import payments` (R8 closes
the plan when the balance reaches 0). Failure is recorded here, on the plan, as a
`payment_retry_failed` log entry with its reason, so the plan's history says the collection was
tried and why it did not work; the plan carries on up its levels. Services flush, never commit.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput
from recoup.domain.enums import Event
from recoup.domain.money import money_text
from recoup.log.service import log
from recoup.models import LogEntry
from recoup.plans import repository as plan_repository
from recoup.settings.service import business_today


def record_payment_failure(
    session: Session,
    plan_id: int,
    *,
    reason: str,
    actor: str | None = None,
    on: date | None = None,
    key: str | None = None,
) -> LogEntry:
    """Log that the billing system could not collect the plan's balance. `key` is the
    idempotency key of the request it answers (the action instance key), when known."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput(
            "a reason is required (what the billing system answered)", field="reason"
        )
    plan = plan_repository.get_or_not_found(session, plan_id)
    entry = log(
        session,
        Event.payment_retry_failed,
        on=on or business_today(session),
        actor=actor,
        customer_id=plan.customer_id,
        invoice_id=plan.invoice_id,
        plan_id=plan.id,
        level=plan.level,
        reason=reason,
        balance=money_text(plan.balance, plan.currency),
        currency=plan.currency,
        plan_status=plan.status,
        idempotency_key=key,
    )
    session.flush()
    return entry


__all__ = ["record_payment_failure"]
