"""The book written over HTTP (issue 11, data in): customers, invoices and payments one at a
time and in batches, an invoice's PDF, disputes. Thin over recoup.book (the imports' own checks
and effects: a payment closes plans as `recoup import payments` does), the key's name as the
actor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import Field
from starlette.datastructures import UploadFile

from recoup.api.deps import Actor, ReasonHeader, SessionDep, requires
from recoup.api.roles import Right
from recoup.api.schemas import CustomerAccount
from recoup.book import writes
from recoup.book.customers import customer_detail
from recoup.book.imports import ImportReport
from recoup.book.invoices import dispute_invoice, undispute_invoice
from recoup.book.schemas import (
    CustomerCreate,
    CustomerUpdate,
    DisputeChange,
    DisputeRead,
    ImportReportRead,
    InvoiceCreate,
    InvoicePdfRead,
    InvoiceRead,
    InvoiceUpdate,
    PaymentCreate,
    PaymentRead,
)
from recoup.core.env import EnvConfig, load_env
from recoup.core.errors import FieldError, InvalidInput
from recoup.core.requests import in_unit_of_work
from recoup.core.schemas import Schema
from recoup.core.sessions import Session

router = APIRouter(tags=["book"])

Operator = Annotated[Actor, Depends(requires(Right.operate))]


def _env() -> EnvConfig:
    return load_env()


EnvDep = Annotated[EnvConfig, Depends(_env)]


# --- customers -----------------------------------------------------------------------------------


@router.post("/customers", status_code=201)
def create_customer(
    body: CustomerCreate, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> CustomerAccount:
    """A new customer, checked as a row of a customers file; an id that exists is a 409."""
    customer_id = writes.create_customer(session, body, actor=actor.name, reason=why)
    return CustomerAccount.of_detail(customer_detail(session, customer_id))


@router.patch("/customers/{customer_id}")
def update_customer(
    customer_id: str,
    body: CustomerUpdate,
    session: SessionDep,
    actor: Operator,
    why: ReasonHeader = None,
) -> CustomerAccount:
    """Change the fields given (an attribute set to null is removed)."""
    writes.update_customer(session, customer_id, body, actor=actor.name, reason=why)
    return CustomerAccount.of_detail(customer_detail(session, customer_id))


# --- invoices ------------------------------------------------------------------------------------


@router.post("/invoices", status_code=201)
def create_invoice(
    body: InvoiceCreate, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> InvoiceRead:
    """A new invoice, checked as a row of an invoices file; an id that exists is a 409."""
    invoice = writes.create_invoice(session, body, actor=actor.name, reason=why)
    return InvoiceRead.model_validate(invoice)


@router.patch("/invoices/{invoice_id}")
def update_invoice(
    invoice_id: str,
    body: InvoiceUpdate,
    session: SessionDep,
    actor: Operator,
    why: ReasonHeader = None,
) -> InvoiceRead:
    """Change the fields given; plans whose debt is gone close `recovered` (R8), a change of
    `disputed` pauses or resumes the plan (R10), as an import does."""
    return InvoiceRead.model_validate(
        writes.update_invoice(session, invoice_id, body, actor=actor.name, reason=why)
    )


@router.post("/invoices/{invoice_id}/dispute")
def open_dispute(
    invoice_id: str,
    session: SessionDep,
    actor: Operator,
    body: Annotated[DisputeChange | None, Body()] = None,
    why: ReasonHeader = None,
) -> DisputeRead:
    """Mark the invoice disputed (R10): its plan pauses with reason `dispute` (customer mode:
    the invoice leaves the balance). Already disputed: 409."""
    reason = body.reason if body is not None and body.reason else why
    result = dispute_invoice(session, invoice_id, reason=reason, actor=actor.name)
    return DisputeRead.model_validate(result)


@router.post("/invoices/{invoice_id}/undispute")
def close_dispute(
    invoice_id: str,
    session: SessionDep,
    actor: Operator,
    body: Annotated[DisputeChange | None, Body()] = None,
    why: ReasonHeader = None,
) -> DisputeRead:
    """Clear the dispute: the plan paused for it resumes. Not disputed: 409."""
    reason = body.reason if body is not None and body.reason else why
    result = undispute_invoice(session, invoice_id, reason=reason, actor=actor.name)
    return DisputeRead.model_validate(result)


async def _pdf_content(request: Request) -> bytes:
    """The PDF, sent as the body (`application/pdf`) or as the multipart part `file`."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=0)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("{field}: the multipart part `file` is missing", field="file")
        return await upload.read()
    if media == "application/pdf":
        return await request.body()
    raise InvalidInput(
        "{field}: send the PDF as the body (Content-Type: application/pdf) or as the "
        "multipart/form-data part `file`",
        field="file",
    )


_PDF_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.put("/invoices/{invoice_id}/pdf", openapi_extra=_PDF_BODY)
def upload_invoice_pdf(
    invoice_id: str,
    actor: Operator,
    session: SessionDep,
    env: EnvDep,
    content: Annotated[bytes, Depends(_pdf_content)],
    why: ReasonHeader = None,
) -> InvoicePdfRead:
    """Store the invoice's PDF (replacing the one it had), where emails attach it from; it
    must start like a PDF and be at most RECOUP_INVOICE_MAX_MB."""
    invoice = writes.store_invoice_pdf(
        session, invoice_id, content, env=env, actor=actor.name, reason=why
    )
    assert invoice.pdf_path is not None
    return InvoicePdfRead(invoice_id=invoice.id, pdf_path=invoice.pdf_path, size=len(content))


# --- payments ------------------------------------------------------------------------------------


@router.post(
    "/payments",
    status_code=201,
    responses={200: {"model": PaymentRead, "description": "Recorded before: nothing changed."}},
)
async def record_payment(
    body: PaymentCreate, request: Request, actor: Operator, response: Response
) -> PaymentRead:
    """Record a payment or a credit (R8): it lowers the invoice it names, or the customer's
    oldest due invoices; plans whose debt is gone close `recovered`, and the answer lists them
    (`plans_closed`). The same payment again (same id and values) is a 200 that changes
    nothing; the same id with other values a 422 (payments are immutable)."""

    # async, its database work awaited on the event loop (recoup.core.requests): what
    # a billing system sends the moment a payment clears
    def record(session: Session) -> tuple[bool, PaymentRead]:
        recorded = writes.record_payment(session, body, actor=actor.name)
        return recorded.created, PaymentRead.model_validate(recorded)

    created, answer = await in_unit_of_work(request, record)
    if not created:
        response.status_code = 200
    return answer


# --- batches -------------------------------------------------------------------------------------


def _rows(schema: type[Schema]) -> Any:
    """The batch's rows: checked one by one in recoup.book.writes (each bad row is named by
    its index, the good ones still checked against the database), shown as the schema's."""
    return Annotated[
        list[Any],
        Field(
            min_length=1,
            max_length=writes.MAX_BATCH,
            json_schema_extra={"items": schema.model_json_schema()},
        ),
    ]


class CustomerBatch(Schema):
    """Up to 10,000 customers, each as `POST /customers` takes one; all or none."""

    data: _rows(CustomerCreate)  # type: ignore[valid-type]


class InvoiceBatch(Schema):
    """Up to 10,000 invoices, each as `POST /invoices` takes one; all or none."""

    data: _rows(InvoiceCreate)  # type: ignore[valid-type]


class PaymentBatch(Schema):
    """Up to 10,000 payments, each as `POST /payments` takes one; all or none."""

    data: _rows(PaymentCreate)  # type: ignore[valid-type]


def _batch(
    session: SessionDep, kind: str, rows: list[Any], actor: Actor, why: str | None
) -> ImportReportRead:
    try:
        report: ImportReport = writes.import_batch(
            session, kind, rows, actor=actor.name, reason=why
        )
    except InvalidInput as exc:
        if not exc.errors:
            raise
        # each row's field as the body spells it: data[3].amount (SPEC §6)
        # (`errors` names every one: `detail` stays the one-line summary)
        raise InvalidInput(
            exc.template, errors=[FieldError(_path(e), e.message, e.index) for e in exc.errors]
        ) from None
    return ImportReportRead.model_validate(report)


def _path(error: FieldError) -> str | None:
    if error.index is None:
        return f"data.{error.field}" if error.field else "data"
    return f"data[{error.index}]" + (f".{error.field}" if error.field else "")


@router.post("/customers/batch")
def customers_batch(
    body: CustomerBatch, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> ImportReportRead:
    """Create or update customers by id, as `recoup import customers` does: all or none, every
    bad row named (`errors[].index`, `errors[].field` like `data[3].email`)."""
    return _batch(session, "customers", body.data, actor, why)


@router.post("/invoices/batch")
def invoices_batch(
    body: InvoiceBatch, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> ImportReportRead:
    """Create or update invoices by id, as `recoup import invoices` does: all or none."""
    return _batch(session, "invoices", body.data, actor, why)


@router.post("/payments/batch")
def payments_batch(
    body: PaymentBatch, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> ImportReportRead:
    """Record payments, as `recoup import payments` does (R8: plans whose debt is gone close
    `recovered`, listed in `plans_recovered`): all or none."""
    return _batch(session, "payments", body.data, actor, why)
