"""Every query of documents: lists with filters and a cursor, one by id, a plan's, an
instance's, the latest letter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import Keyset, check_limit, decode_cursor
from recoup.models import Charge, Customer, Document, Invoice, Plan, TemplateRow
from recoup.plans.links import plan_links

LETTER = "letter"


def get_or_not_found(session: Session, document_id: int) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


def _after(cursor: str, keyset: Keyset) -> Any:
    """The rows past the cursor's in the order `keyset` reads (the list's: newest first, then
    id descending; its reverse `before`)."""
    key = decode_cursor(cursor)
    try:
        created_at, document_id = datetime.fromisoformat(str(key[0])), int(key[1])
    except (IndexError, TypeError, ValueError):
        raise InvalidInput("{field}: not a cursor this list gave out", field="cursor") from None
    return or_(
        keyset.past(Document.created_at, created_at),
        and_(Document.created_at == created_at, keyset.past(Document.id, document_id)),
    )


def list_documents(
    session: Session,
    *,
    plan_id: int | None = None,
    invoice_id: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    before: bool = False,
) -> tuple[list[Document], str | None]:
    """Documents, newest first; of one plan, and/or about one invoice, and/or of one kind.
    `limit`: at most that many, with the cursor of the next page (None: the last page);
    without a limit, all of them. `before`: the page before the cursor's document."""
    if limit is not None:
        check_limit(limit)
    keyset = Keyset(descending=True, before=before)
    query = select(Document).order_by(*keyset.order(Document.created_at, Document.id))
    if plan_id is not None:
        query = query.where(Document.plan_id == plan_id)
    if kind is not None:
        query = query.where(Document.kind == kind)
    if cursor is not None:
        query = query.where(_after(cursor, keyset))
    if invoice_id is not None:
        # JSON containment differs between SQLite and PostgreSQL: narrow to the invoice's
        # plans (and plan-less documents) in SQL, then check the list here.
        links = plan_links()
        plans = select(links.c.plan_id).where(links.c.invoice_id == invoice_id)
        query = query.where(or_(Document.plan_id.in_(plans), Document.plan_id.is_(None)))
    elif limit is not None:
        query = query.limit(limit + 1)
    rows: list[Document] = []
    for document in session.scalars(query):
        if invoice_id is not None and invoice_id not in (document.invoice_ids or []):
            continue
        rows.append(document)
        if limit is not None and len(rows) > limit:
            break
    if limit is None:
        return keyset.page(rows, len(rows))  # all of them, in the list's order
    return keyset.page(rows, limit, lambda last: [last.created_at.isoformat(), last.id])


def for_plan(session: Session, plan_id: int) -> list[Document]:
    """A plan's documents, in the order they were made (the plan's page)."""
    return list(
        session.scalars(select(Document).where(Document.plan_id == plan_id).order_by(Document.id))
    )


def for_instance(session: Session, instance_id: int) -> Document | None:
    """The document an action instance generated (unique per instance)."""
    return session.scalar(select(Document).where(Document.action_instance_id == instance_id))


def latest_letter(
    session: Session, *, plan_id: int | None, invoice_id: str | None = None
) -> Document | None:
    """The newest letter of a plan (without a plan: the newest letter about the invoice)."""
    if plan_id is not None:
        return session.scalar(
            select(Document)
            .where(Document.plan_id == plan_id, Document.kind == LETTER)
            .order_by(Document.created_at.desc(), Document.id.desc())
            .limit(1)
        )
    if invoice_id is None:
        return None
    found, _ = list_documents(session, invoice_id=invoice_id, kind=LETTER, limit=1)
    return found[0] if found else None


# --- what a template preview reads ---------------------------------------------------------


def invoice(session: Session, invoice_id: str) -> Invoice | None:
    return session.get(Invoice, invoice_id)


def customer(session: Session, customer_id: str) -> Customer | None:
    return session.get(Customer, customer_id)


def plans_of_invoice(session: Session, invoice_id: str) -> list[Plan]:
    """The plans covering the invoice, newest first."""
    links = plan_links()
    return list(
        session.scalars(
            select(Plan)
            .join(links, links.c.plan_id == Plan.id)
            .where(links.c.invoice_id == invoice_id)
            .order_by(Plan.id.desc())
        ).unique()
    )


def open_invoices_of_plan(session: Session, plan_id: int) -> list[Invoice]:
    """The open invoices the plan covers, by due date."""
    links = plan_links()
    return list(
        session.scalars(
            select(Invoice)
            .join(links, links.c.invoice_id == Invoice.id)
            .where(links.c.plan_id == plan_id, Invoice.is_open)
            .order_by(Invoice.due_date, Invoice.id)
        )
    )


def template_channels(session: Session, code: str) -> list[str]:
    """The channels template `code` exists for, sorted."""
    return sorted(set(session.scalars(select(TemplateRow.channel).where(TemplateRow.code == code))))


def charges_of(session: Session, *, plan_id: int | None, invoice_id: str) -> list[Charge]:
    """The charges of the plan, or without a plan those of the invoice, in order."""
    owner = Charge.plan_id == plan_id if plan_id is not None else Charge.invoice_id == invoice_id
    return list(session.scalars(select(Charge).where(owner).order_by(Charge.id)))


__all__ = [
    "LETTER",
    "charges_of",
    "customer",
    "for_instance",
    "for_plan",
    "get_or_not_found",
    "invoice",
    "latest_letter",
    "list_documents",
    "open_invoices_of_plan",
    "plans_of_invoice",
    "template_channels",
]
