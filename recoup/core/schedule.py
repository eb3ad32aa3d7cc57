"""R15 scheduling markers shared by everything that changes what the run must look at."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update
from sqlalchemy.orm import Session

from recoup.domain.enums import InvoiceStatus, PlanStatus
from recoup.models import Invoice, Plan

# A date before any business date: "look at this on the next run".
CHECK_NOW = date(1970, 1, 1)


def recheck_invoices(session: Session, invoice_ids: list[str]) -> None:
    if invoice_ids:
        session.execute(
            update(Invoice).where(Invoice.id.in_(invoice_ids)).values(next_check_on=CHECK_NOW)
        )


def recheck_everything(session: Session) -> None:
    """After a configuration change every open invoice and active plan is looked at again."""
    session.execute(
        update(Invoice)
        .where(Invoice.status.in_([InvoiceStatus.open.value, InvoiceStatus.partially_paid.value]))
        .values(next_check_on=CHECK_NOW)
    )
    session.execute(
        update(Plan).where(Plan.status == PlanStatus.active.value).values(next_step_on=CHECK_NOW)
    )
