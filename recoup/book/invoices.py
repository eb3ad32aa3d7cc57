"""Invoices: importing them (SPEC §5, R8), looking one up, and disputes (R10), whoever reports
them (`recoup invoice dispute|undispute`, or a `disputed` column of an import)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from recoup.book import repository
from recoup.book.imports import (
    ImportReport,
    Progress,
    Rows,
    did_you_mean,
    parse,
    recheck,
    refresh_plans,
)
from recoup.book.repository import chunks
from recoup.book.rows import InvoiceIn, RowError, parse_invoice, resolve_balance
from recoup.core.errors import Conflict
from recoup.domain.enums import DISPUTE_REASON, Event, Mode, PlanStatus
from recoup.log.service import log
from recoup.models import Invoice
from recoup.plans.closing import refresh_plans_after_change
from recoup.plans.service import pause_plan, resume_plan
from recoup.schedule.service import recheck_invoices
from recoup.settings.service import business_today, get_settings

# Invoice fields that change what the engine must do with it (R2, R4, R15).
INVOICE_FIELDS_THAT_MATTER = frozenset(
    {"customer_id", "type", "due_date", "currency", "amount", "amount_due", "status", "disputed"}
)
# ... and those that change a plan's balance (R8).
INVOICE_BALANCE_FIELDS = frozenset(
    {"customer_id", "type", "due_date", "currency", "amount_due", "status"}
)
INVOICE_DEFAULTS: dict[str, Any] = {"type": "commercial", "disputed": False, "pdf_path": None}


@dataclass
class DisputeResult:
    invoice_id: str
    disputed: bool
    plans_paused: list[int] = field(default_factory=list)
    plans_resumed: list[int] = field(default_factory=list)
    plans_recovered: list[int] = field(default_factory=list)
    # invoice mode: an open plan left as it was (e.g. already paused for another reason)
    plans_untouched: list[int] = field(default_factory=list)


def get_invoice(session: Session, invoice_id: str) -> Invoice:
    return repository.get_invoice_or_not_found(session, invoice_id)


# --- import --------------------------------------------------------------------------------------


def import_invoices(
    session: Session,
    rows: Rows,
    *,
    actor: str | None = None,
    on: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Create or update invoices by id; the engine looks again at every invoice whose dunning
    facts changed, and plans whose debt is gone close `recovered` now (R8). A change of
    `disputed` is handled like `recoup invoice dispute|undispute`."""
    batch = parse("invoices", rows, parse_invoice, progress)
    values: list[InvoiceIn] = batch.values
    errors = batch.errors
    on = on or business_today(session)
    report = ImportReport("invoices", rows=batch.total)

    # check against the database, a chunk at a time
    existing: dict[str, Invoice] = {}
    resolved: dict[str, tuple[str, Decimal]] = {}
    known_customers = repository.existing_customer_ids(session, (v.customer_id for v in values))
    currency_changed: dict[str, InvoiceIn] = {}
    for chunk in chunks(values):
        existing.update(repository.invoices_by_id(session, (v.id for v in chunk)))
        for value in chunk:
            if value.customer_id not in known_customers:
                errors.append(
                    RowError(value.line, "customer_id", f"customer {value.customer_id!r} not found")
                )
            current = existing.get(value.id)
            if current is not None and current.currency != value.currency:
                currency_changed[value.id] = value
            result = resolve_balance(
                value,
                current.status if current is not None else None,
                current.amount_due if current is not None else None,
            )
            if isinstance(result, list):
                errors.extend(result)
            else:
                resolved[value.id] = result
    if currency_changed:
        paid_into = repository.invoices_paid_into(session, currency_changed.keys())
        for invoice_id in sorted(paid_into):
            value = currency_changed[invoice_id]
            errors.append(
                RowError(
                    value.line,
                    "currency",
                    f"cannot change from {existing[invoice_id].currency} to {value.currency}: "
                    "payments were recorded against this invoice",
                )
            )
    errors.extend(_moves_under_a_plan(session, values, existing))
    if errors:
        raise batch.refused()
    report.warnings.extend(_undunned_types(session, values, existing))

    # write
    if progress:
        progress("writing", 0, len(values))
    refresh: set[str] = set()
    disputes: list[tuple[Invoice, bool]] = []
    done = 0
    for chunk in chunks(values):
        creates: list[dict[str, Any]] = []
        changed_facts: list[str] = []
        for value in chunk:
            status, amount_due = resolved[value.id]
            new = {**value.fields, "status": status, "amount_due": amount_due}
            current = existing.get(value.id)
            if current is None:
                creates.append({"id": value.id, **INVOICE_DEFAULTS, **new})
                changed_facts.append(value.id)
                continue
            changed = {k: v for k, v in new.items() if getattr(current, k) != v}
            if not changed:
                report.unchanged += 1
                continue
            report.updated += 1
            disputed = changed.pop("disputed", None)
            for name, new_value in changed.items():
                setattr(current, name, new_value)
            if disputed is not None:
                disputes.append((current, disputed))
            if changed.keys() & INVOICE_FIELDS_THAT_MATTER:
                changed_facts.append(value.id)
            if changed.keys() & INVOICE_BALANCE_FIELDS:
                refresh.add(value.id)
        if creates:
            session.execute(insert(Invoice), creates)
            report.created += len(creates)
        session.flush()
        report.rechecked += recheck(session, changed_facts)
        done += len(chunk)
        if progress:
            progress("writing", done, len(values))

    report.plans_recovered.extend(refresh_plans(session, refresh, on=on, actor=actor))
    for invoice, disputed in disputes:
        effect = set_disputed(session, invoice, disputed, on=on, actor=actor, reason="import")
        report.plans_paused.extend(effect.plans_paused)
        report.plans_resumed.extend(effect.plans_resumed)
        report.plans_recovered.extend(effect.plans_recovered)
    session.flush()
    return report


def _undunned_types(
    session: Session, values: Sequence[InvoiceIn], existing: Mapping[str, Invoice]
) -> list[str]:
    """Invoices of a type the settings do not dun (R2): imported, but named, so that a typo
    (`commerical`) does not go unnoticed until the money is late."""
    types = list(get_settings(session).invoice_types or [])
    counts: Counter[str] = Counter()
    for value in values:
        current = existing.get(value.id)
        type_ = value.fields.get("type") or (
            current.type if current is not None else INVOICE_DEFAULTS["type"]
        )
        if type_ not in types:
            counts[type_] += 1
    return [
        f"{n} invoice{'s' if n != 1 else ''} of type {type_!r} will not be dunned"
        f"{did_you_mean(type_, types)} (invoice types: {', '.join(types)})"
        for type_, n in sorted(counts.items())
    ]


def _moves_under_a_plan(
    session: Session, values: Sequence[InvoiceIn], existing: Mapping[str, Invoice]
) -> list[RowError]:
    """An invoice cannot move to another customer while an open plan dunns it for the first:
    the plan would go on writing to the wrong customer about a debt it no longer covers."""
    moving = {
        v.id: v for v in values if v.id in existing and existing[v.id].customer_id != v.customer_id
    }
    if not moving:
        return []
    errors = []
    for invoice_id, plan_id, customer_id in repository.open_plans_covering(session, moving):
        value = moving[invoice_id]
        errors.append(
            RowError(
                value.line,
                "customer_id",
                f"cannot move invoice {invoice_id} to customer {value.customer_id}: plan "
                f"{plan_id} of customer {customer_id} is dunning it (stop plan {plan_id} first)",
            )
        )
    return errors


# --- disputes ------------------------------------------------------------------------------------


def dispute_invoice(
    session: Session,
    invoice_id: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    on: date | None = None,
) -> DisputeResult:
    """Mark an invoice disputed (R10): its plan pauses with reason `dispute` (invoice mode),
    or it leaves the customer's balance (customer mode)."""
    invoice = get_invoice(session, invoice_id)
    if invoice.disputed:
        raise Conflict(f"invoice {invoice_id!r} is already disputed")
    return set_disputed(
        session, invoice, True, on=on or business_today(session), actor=actor, reason=reason
    )


def undispute_invoice(
    session: Session,
    invoice_id: str,
    *,
    reason: str | None = None,
    actor: str | None = None,
    on: date | None = None,
) -> DisputeResult:
    """Clear a dispute: the plan paused for it resumes (invoice mode), or the invoice counts in
    the customer's balance again (customer mode)."""
    invoice = get_invoice(session, invoice_id)
    if not invoice.disputed:
        raise Conflict(f"invoice {invoice_id!r} is not disputed")
    return set_disputed(
        session, invoice, False, on=on or business_today(session), actor=actor, reason=reason
    )


def set_disputed(
    session: Session,
    invoice: Invoice,
    disputed: bool,
    *,
    on: date,
    actor: str | None = None,
    reason: str | None = None,
) -> DisputeResult:
    """The effect of a dispute starting or ending, whoever reports it (command or import)."""
    invoice.disputed = disputed
    log(
        session,
        Event.invoice_disputed if disputed else Event.invoice_undisputed,
        on=on,
        actor=actor,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        reason=reason,
    )
    result = DisputeResult(invoice.id, disputed)
    if get_settings(session).mode == Mode.customer:
        # the invoice simply leaves (or rejoins) the customer's balance
        session.flush()
        result.plans_recovered = [
            p.id for p in refresh_plans_after_change(session, [invoice.id], on=on, actor=actor)
        ]
    else:
        for plan in repository.open_plans_of_invoice(session, invoice.id):
            if disputed and plan.status == PlanStatus.active:
                pause_plan(session, plan, reason=DISPUTE_REASON, until=None, on=on, actor=actor)
                result.plans_paused.append(plan.id)
            elif (
                not disputed
                and plan.status == PlanStatus.paused
                and plan.pause_reason == DISPUTE_REASON
            ):
                resume_plan(session, plan, on=on, actor=actor, reason="dispute cleared")
                result.plans_resumed.append(plan.id)
            else:
                result.plans_untouched.append(plan.id)
    recheck_invoices(session, [invoice.id])
    session.flush()
    return result


__all__ = [
    "DisputeResult",
    "dispute_invoice",
    "get_invoice",
    "import_invoices",
    "set_disputed",
    "undispute_invoice",
]
