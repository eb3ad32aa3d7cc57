"""R15 scheduling markers shared by everything that changes what the run must look at."""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, delete, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from recoup.core.db import forget_loaded, table_of
from recoup.domain.enums import PlanStatus
from recoup.models import Invoice, InvoiceCheck, Plan

# A date before any business date: "look at this on the next run".
CHECK_NOW = date(1970, 1, 1)


def recheck_invoices(session: Session, invoice_ids: list[str]) -> None:
    if invoice_ids:
        session.execute(delete(InvoiceCheck).where(InvoiceCheck.invoice_id.in_(invoice_ids)))
        session.execute(
            insert(InvoiceCheck), [{"invoice_id": i, "check_on": CHECK_NOW} for i in invoice_ids]
        )


_CHECKS = table_of(InvoiceCheck)
# the row recheck_invoices leaves, in one statement built once (a payment through the API)
_CHECK_NOW = {
    name: dialect.insert(_CHECKS)
    .values(invoice_id=bindparam("checked_id"), check_on=CHECK_NOW)
    .on_conflict_do_update(index_elements=["invoice_id"], set_={"check_on": CHECK_NOW})
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def recheck_invoice(session: Session, invoice_id: str) -> None:
    """recheck_invoices of one invoice."""
    session.execute(_CHECK_NOW[session.get_bind().dialect.name], {"checked_id": invoice_id})
    forget_loaded(session, InvoiceCheck, invoice_id)


def check_on(session: Session, invoice_id: str) -> date | None:
    """When the run looks at this invoice next (None: not until something changes)."""
    return session.scalar(
        select(InvoiceCheck.check_on).where(InvoiceCheck.invoice_id == invoice_id)
    )


def recheck_everything(session: Session) -> None:
    """After a configuration change every open invoice and active plan is looked at again."""
    session.execute(delete(InvoiceCheck))
    session.execute(
        insert(InvoiceCheck).from_select(
            ["invoice_id", "check_on"],
            select(Invoice.id, literal(CHECK_NOW)).where(Invoice.is_open),
        )
    )
    session.execute(
        update(Plan).where(Plan.status == PlanStatus.active.value).values(next_step_on=CHECK_NOW)
    )
