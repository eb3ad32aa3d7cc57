"""Writing the append-only log (R14). Every skip, failure and retry goes through here."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from recoup.core.clock import utc_now
from recoup.domain.enums import SYSTEM_ACTOR, Event
from recoup.models import LogEntry


def log_row(
    event: Event | str,
    *,
    on: date | None = None,
    actor: str | None = None,
    customer_id: str | None = None,
    invoice_id: str | None = None,
    plan_id: int | None = None,
    level: str | None = None,
    action: str | None = None,
    run_id: int | None = None,
    **details: Any,
) -> dict[str, Any]:
    """A log entry as a plain row, for bulk inserts."""
    return {
        "at": utc_now(),
        "on": on,
        "event": str(event),
        "actor": actor or SYSTEM_ACTOR,
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "plan_id": plan_id,
        "level": level,
        "action": action,
        "run_id": run_id,
        "details": {k: _jsonable(v) for k, v in details.items() if v is not None},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | bool | float) or value is None:
        return value
    return str(value)  # Decimal, enums: exact text


def log(session: Session, event: Event | str, **kwargs: Any) -> LogEntry:
    entry = LogEntry(**log_row(event, **kwargs))
    session.add(entry)
    return entry


def log_for_plan(session: Session, event: Event | str, plan: Any, **kwargs: Any) -> LogEntry:
    """A log entry about a plan: its customer, invoice, id and (unless given) current level."""
    kwargs.setdefault("level", plan.level)
    return log(
        session,
        event,
        customer_id=plan.customer_id,
        invoice_id=plan.invoice_id,
        plan_id=plan.id,
        **kwargs,
    )
