"""Customers: the list (search, cursor pages) and one account's page (its status and the
changes dunning made to it, plans, open invoices, charges, the latest log), and recording a
payment of the customer (collectors and admins; pages/payments.py). What is done to a plan is
done on its page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from recoup.book.customers import customer_detail, list_customers
from recoup.core.errors import InvalidInput
from recoup.core.roles import Right
from recoup.web.filters import money
from recoup.web.page import OperatePage, Page, ReadPage
from recoup.web.pages import payments

router = APIRouter()

PAGE_SIZE = 25


@router.get("/customers")
def customers(page: ReadPage) -> Response:
    query = page.request.query_params
    search = (query.get("search") or "").strip()
    errors: dict[str, str] = {}
    try:
        rows, next_cursor = list_customers(
            page.session,
            search=search or None,
            cursor=query.get("after") or None,
            limit=PAGE_SIZE,
        )
    except InvalidInput:
        errors["after"] = "This page link is out of date: start again from the first page."
        rows, next_cursor = [], None
    return page.render(
        "customers.html",
        rows=rows,
        search=search,
        errors=errors,
        next_cursor=next_cursor,
        first_page=not query.get("after"),
    )


def _currencies(detail: Any) -> list[str]:
    """What a payment of the customer may be in: what they owe in, then their own currency."""
    found = list(detail.summary.balances)
    own = detail.summary.customer.currency
    return found + ([own] if own and own not in found else [])


def _customer_page(
    page: Page,
    customer_id: str,
    *,
    posted: payments.Posted | None = None,
    payment_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    detail = customer_detail(page.session, customer_id, log_limit=50)
    may_operate = page.login is not None and page.login.may(Right.operate)
    currencies = _currencies(detail)
    owed = ", ".join(money(a, c) for c, a in detail.summary.balances.items())
    payment = (
        payments.form(
            page,
            action=f"/customers/{customer_id}/payments",
            currencies=currencies,
            invoices=detail.open_invoices,
            balance=f"Owed: {owed}." if owed else "",
            posted=posted,
            errors=payment_errors,
        )
        if may_operate and (currencies or payment_errors)
        else None
    )
    return page.render(
        "customer.html",
        status_code=status_code,
        detail=detail,
        customer=detail.summary.customer,
        today=page.today,
        may_operate=may_operate,
        payment=payment,
    )


@router.get("/customers/{customer_id}")
def customer(customer_id: str, page: ReadPage) -> Response:
    return _customer_page(page, customer_id)


@router.post("/customers/{customer_id}/payments")
def record_customer_payment(
    customer_id: str,
    page: OperatePage,
    posted: payments.PostedDep,
) -> Response:
    """Record a payment of the customer (pages/payments.py); then their page says which plans
    it closed."""
    detail = customer_detail(page.session, customer_id, log_limit=1)  # 404 for no customer
    outcome = payments.record(page, customer_id, posted, currencies=_currencies(detail))
    if isinstance(outcome, dict):
        return _customer_page(
            page, customer_id, posted=posted, payment_errors=outcome, status_code=422
        )
    return page.redirect(f"/customers/{customer_id}", message=payments.confirmation(outcome))


__all__ = ["router"]
