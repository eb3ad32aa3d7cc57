"""The book written one row at a time or in batches (the API's data in), over the imports: a
customer, an invoice or a payment given as JSON is a row of an import (recoup.book.schemas), and
goes through the very same checks and effects as a row of a CSV file. Recording a payment closes
or recovers plans exactly as `recoup import payments` does (R8), because it is that import.

And the invoice's PDF: stored inside the invoice folder (RECOUP_INVOICE_DIR), where the emails
read attachments from (`pdf_path`). Services flush, never commit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from recoup.book import repository
from recoup.book.customers import import_customers
from recoup.book.imports import ImportReport
from recoup.book.invoices import import_invoices
from recoup.book.payments import import_payments, record_row
from recoup.book.schemas import (
    CustomerCreate,
    CustomerUpdate,
    InvoiceCreate,
    InvoiceUpdate,
    PaymentCreate,
)
from recoup.core.env import EnvConfig
from recoup.core.errors import Conflict, FieldError, InvalidInput, NotFound
from recoup.core.files import PDF_MAGIC, FileRefused, UnsafePath, read_inside, write_private
from recoup.domain.enums import Event
from recoup.log.service import log
from recoup.models import Invoice, PaymentAllocation, Plan
from recoup.plans import repository as plan_repository

MAX_BATCH = 10_000
UPLOAD_FOLDER = "uploaded"  # inside the invoice folder: PDFs sent over the API

Importer = Callable[..., ImportReport]


@dataclass(frozen=True)
class Kind:
    name: str
    schema: type[BaseModel]
    importer: Importer


KINDS: dict[str, Kind] = {
    "customers": Kind("customers", CustomerCreate, import_customers),
    "invoices": Kind("invoices", InvoiceCreate, import_invoices),
    "payments": Kind("payments", PaymentCreate, import_payments),
}


def _one(
    importer: Importer, session: Session, row: dict[str, str], actor: str | None
) -> ImportReport:
    """A row through its import; the import's refusal as the row's own (no batch, no index)."""
    try:
        return importer(session, [row], actor=actor)
    except InvalidInput as exc:
        if not exc.errors:
            raise
        errors = [FieldError(e.field, e.message) for e in exc.errors]
        raise InvalidInput(
            "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors),
            errors=errors,
        ) from None


# --- one at a time -------------------------------------------------------------------------------


def create_customer(
    session: Session, body: CustomerCreate, *, actor: str | None, reason: str | None = None
) -> str:
    if repository.customers_by_id(session, [body.id]):
        raise Conflict(
            f"customer {body.id!r} exists already; change it instead of creating it",
            field="id",
        )
    _one(import_customers, session, body.row(), actor)
    _log_write(session, Event.customer_created, body, actor, reason, customer_id=body.id)
    return body.id


def update_customer(
    session: Session,
    customer_id: str,
    body: CustomerUpdate,
    *,
    actor: str | None,
    reason: str | None = None,
) -> str:
    current = repository.get_customer_or_not_found(session, customer_id)
    # a customers file must have the name column: the stored name when the change has none
    row = {"name": current.name, **body.row(customer_id)}
    _one(import_customers, session, row, actor)
    _log_write(session, Event.customer_changed, body, actor, reason, customer_id=customer_id)
    return customer_id


def create_invoice(
    session: Session, body: InvoiceCreate, *, actor: str | None, reason: str | None = None
) -> Invoice:
    if repository.invoices_by_id(session, [body.id]):
        raise Conflict(
            f"invoice {body.id!r} exists already; change it instead of creating it", field="id"
        )
    _one(import_invoices, session, body.row(), actor)
    invoice = repository.get_invoice_or_not_found(session, body.id)
    _log_write(
        session,
        Event.invoice_created,
        body,
        actor,
        reason,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
    )
    return invoice


def update_invoice(
    session: Session,
    invoice_id: str,
    body: InvoiceUpdate,
    *,
    actor: str | None,
    reason: str | None = None,
) -> Invoice:
    current = repository.get_invoice_or_not_found(session, invoice_id)
    _one(import_invoices, session, body.row(current), actor)
    _log_write(
        session,
        Event.invoice_changed,
        body,
        actor,
        reason,
        customer_id=current.customer_id,
        invoice_id=invoice_id,
    )
    return repository.get_invoice_or_not_found(session, invoice_id)


def _log_write(
    session: Session,
    event: Event,
    body: BaseModel,
    actor: str | None,
    reason: str | None,
    **where: Any,
) -> None:
    """Who wrote which fields (the values are in the book; the log says who and why)."""
    fields = sorted(body.model_fields_set - {"id"})
    log(session, event, actor=actor, fields=fields, reason=reason, **where)


@dataclass(frozen=True)
class PaymentRecorded:
    """A payment and what recording it did, as PaymentRead shows it; `created`: False when
    it was recorded before (the same payment again)."""

    id: str
    customer_id: str
    invoice_id: str | None
    amount: Decimal
    currency: str
    date: date
    allocations: list[PaymentAllocation]
    unallocated: Decimal
    plans_closed: list[Plan]
    created: bool


def record_payment(session: Session, body: PaymentCreate, *, actor: str | None) -> PaymentRecorded:
    """Record one payment (R8), through the payments import: the same allocation, the same
    plans closed or recovered. The same payment again (same id, same values) changes nothing."""
    row = body.row()
    one = record_row(session, row, actor=actor)
    if one is not None:  # what it wrote is known: nothing to read back
        return _recorded(one.payment, one.allocations, one.report, one.plans_closed)
    # declined (recorded before, a refusal): the import's answer, without asking again
    report = _one(partial(import_payments, short=False), session, row, actor)
    return _recorded(
        repository.get_payment_or_not_found(session, body.id),
        repository.allocations_of_payment(session, body.id),
        report,
        [plan_repository.get_or_not_found(session, i) for i in report.plans_recovered],
    )


def _recorded(
    payment: Any, allocations: list[Any], report: ImportReport, plans_closed: list[Any]
) -> PaymentRecorded:
    """The answer about `payment` (the one written, or the row of one recorded before)."""
    return PaymentRecorded(
        id=payment.id,
        customer_id=payment.customer_id,
        invoice_id=payment.invoice_id,
        amount=payment.amount,
        currency=payment.currency,
        date=payment.date,
        allocations=allocations,
        unallocated=sum((u.amount for u in report.unallocated), start=Decimal(0)),
        plans_closed=plans_closed,
        created=report.created > 0,
    )


# --- batches -------------------------------------------------------------------------------------


def import_batch(
    session: Session,
    kind: str,
    rows: Sequence[Any],
    *,
    actor: str | None,
    reason: str | None = None,
) -> ImportReport:
    """Many rows at once, all or nothing (`POST /{kind}/batch`): each row is checked as its
    schema checks one, then the good ones go through the import in one go (its bulk writes). A
    bad row refuses the batch, every bad row named by its `index` in the batch and its field;
    the caller's transaction, rolled back, leaves nothing written."""
    spec = KINDS[kind]
    if len(rows) > MAX_BATCH:
        raise InvalidInput(f"{{field}}: at most {MAX_BATCH} rows in a batch", field="data")
    errors: list[FieldError] = []
    good: list[dict[str, str]] = []
    positions: list[int] = []  # batch index of each good row
    first: dict[str, int] = {}
    for index, raw in enumerate(rows):
        try:
            row = spec.schema.model_validate(raw).row()  # type: ignore[attr-defined]
        except ValidationError as exc:
            errors.extend(FieldError(_loc(e["loc"]) or None, e["msg"], index) for e in exc.errors())
            continue
        row_id = row["id"]
        if row_id in first:
            errors.append(
                FieldError(
                    "id",
                    f"{row_id!r} appears twice in the batch (first at index {first[row_id]})",
                    index,
                )
            )
            continue
        first[row_id] = index
        good.append(row)
        positions.append(index)
    report: ImportReport | None = None
    if good:
        try:
            report = spec.importer(session, good, actor=actor)
        except InvalidInput as exc:
            if not exc.errors:
                raise
            errors.extend(
                FieldError(e.field, e.message, positions[e.index] if e.index is not None else None)
                for e in exc.errors
            )
    if errors:
        # also when the good rows were written: the caller's rollback takes them back
        errors.sort(key=lambda e: -1 if e.index is None else e.index)
        bad = len({e.index for e in errors})
        raise InvalidInput(
            f"{kind} not imported: {bad} bad row{'s' if bad != 1 else ''} (nothing was changed)",
            errors=errors,
        )
    report = report if report is not None else ImportReport(kind)
    log(
        session,
        Event.book_imported,
        actor=actor,
        kind=kind,
        rows=len(rows),
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        reason=reason,
    )
    return report


def _loc(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- invoice PDFs --------------------------------------------------------------------------------


def pdf_path_for(invoice_id: str) -> str:
    """Where an invoice's uploaded PDF goes, inside the invoice folder: a name made from the id
    (any text) that cannot leave the folder or collide with another invoice's."""
    return f"{UPLOAD_FOLDER}/{hashlib.sha256(invoice_id.encode()).hexdigest()[:32]}.pdf"


def store_invoice_pdf(
    session: Session,
    invoice_id: str,
    content: bytes,
    *,
    env: EnvConfig,
    actor: str | None = None,
    reason: str | None = None,
) -> Invoice:
    """Keep `content` as the invoice's PDF (the one emails attach, R-send_email), replacing
    the one it had. It must be a PDF and no larger than RECOUP_INVOICE_MAX_MB."""
    invoice = repository.get_invoice_or_not_found(session, invoice_id)
    if not content:
        raise InvalidInput("{field} is empty: send the invoice's PDF", field="file")
    if len(content) > env.invoice_max_bytes:
        raise InvalidInput(
            f"{{field}} is larger than {env.invoice_max_bytes} bytes (RECOUP_INVOICE_MAX_MB)",
            field="file",
        )
    if not content.startswith(PDF_MAGIC):
        raise InvalidInput(
            f"{{field}} is not a PDF (it does not start with {PDF_MAGIC.decode()})", field="file"
        )
    folder = env.invoices_dir
    path = pdf_path_for(invoice.id)
    write_private(
        folder / path, content, below=folder, file_mode=env.file_mode, dir_mode=env.dir_mode
    )
    invoice.pdf_path = path
    log(
        session,
        Event.invoice_pdf_stored,
        actor=actor,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        size=len(content),
        reason=reason,
    )
    session.flush()
    return invoice


def read_invoice_pdf(session: Session, invoice_id: str, *, env: EnvConfig) -> tuple[str, bytes]:
    """(file name, content) of the invoice's PDF, read as the emails read it (inside the
    invoice folder, a regular PDF file of bounded size)."""
    invoice = repository.get_invoice_or_not_found(session, invoice_id)
    if not invoice.pdf_path:
        raise NotFound(f"invoice {invoice_id!r} has no PDF")
    try:
        return read_inside(env.invoices_dir, invoice.pdf_path, max_bytes=env.invoice_max_bytes)
    except FileNotFoundError:
        raise NotFound(
            f"invoice {invoice_id!r}: its PDF {invoice.pdf_path!r} is not in the invoice folder"
        ) from None
    except (UnsafePath, FileRefused) as exc:
        raise Conflict(f"invoice {invoice_id!r}: its PDF cannot be sent: {exc.message}") from None


__all__ = [
    "KINDS",
    "MAX_BATCH",
    "PaymentRecorded",
    "create_customer",
    "create_invoice",
    "import_batch",
    "pdf_path_for",
    "read_invoice_pdf",
    "record_payment",
    "store_invoice_pdf",
    "update_customer",
    "update_invoice",
]
