"""Charges after they are made (SPEC §3): a person waives one, with a reason (no longer owed;
the billing system hears of it through the `charge_waived` event); the billing system's
acknowledgement marks open ones `exported`. Services flush, never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from recoup.charges import repository
from recoup.core.clock import utc_now
from recoup.core.errors import Conflict, InvalidInput
from recoup.domain.enums import SYSTEM_ACTOR, ChargeStatus, Event
from recoup.domain.money import money_text
from recoup.log.service import log
from recoup.models import Charge


def _refs(charge: Charge) -> dict[str, Any]:
    return {
        "customer_id": charge.customer_id,
        "invoice_id": charge.invoice_id,
        "plan_id": charge.plan_id,
        "charge_id": charge.id,
        "amount": money_text(charge.amount, charge.currency),
        "currency": charge.currency,
        "service": charge.service,
        "kind": charge.kind,
    }


def waive_charge(session: Session, charge: Charge, *, reason: str, actor: str, on: date) -> Charge:
    """Forgive a charge: it is no longer owed. An exported one too (the billing system is
    told by the event, with `previous_status: exported`); a waived one cannot be again."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            "{field} must not be empty: say why the charge is waived", field="reason"
        )
    if not actor or actor == SYSTEM_ACTOR:
        raise InvalidInput(
            "waiving a charge needs a person: pass {field} NAME or set RECOUP_USER", field="user"
        )
    if charge.status == ChargeStatus.waived:
        raise Conflict(
            f"charge {charge.id} was already waived by {charge.waived_by}"
            f" ({charge.waived_reason}): a charge is waived once"
        )
    previous = charge.status
    charge.status = ChargeStatus.waived.value
    charge.waived_at = utc_now()
    charge.waived_by = actor
    charge.waived_reason = reason
    log(
        session,
        Event.charge_waived,
        on=on,
        actor=actor,
        previous_status=previous,
        reason=reason,
        **_refs(charge),
    )
    session.flush()
    return charge


def export_charges(
    session: Session,
    charge_ids: Sequence[int] = (),
    *,
    all_open: bool = False,
    actor: str,
    on: date,
    reason: str | None = None,
) -> tuple[list[Charge], list[Charge]]:
    """Mark open charges `exported` (the billing system has them); returns (newly exported,
    already exported). Waived charges are refused: they are owed by nobody."""
    if bool(charge_ids) == all_open:
        raise InvalidInput(
            "name the charges to mark exported, or pass {field} (not both)", field="all_open"
        )
    if all_open:
        charges = repository.open_charges(session)
    else:
        charges = [
            repository.get_or_not_found(session, charge_id)
            for charge_id in dict.fromkeys(charge_ids)
        ]
        waived = [c for c in charges if c.status == ChargeStatus.waived]
        if waived:
            ids = ", ".join(str(c.id) for c in waived)
            raise Conflict(f"charge(s) {ids} are waived: not owed, nothing to export")
    exported = [c for c in charges if c.status == ChargeStatus.open]
    already = [c for c in charges if c.status == ChargeStatus.exported]
    now = utc_now()
    for charge in exported:
        charge.status = ChargeStatus.exported.value
        charge.exported_at = now
        log(session, Event.charge_exported, on=on, actor=actor, reason=reason, **_refs(charge))
    session.flush()
    return exported, already


__all__ = ["export_charges", "waive_charge"]
