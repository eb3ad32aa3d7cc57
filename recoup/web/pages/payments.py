"""Recording a payment from a customer's page and from a plan's page (`_payment_form.html`):
through recoup.book.writes.record_payment, the API's path, which is the payments import (the
same allocation, the same plans closed as recovered, R8). What both pages share: the form's
defaults, reading it, its problems beside their fields, and the confirmation.

The form carries the payment's id, made when the form is shown: the same form posted twice
(a double click, a reload) is the same payment, recorded once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Form
from pydantic import ValidationError

from recoup.book.schemas import PaymentCreate
from recoup.book.writes import PaymentRecorded, record_payment
from recoup.core.errors import RecoupError
from recoup.web.filters import money
from recoup.web.page import Page

# the import's columns → the form's inputs
FIELDS = {"amount": "amount", "currency": "currency", "invoice_id": "invoice", "date": "date"}
LABELS = {"amount": "The amount", "currency": "The currency", "invoice": "The invoice",
          "date": "The date"}  # fmt: skip


@dataclass(frozen=True)
class PaymentForm:
    """What the form shows: where it posts, the payment's id, the currencies and invoices it
    offers (`(id, label)`), what was typed and the problems, by input (`amount`; the page's
    ids add `payment-`)."""

    action: str
    payment_id: str
    currencies: list[str]
    invoices: list[tuple[str, str]]
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    balance: str = ""  # "400.00 EUR still due": the amount's hint


@dataclass(frozen=True)
class Posted:
    payment_id: str
    date: str
    amount: str
    currency: str
    invoice: str


def posted_form(
    payment_id: str = Form(""),
    received: str = Form("", alias="date"),
    amount: str = Form(""),
    currency: str = Form(""),
    invoice: str = Form(""),
) -> Posted:
    """The payment form as posted, from a plan's or a customer's page."""
    return Posted(payment_id, received, amount, currency, invoice)


PostedDep = Annotated[Posted, Depends(posted_form)]


def new_payment_id(today: date) -> str:
    return f"web-{today:%Y%m%d}-{secrets.token_hex(6)}"


def form(
    page: Page,
    *,
    action: str,
    currencies: list[str],
    invoices: list[Any],
    invoice: str = "",
    balance: str = "",
    posted: Posted | None = None,
    errors: dict[str, str] | None = None,
) -> PaymentForm:
    """The form, fresh (today, the first currency, `invoice` chosen) or as it was posted."""
    offered = [
        (i.id, f"{i.number} · {money(i.amount_due, i.currency)} due")
        for i in invoices
        if i.amount_due and i.amount_due > 0
    ]
    if posted is None:
        values = {"date": page.today.isoformat(), "amount": "",
                  "currency": currencies[0] if currencies else "", "invoice": invoice}  # fmt: skip
        payment_id = new_payment_id(page.today)
    else:
        values = {"date": posted.date, "amount": posted.amount, "currency": posted.currency,
                  "invoice": posted.invoice}  # fmt: skip
        payment_id = posted.payment_id or new_payment_id(page.today)
    return PaymentForm(action, payment_id, currencies, offered, values, errors or {}, balance)


def _beside(name: str, message: str) -> str:
    """A row's message (`is required`, `12.345 has more decimal places…`) as a sentence."""
    if message.startswith(("is ", "has ", "must ")):
        return f"{LABELS.get(name, name.capitalize())} {message}."
    return message[:1].upper() + message[1:]


def record(
    page: Page, customer_id: str, posted: Posted, *, currencies: list[str]
) -> PaymentRecorded | dict[str, str]:
    """Record the posted payment for the customer; or its problems by input, nothing kept."""
    errors: dict[str, str] = {}
    day: date | None = None
    try:
        day = date.fromisoformat(posted.date.strip())
    except ValueError:
        errors["date"] = "Not a date: use the date picker, or write it as YYYY-MM-DD."
    if day is not None and day > page.today:
        errors["date"] = (
            f"A payment received in the future: the date is after today ({page.today})."
        )
    amount = posted.amount.strip().replace(" ", "")
    if not amount:
        errors["amount"] = "Say how much was received."
    if posted.currency not in currencies:
        errors["currency"] = f"Choose one of {', '.join(currencies) or 'the invoices’ currencies'}."
    if errors:
        return errors
    try:
        body = PaymentCreate(
            id=posted.payment_id or new_payment_id(page.today),
            customer_id=customer_id,
            invoice_id=posted.invoice.strip() or None,
            amount=amount,  # type: ignore[arg-type]  # checked as a row of the import
            currency=posted.currency,
            date=day,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        for error in exc.errors():
            name = FIELDS.get(str(error["loc"][0]) if error["loc"] else "", "form")
            message = error["msg"]
            if error["type"].startswith("decimal"):
                message = "is not an amount (like 1234.56)"
            errors.setdefault(name, _beside(name, message))
        return errors
    try:
        return record_payment(page.session, body, actor=page.actor)
    except RecoupError as exc:
        page.rollback()
        found = exc.errors or []
        for problem in found:
            if problem.field == "id":
                errors["form"] = (
                    "This form recorded a payment already: reload the page to record another."
                )
            else:
                name = FIELDS.get(problem.field or "", "form")
                errors.setdefault(name, _beside(name, problem.message))
        if not found:
            errors["form"] = exc.text()
        return errors


def confirmation(recorded: PaymentRecorded) -> str:
    """What recording did, for the page's notice: the plans it closed first."""
    paid = money(recorded.amount, recorded.currency)
    if not recorded.created:
        return f"This payment ({paid}) was recorded already: nothing changed."
    text = f"Payment of {paid} recorded."
    closed = recorded.plans_closed
    if closed:
        names = ", ".join(f"#{p.id}" for p in closed)
        text += f" Plan{'s' if len(closed) > 1 else ''} {names} closed: {closed[0].status}."
    if recorded.unallocated > Decimal(0):
        text += (
            f" {money(recorded.unallocated, recorded.currency)} beyond what was due is kept"
            " unallocated."
        )
    return text


__all__ = ["PaymentForm", "Posted", "confirmation", "form", "record"]
