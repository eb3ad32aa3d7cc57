"""Import and recording a payment over HTTP (no browser), on both databases: an import's report,
a bad file's every line with its field and nothing changed, the size bound, the rights (a
viewer neither imports nor sees the payment form), the CSRF token, and a payment recorded
from a plan's and a customer's page closing the plan as recovered, once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from recoup.api.app import create_app
from recoup.core.sessions import transaction
from recoup.models import Customer, Invoice, LogEntry, Payment
from recoup.web.pages import imports
from tests.web.plans_book import PlansBook, plan_statuses, seed_plans_book
from tests.web.test_security import log_in, page_token

CUSTOMERS = (
    "id,name,email,language,country,currency\n"
    "C1,Acme SARL,billing@acme.test,en,FR,EUR\n"  # exists: updated or unchanged
    "C7,Gamma BV,ap@gamma.test,nl,NL,EUR\n"
)
BAD_CUSTOMERS = (
    "id,name,email,language,country,currency\n"
    "C8,Delta,not-an-email,en,FR,EUR\n"
    "C9,,ap@c9.test,en,ZZ,EUR\n"
)


@pytest.fixture
def book(env: dict[str, str], db_url: str, tmp_path: Path, users: object) -> PlansBook:
    return seed_plans_book(db_url, tmp_path)


@pytest.fixture
def client(db_url: str, book: PlansBook) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        yield client


def _upload(client: TestClient, kind: str, text: str | bytes, name: str = "file.csv") -> str:
    content = text.encode() if isinstance(text, str) else text
    response = client.post(
        "/import",
        data={"kind": kind, "csrf_token": page_token(client, "/import")},
        files={"file": (name, content, "text/csv")},
    )
    return f"{response.status_code}\n{response.text}"


def _customers(db_url: str) -> dict[str, str]:
    with transaction(db_url) as session:
        return {c.id: c.name for c in session.scalars(select(Customer))}


def test_an_import_shows_its_report_and_is_logged(client: TestClient, db_url: str) -> None:
    log_in(client, "collector")
    form = client.get("/import")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text and 'href="/import"' in form.text
    answer = _upload(client, "customers", CUSTOMERS, "customers.csv")
    assert answer.startswith("200")
    assert "Customers imported from customers.csv" in answer
    assert re.search(r"<dt>Created</dt><dd>1</dd>", answer)
    assert _customers(db_url)["C7"] == "Gamma BV"
    with transaction(db_url) as session:
        logged = session.scalars(select(LogEntry).where(LogEntry.event == "book_imported")).one()
    assert logged.actor == "Carl Collector"


def test_a_bad_file_shows_every_bad_line_and_changes_nothing(
    client: TestClient, db_url: str
) -> None:
    log_in(client, "admin")
    before = _customers(db_url)
    answer = _upload(client, "customers", BAD_CUSTOMERS, "bad.csv")
    assert answer.startswith("422")
    assert "bad.csv was not imported" in answer
    assert "Customers file not imported: 2 bad rows (nothing was changed)" in answer
    rows = re.findall(
        r'<tr><td class="num">(\d+)</td><td><code>([^<]+)</code></td><td>([^<]+)</td></tr>',
        answer,
    )
    assert [(line, field) for line, field, _ in rows] == [
        ("2", "email"),
        ("3", "name"),
        ("3", "country"),
    ]
    assert "is not a valid email address" in rows[0][2]
    assert _customers(db_url) == before
    # a header without a required column: line 1; a payments file offered as invoices
    answer = _upload(client, "invoices", "id,customer_id,amount\nX1,C1,5\n")
    assert answer.startswith("422") and '<td class="num">1</td><td><code>header</code>' in answer
    assert "missing required columns" in answer
    # not UTF-8
    answer = _upload(client, "customers", "id,name\nC5,Caf\xe9\n".encode("latin-1"))
    assert answer.startswith("422") and "is not UTF-8 text" in answer


def test_the_form_says_what_is_missing_and_bounds_the_size(
    client: TestClient, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(client, "admin")
    answer = _upload(client, "", CUSTOMERS)
    assert answer.startswith("422") and 'id="kind-error"' in answer
    no_file = client.post(
        "/import", data={"kind": "customers", "csrf_token": page_token(client, "/import")}
    )
    assert no_file.status_code == 422 and "Choose a CSV file to import." in no_file.text
    monkeypatch.setattr(imports, "MAX_IMPORT_BYTES", 100)
    answer = _upload(client, "customers", CUSTOMERS + "C10,Big," + "x" * 200 + "\n", "big.csv")
    assert answer.startswith("422") and "big.csv is larger than" in answer
    assert "C7" not in _customers(db_url)


def test_a_viewer_may_not_import_nor_record_a_payment(
    client: TestClient, book: PlansBook, db_url: str
) -> None:
    log_in(client, "viewer")
    assert client.get("/import").status_code == 403
    assert 'href="/import"' not in client.get("/").text
    token = page_token(client)
    refused = client.post(
        "/import", data={"kind": "customers", "csrf_token": token},
        files={"file": ("c.csv", CUSTOMERS.encode(), "text/csv")},
    )  # fmt: skip
    assert refused.status_code == 403
    plan_page = client.get(f"/plans/{book.plans['I1']}")
    assert plan_page.status_code == 200 and "Record a payment" not in plan_page.text
    assert "Record a payment" not in client.get("/customers/C1").text
    posted = client.post(
        f"/plans/{book.plans['I1']}/payments",
        data={"csrf_token": token, "amount": "400.00", "currency": "EUR",
              "date": book.today.isoformat(), "payment_id": "web-x"},
    )  # fmt: skip
    assert posted.status_code == 403
    assert "C7" not in _customers(db_url)


def test_forms_without_their_csrf_token_are_refused(client: TestClient, book: PlansBook) -> None:
    log_in(client, "admin")
    refused = client.post(
        "/import", data={"kind": "customers"},
        files={"file": ("c.csv", CUSTOMERS.encode(), "text/csv")},
    )  # fmt: skip
    assert refused.status_code == 403 and "security token" in refused.text
    payment = client.post(
        "/customers/C1/payments",
        data={"amount": "400.00", "currency": "EUR", "date": book.today.isoformat()},
    )
    assert payment.status_code == 403


def _payments(db_url: str) -> list[tuple[str, Decimal]]:
    with transaction(db_url) as session:
        return [(p.invoice_id or "", p.amount) for p in session.scalars(select(Payment))]


def test_a_payment_from_the_plan_page_closes_the_plan_once(
    client: TestClient, book: PlansBook, db_url: str
) -> None:
    log_in(client, "collector")
    plan_id = book.plans["I1"]
    page = client.get(f"/plans/{plan_id}")
    assert f'action="/plans/{plan_id}/payments"' in page.text
    assert f'value="{book.today.isoformat()}"' in page.text  # received today by default
    assert '<option value="I1" selected>' in page.text  # the plan's invoice
    payment_id = re.search(r'name="payment_id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    token = page_token(client, f"/plans/{plan_id}")
    form = {"csrf_token": token, "payment_id": payment_id, "date": book.today.isoformat(),
            "amount": "400.00", "currency": "EUR", "invoice": "I1"}  # fmt: skip

    # problems beside their fields, nothing recorded
    bad = client.post(
        f"/plans/{plan_id}/payments",
        data={**form, "amount": "12.345", "date": "soon"},
    )
    assert bad.status_code == 422
    assert 'id="payment-date-error"' in bad.text and 'id="payment-amount-error"' not in bad.text
    bad = client.post(f"/plans/{plan_id}/payments", data={**form, "amount": "12.345"})
    assert bad.status_code == 422 and 'id="payment-amount-error"' in bad.text
    assert "more decimal places than EUR allows" in bad.text
    assert 'value="12.345"' in bad.text  # as typed
    bad = client.post(f"/plans/{plan_id}/payments", data={**form, "amount": "-5"})
    assert bad.status_code == 422 and "-5 must be greater than 0" in bad.text
    assert _payments(db_url) == []

    done = client.post(f"/plans/{plan_id}/payments", data=form)
    assert done.status_code == 303
    message = f"Payment of 400.00 EUR recorded. Plan #{plan_id} closed: recovered."
    shown = client.get(done.headers["location"])
    assert message in shown.text
    assert plan_statuses(db_url)["I1"] == "recovered"
    assert "Record a payment" not in shown.text  # a closed plan takes no more
    # the same form again (a double click): the same payment, recorded once
    again = client.post(f"/plans/{plan_id}/payments", data=form)
    assert "was recorded already: nothing changed" in client.get(again.headers["location"]).text
    # the same form with other values: refused (payments are immutable), nothing changed
    other = client.post(f"/plans/{plan_id}/payments", data={**form, "amount": "10.00"})
    assert other.status_code == 422 and "This form recorded a payment already" in other.text
    assert _payments(db_url) == [("I1", Decimal("400.00"))]


def test_a_payment_from_the_customer_page_pays_the_oldest_first(
    client: TestClient, book: PlansBook, db_url: str
) -> None:
    log_in(client, "admin")
    page = client.get("/customers/C1")
    assert "Record a payment" in page.text
    assert '<option value="" selected>Any: the oldest due first</option>' in page.text
    token = page_token(client, "/customers/C1")
    form = {"csrf_token": token, "date": book.today.isoformat(), "currency": "EUR",
            "invoice": "", "payment_id": "web-test-1"}  # fmt: skip
    wrong = client.post("/customers/C1/payments", data={**form, "amount": "420", "currency": "USD"})
    assert wrong.status_code == 422 and 'id="payment-currency-error"' in wrong.text
    future = (book.today.replace(year=book.today.year + 1)).isoformat()
    wrong = client.post("/customers/C1/payments", data={**form, "amount": "1", "date": future})
    assert wrong.status_code == 422 and "in the future" in wrong.text
    # I5 (20.00, no plan) and I1 (400.00) are the oldest: both paid, I1's plan recovered
    done = client.post("/customers/C1/payments", data={**form, "amount": "420.00"})
    assert done.status_code == 303 and done.headers["location"].startswith("/customers/C1?done=")
    text = client.get(done.headers["location"]).text
    assert f"Plan #{book.plans['I1']} closed: recovered." in text
    with transaction(db_url) as session:
        due = dict(session.execute(select(Invoice.id, Invoice.amount_due)).all())
        payments = session.scalar(select(func.count()).select_from(Payment))
    assert due["I5"] == 0 and due["I1"] == 0 and due["I2"] == Decimal("250.00")
    assert payments == 1
    assert plan_statuses(db_url)["I1"] == "recovered"
    assert plan_statuses(db_url)["I2"] == "active"


def test_a_file_above_the_apis_body_limit_reaches_the_import_page(client: TestClient) -> None:
    # the API's 1 MiB body limit would answer a JSON 413; the page bounds its own file
    log_in(client, "admin")
    answer = _upload(client, "customers", "nothing\n" + "x" * (2 << 20) + "\n", "wide.csv")
    assert answer.startswith("422") and "missing required columns" in answer
