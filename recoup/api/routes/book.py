"""/customers and /invoices: the book, read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from recoup.api.deps import PageDep, SessionDep, requires
from recoup.api.roles import Right
from recoup.api.schemas import CustomerAccount, ListPage
from recoup.book import repository, writes
from recoup.book.customers import customer_detail, list_customers
from recoup.book.schemas import CustomerRead, InvoiceRead
from recoup.core.env import load_env
from recoup.core.responses import pdf_response

router = APIRouter(tags=["book"], dependencies=[Depends(requires(Right.read))])


@router.get("/customers")
def customers(
    session: SessionDep,
    page: PageDep,
    status: str | None = None,
    search: Annotated[
        str | None, Query(description="Text in the id, name, email or phone (any case).")
    ] = None,
) -> ListPage[CustomerRead]:
    """Customer accounts by id, with what they owe on open invoices and their open plans."""
    cursor = page.cursor(lambda id: [repository.get_customer_or_not_found(session, id).id])
    rows, next_cursor = list_customers(
        session, status=status, search=search, cursor=cursor, limit=page.limit, before=page.before
    )
    return ListPage[CustomerRead].of(
        [CustomerRead.model_validate(row) for row in rows], next_cursor
    )


@router.get("/customers/{customer_id}")
def customer(customer_id: str, session: SessionDep) -> CustomerAccount:
    """One account: its details and status, open invoices, plans, charges and latest log."""
    return CustomerAccount.of_detail(customer_detail(session, customer_id))


@router.get("/invoices")
def invoices(
    session: SessionDep,
    page: PageDep,
    status: str | None = None,
    open: Annotated[bool, Query(description="Only open and partially paid invoices.")] = False,
    customer: Annotated[str | None, Query(description="A customer's id.")] = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> ListPage[InvoiceRead]:
    """Invoices, oldest due first."""

    def key_of(invoice_id: str) -> list[str]:
        invoice = repository.get_invoice_or_not_found(session, invoice_id)
        return [invoice.due_date.isoformat(), invoice.id]

    rows, next_cursor = repository.list_invoices(
        session,
        status=status,
        open_only=open,
        customer_id=customer,
        currency=currency,
        cursor=page.cursor(key_of),
        limit=page.limit,
        before=page.before,
    )
    return ListPage[InvoiceRead].of([InvoiceRead.model_validate(row) for row in rows], next_cursor)


@router.get("/invoices/{invoice_id}")
def invoice(invoice_id: str, session: SessionDep) -> InvoiceRead:
    return InvoiceRead.model_validate(repository.get_invoice_or_not_found(session, invoice_id))


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The invoice's PDF."}},
)
def invoice_pdf(invoice_id: str, session: SessionDep) -> Response:
    """The invoice's PDF, as emails attach it (uploaded with PUT, or named by `pdf_path`)."""
    name, content = writes.read_invoice_pdf(session, invoice_id, env=load_env())
    return pdf_response(content, name)
