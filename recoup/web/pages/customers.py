"""Customers: the list (search, cursor pages) and one account's page (its status and the
changes dunning made to it, plans, open invoices, charges, the latest log). Read only: what
is done to an account is done on its plans' pages."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from recoup.book.customers import customer_detail, list_customers
from recoup.core.errors import InvalidInput
from recoup.core.roles import Right
from recoup.web.page import ReadPage

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


@router.get("/customers/{customer_id}")
def customer(customer_id: str, page: ReadPage) -> Response:
    detail = customer_detail(page.session, customer_id, log_limit=50)
    return page.render(
        "customer.html",
        detail=detail,
        customer=detail.summary.customer,
        today=page.today,
        may_operate=page.login is not None and page.login.may(Right.operate),
    )


__all__ = ["router"]
