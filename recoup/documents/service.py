"""Documents: storing generated letters, finding them, previewing templates with real data.

Services flush, never commit: the action framework or the CLI command owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from recoup.actions.context import OUTSTANDING
from recoup.actions.email import safe_filename
from recoup.actions.render import (
    TemplateNotFound,
    build_variables,
    render_row,
    select_template,
)
from recoup.core.env import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from recoup.core.errors import InvalidInput, NotFound
from recoup.core.files import write_private
from recoup.documents.letter import Letter, Pdf, render_letter, to_pdf
from recoup.domain.enums import Channel, PlanStatus
from recoup.models import (
    ActionInstance,
    Charge,
    Customer,
    Document,
    Invoice,
    LevelRow,
    Plan,
    TemplateRow,
)
from recoup.plans.links import plan_links
from recoup.settings.service import get_settings

LETTER = "letter"
DOCUMENT_FIELDS = ["id", "plan_id", "kind", "path", "invoice_ids", "created_at"]


# --- files ---------------------------------------------------------------------------------


def letter_path(
    documents_dir: Path,
    instance: ActionInstance,
) -> Path:
    """`<documents>/<plan id>/<instance id>-<level>-<action>.pdf` (a reminder's letter:
    `<documents>/invoice-<invoice id>/…`). Deterministic: a retry overwrites the same file."""
    folder = (
        str(instance.plan_id)
        if instance.plan_id is not None
        else f"invoice-{safe_filename(instance.invoice_id or 'none')}"
    )
    name = f"{instance.id}-{safe_filename(instance.level)}-{safe_filename(instance.action)}.pdf"
    return documents_dir / folder / name


def write_file(
    path: Path,
    content: bytes,
    *,
    below: Path | None = None,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> None:
    """Write atomically: a reader never sees half a PDF; a retry replaces the file. Owner-only,
    through a fresh temporary file; no symlink is followed in the folders below `below` (the
    data folder; default: the file's own folder) — see recoup.core.files."""
    write_private(
        path,
        content,
        below=below if below is not None else path.parent,
        file_mode=file_mode,
        dir_mode=dir_mode,
    )


# --- rows ----------------------------------------------------------------------------------


def document_for_instance(session: Session, instance_id: int) -> Document | None:
    return session.scalar(select(Document).where(Document.action_instance_id == instance_id))


def store_letter(
    session: Session,
    instance: ActionInstance,
    *,
    path: Path,
    invoice_ids: list[str],
) -> Document:
    """The instance's letter document: created once (unique action_instance_id), updated on a
    regeneration."""
    document = document_for_instance(session, instance.id)
    if document is None:
        document = Document(
            plan_id=instance.plan_id,
            action_instance_id=instance.id,
            kind=LETTER,
        )
        session.add(document)
    document.path = str(path)
    document.invoice_ids = list(invoice_ids)
    session.flush()
    return document


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
    found = [d for d in list_documents(session, invoice_id=invoice_id) if d.kind == LETTER]
    return found[0] if found else None


def list_documents(
    session: Session, *, plan_id: int | None = None, invoice_id: str | None = None
) -> list[Document]:
    """Documents, newest first; of one plan, and/or about one invoice."""
    query = select(Document).order_by(Document.created_at.desc(), Document.id.desc())
    if plan_id is not None:
        query = query.where(Document.plan_id == plan_id)
    if invoice_id is None:
        return list(session.scalars(query))
    # JSON containment differs between SQLite and PostgreSQL: narrow to the invoice's plans
    # (and plan-less documents) in SQL, then check the list here.
    links = plan_links()
    plans = select(links.c.plan_id).where(links.c.invoice_id == invoice_id)
    query = query.where(or_(Document.plan_id.in_(plans), Document.plan_id.is_(None)))
    return [d for d in session.scalars(query) if invoice_id in (d.invoice_ids or [])]


def get_document(session: Session, document_id: int) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


def document_row(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "plan_id": document.plan_id,
        "kind": document.kind,
        "path": document.path,
        "invoice_ids": list(document.invoice_ids or []),
        "created_at": document.created_at,
    }


# --- preview -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    code: str
    channel: str
    language: str
    subject: str | None
    text: str
    html: str | None
    pdf: Pdf | None = None


def _plan_for(session: Session, invoice: Invoice) -> Plan | None:
    """The plan covering the invoice: an open one first, else the newest."""
    links = plan_links()
    plans = list(
        session.scalars(
            select(Plan)
            .join(links, links.c.plan_id == Plan.id)
            .where(links.c.invoice_id == invoice.id)
            .order_by(Plan.id.desc())
        ).unique()
    )
    open_plans = [p for p in plans if p.status in (PlanStatus.active, PlanStatus.paused)]
    candidates = open_plans or plans
    return candidates[0] if candidates else None


def _with_language(customer: Customer, language: str) -> Customer:
    """A transient copy of the customer speaking `language`: the row itself is not touched."""
    values = {c.key: getattr(customer, c.key) for c in sa_inspect(Customer).column_attrs}
    values["language"] = language
    return Customer(**values)


def _plan_invoices(session: Session, plan: Plan) -> list[Invoice]:
    links = plan_links()
    return list(
        session.scalars(
            select(Invoice)
            .join(links, links.c.invoice_id == Invoice.id)
            .where(links.c.plan_id == plan.id, Invoice.status.in_(OUTSTANDING))
            .order_by(Invoice.due_date, Invoice.id)
        )
    )


def _template(session: Session, code: str, channel: str | None, language: str) -> TemplateRow:
    if channel is not None and channel not in {c.value for c in Channel}:
        raise InvalidInput(f"unknown channel {channel!r} (expected email, letter or sms)")
    if channel is None:
        channels = sorted(
            set(session.scalars(select(TemplateRow.channel).where(TemplateRow.code == code)))
        )
        if not channels:
            raise TemplateNotFound(f"no template {code}")
        if len(channels) > 1:
            raise InvalidInput(
                f"template {code} exists for channels {', '.join(channels)}: choose one"
            )
        channel = channels[0]
    template = select_template(session, code, channel, language)
    if template is None:
        raise TemplateNotFound(f"no active template {code} ({channel})")
    return template


def preview_template(
    session: Session,
    code: str,
    *,
    invoice_id: str,
    today: date,
    language: str | None = None,
    channel: str | None = None,
) -> Preview:
    """Render template `code` for the invoice as its customer would get it now: the invoice's
    plan (if any) gives the level, the balance and the invoices; a letter is printed to PDF."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    customer = session.get(Customer, invoice.customer_id)
    assert customer is not None  # the foreign key
    wanted = language if language is not None else customer.language or ""
    template = _template(session, code, channel, wanted)
    if language is not None:  # amounts and dates as well as words in the language asked for
        customer = _with_language(customer, language)
    plan = _plan_for(session, invoice)
    level: LevelRow | None = None
    invoices = [invoice]
    if plan is not None:
        level = next((lvl for lvl in plan.policy.levels if lvl.code == plan.level), None)
        invoices = _plan_invoices(session, plan) or [invoice]
    company = dict(get_settings(session).company or {})
    single = invoice if plan is None or plan.invoice_id is not None else None
    owner = Charge.plan_id == plan.id if plan is not None else Charge.invoice_id == invoice.id
    charges = list(session.scalars(select(Charge).where(owner).order_by(Charge.id)))
    if template.channel == Channel.letter:
        letter: Letter = render_letter(
            template,
            customer=customer,
            today=today,
            invoice=single,
            invoices=invoices,
            plan=plan,
            level=level,
            company=company,
            charges=charges,
        )
        rendered = letter.rendered
        return Preview(
            code=rendered.code,
            channel=rendered.channel,
            language=rendered.language,
            subject=rendered.subject,
            text=rendered.text,
            html=letter.html,
            pdf=to_pdf(letter.html),
        )
    variables = build_variables(
        customer=customer,
        today=today,
        invoice=single,
        invoices=invoices,
        plan=plan,
        level=level,
        company=company,
        charges=charges,
    )
    rendered = render_row(template, variables)
    return Preview(
        code=rendered.code,
        channel=rendered.channel,
        language=rendered.language,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
    )


__all__ = [
    "DOCUMENT_FIELDS",
    "LETTER",
    "Preview",
    "document_for_instance",
    "document_row",
    "get_document",
    "latest_letter",
    "letter_path",
    "list_documents",
    "preview_template",
    "store_letter",
    "write_file",
]
