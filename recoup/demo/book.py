"""A realistic, reproducible book for the demo: customers, invoices and payments, written as the
CSV files a billing system would export (SPEC §5), so the demo loads them the way users do.

Pure generation from a seeded `random.Random`; money is Decimal, rounded to the currency's minor
unit by `round_money`. Nothing here touches the database.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from recoup.book.rows import CUSTOMER_COLUMNS, INVOICE_COLUMNS, PAYMENT_COLUMNS
from recoup.domain.money import minor_unit, round_money

# (country, language, currency, weight)
MARKETS = (
    ("US", "en", "USD", 24),
    ("GB", "en", "GBP", 16),
    ("FR", "fr", "EUR", 18),
    ("BE", "fr", "EUR", 5),
    ("DE", "de", "EUR", 18),
    ("AT", "de", "EUR", 6),
    ("JP", "en", "JPY", 8),
)
# Typical monthly bill in each currency, by category (JPY has no minor unit).
BASE_BILL = {
    ("smb", "USD"): Decimal("180"),
    ("smb", "GBP"): Decimal("140"),
    ("smb", "EUR"): Decimal("160"),
    ("smb", "JPY"): Decimal("24000"),
    ("enterprise", "USD"): Decimal("6500"),
    ("enterprise", "GBP"): Decimal("5200"),
    ("enterprise", "EUR"): Decimal("5800"),
    ("enterprise", "JPY"): Decimal("900000"),
}
PAYMENT_TERMS = {"smb": (14, 14, 30), "enterprise": (30, 30, 45)}
PAYMENT_METHODS = ("card", "card", "transfer", "transfer", "direct_debit")

# How customers pay: (profile, weight) per category.
PROFILES = {
    "smb": (("punctual", 60), ("late", 22), ("partial", 8), ("never", 10)),
    "enterprise": (("punctual", 50), ("late", 38), ("partial", 7), ("never", 5)),
}

FIRST_NAMES = {
    "en": ("Olivia", "James", "Amelia", "Noah", "Emily", "Harry", "Grace", "Jack", "Sophie"),
    "fr": ("Camille", "Louis", "Chloé", "Hugo", "Léa", "Jules", "Manon", "Arthur", "Inès", "Paul"),
    "de": ("Lena", "Lukas", "Hannah", "Felix", "Marie", "Jonas", "Emma", "Paul", "Mia", "Leon"),
}
LAST_NAMES = {
    "en": ("Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Clarke", "Wright"),
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"),
}
COMPANY_WORDS = (
    "Northwind",
    "Bluebird",
    "Summit",
    "Harbor",
    "Granite",
    "Silverline",
    "Maple",
    "Orbit",
    "Keystone",
    "Lumen",
    "Cedar",
    "Vertex",
    "Atlas",
    "Beacon",
    "Copper",
    "Juniper",
)
COMPANY_TRADES = {
    "en": ("Logistics", "Analytics", "Studios", "Consulting", "Foods", "Robotics", "Health"),
    "fr": ("Logistique", "Conseil", "Boulangerie", "Architectes", "Transports", "Santé"),
    "de": ("Logistik", "Beratung", "Bäckerei", "Maschinenbau", "Medien", "Handel"),
}
COMPANY_FORMS = {
    "US": ("Inc.", "LLC"),
    "GB": ("Ltd", "plc"),
    "FR": ("SAS", "SARL"),
    "BE": ("SA", "SRL"),
    "DE": ("GmbH", "AG"),
    "AT": ("GmbH",),
    "JP": ("KK", "Co., Ltd."),
}
ACCOUNT_MANAGERS = ("Ana Costa", "Ben Okafor", "Clara Weiss", "David Leroy")


@dataclass(frozen=True)
class DemoCustomer:
    id: str
    name: str
    email: str
    language: str
    country: str
    currency: str
    category: str
    is_company: bool
    payment_method: str
    profile: str  # how this customer pays (not exported: the demo's secret)
    account_manager: str
    billing_day: int
    base_bill: Decimal


@dataclass(frozen=True)
class DemoInvoice:
    id: str
    customer_id: str
    number: str
    issue_date: date
    due_date: date
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class DemoPayment:
    id: str
    customer_id: str
    invoice_id: str | None
    amount: Decimal
    currency: str
    date: date


@dataclass
class Book:
    start: date  # the first simulated day
    end: date  # the last simulated day
    customers: list[DemoCustomer] = field(default_factory=list)
    invoices: list[DemoInvoice] = field(default_factory=list)
    payments: list[DemoPayment] = field(default_factory=list)


@dataclass
class BookFiles:
    customers: Path
    opening_invoices: Path
    opening_payments: Path
    invoices_by_day: dict[date, Path] = field(default_factory=dict)
    payments_by_day: dict[date, Path] = field(default_factory=dict)


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _vary(rng: random.Random, amount: Decimal, currency: str, low: int, high: int) -> Decimal:
    """amount × a random percentage in [low, high], rounded to the currency's minor unit."""
    return round_money(amount * Decimal(rng.randint(low, high)) / 100, currency)


def _slug(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e"})
    cleaned = "".join(c for c in text.lower().translate(table) if c.isalnum() or c == " ")
    return ".".join(cleaned.split())[:40] or "customer"


def make_customers(rng: random.Random, count: int) -> list[DemoCustomer]:
    markets = [(c, lang, cur) for c, lang, cur, _ in MARKETS]
    weights = [w for *_, w in MARKETS]
    customers = []
    for n in range(1, count + 1):
        country, language, currency = rng.choices(markets, weights=weights)[0]
        category = "enterprise" if rng.random() < 0.15 else "smb"
        is_company = category == "enterprise" or rng.random() < 0.7
        if is_company:
            name = (
                f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES[language])} "
                f"{rng.choice(COMPANY_FORMS[country])}"
            )
        else:
            name = f"{rng.choice(FIRST_NAMES[language])} {rng.choice(LAST_NAMES[language])}"
        customer_id = f"C{n:05d}"
        domain = {"en": "example.com", "fr": "exemple.fr", "de": "beispiel.de"}[language]
        customers.append(
            DemoCustomer(
                id=customer_id,
                name=name,
                email=f"{_slug(name)}.{n}@{domain}",
                language=language,
                country=country,
                currency=currency,
                category=category,
                is_company=is_company,
                payment_method=rng.choice(PAYMENT_METHODS),
                profile=_weighted(rng, PROFILES[category]),
                account_manager=rng.choice(ACCOUNT_MANAGERS) if category == "enterprise" else "",
                billing_day=rng.randint(1, 28),
                base_bill=_vary(rng, BASE_BILL[(category, currency)], currency, 40, 220),
            )
        )
    return customers


def _billing_dates(first: date, last: date, day: int) -> list[date]:
    dates = []
    year, month = first.year, first.month
    while True:
        issued = date(year, month, day)
        if issued > last:
            return dates
        if issued >= first:
            dates.append(issued)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def make_book(rng: random.Random, *, start: date, end: date, customers: int) -> Book:
    """Monthly invoices issued from six weeks before the first simulated day to the last one,
    and the payments each customer's habits produce (only those dated up to `end`)."""
    book = Book(start=start, end=end, customers=make_customers(rng, customers))
    history_from = start - timedelta(days=42)
    invoice_no = 0
    payment_no = 0
    for customer in book.customers:
        for issued in _billing_dates(history_from, end, customer.billing_day):
            invoice_no += 1
            currency = customer.currency
            amount = _vary(rng, customer.base_bill, currency, 85, 115)
            invoice = DemoInvoice(
                id=f"INV-{invoice_no:06d}",
                customer_id=customer.id,
                number=f"{issued.year}-{invoice_no:06d}",
                issue_date=issued,
                due_date=issued + timedelta(days=rng.choice(PAYMENT_TERMS[customer.category])),
                currency=currency,
                amount=amount,
            )
            book.invoices.append(invoice)
            # most invoices follow the customer's habit; some do not
            profile = customer.profile
            if rng.random() < 0.15:
                profile = _weighted(rng, PROFILES[customer.category])
            for paid_on, paid in _payments_for(rng, invoice, profile):
                if paid_on > end or paid <= 0:
                    continue
                payment_no += 1
                # one payment in ten names no invoice: Recoup pays the oldest due first (R8)
                named = invoice.id if rng.random() > 0.1 else None
                book.payments.append(
                    DemoPayment(
                        id=f"PAY-{payment_no:06d}",
                        customer_id=customer.id,
                        invoice_id=named,
                        amount=paid,
                        currency=currency,
                        date=paid_on,
                    )
                )
    book.payments.sort(key=lambda p: (p.date, p.id))
    return book


def _payments_for(
    rng: random.Random, invoice: DemoInvoice, profile: str
) -> list[tuple[date, Decimal]]:
    due = invoice.due_date

    def on(offset: int) -> date:
        return max(invoice.issue_date + timedelta(days=1), due + timedelta(days=offset))

    if profile == "punctual":
        return [(on(rng.randint(-10, 0)), invoice.amount)]
    if profile == "late":
        late = rng.randint(2, 25) if rng.random() < 0.8 else rng.randint(26, 60)
        return [(on(late), invoice.amount)]
    if profile == "partial":
        first = _vary(rng, invoice.amount, invoice.currency, 30, 70)
        first = max(first, minor_unit(invoice.currency))
        payments = [(on(rng.randint(-2, 20)), first)]
        if rng.random() < 0.5:
            payments.append((on(rng.randint(25, 60)), invoice.amount - first))
        return payments
    return []  # never pays


# --- CSV files -----------------------------------------------------------------------------


def _write(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _customer_row(c: DemoCustomer) -> dict[str, str]:
    return {
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "phone": "",
        "language": c.language,
        "country": c.country,
        "currency": c.currency,
        "category": c.category,
        "is_company": "true" if c.is_company else "false",
        "payment_method": c.payment_method,
        "policy": "",
        "status": "active",
        "excluded": "false",
        "account_manager": c.account_manager,  # an extra column: becomes an attribute
    }


def _invoice_row(i: DemoInvoice) -> dict[str, str]:
    return {
        "id": i.id,
        "customer_id": i.customer_id,
        "number": i.number,
        "type": "commercial",
        "issue_date": i.issue_date.isoformat(),
        "due_date": i.due_date.isoformat(),
        "currency": i.currency,
        "amount": str(i.amount),
        "status": "open",
        "disputed": "false",
    }


def _payment_row(p: DemoPayment) -> dict[str, str]:
    return {
        "id": p.id,
        "customer_id": p.customer_id,
        "invoice_id": p.invoice_id or "",
        "amount": str(p.amount),
        "currency": p.currency,
        "date": p.date.isoformat(),
    }


INVOICE_FILE_COLUMNS = tuple(c for c in INVOICE_COLUMNS if c not in ("amount_due", "pdf_path"))
CUSTOMER_FILE_COLUMNS = (*(c for c in CUSTOMER_COLUMNS if c != "address"), "account_manager")


def write_book(book: Book, folder: Path) -> BookFiles:
    """The opening book (everything before the first simulated day) and one invoices file and
    one payments file per simulated day that has any."""
    invoices_by_day: dict[date, list[dict[str, str]]] = defaultdict(list)
    payments_by_day: dict[date, list[dict[str, str]]] = defaultdict(list)
    opening_invoices, opening_payments = [], []
    for invoice in book.invoices:
        row = _invoice_row(invoice)
        if invoice.issue_date < book.start:
            opening_invoices.append(row)
        else:
            invoices_by_day[invoice.issue_date].append(row)
    for payment in book.payments:
        row = _payment_row(payment)
        if payment.date < book.start:
            opening_payments.append(row)
        else:
            payments_by_day[payment.date].append(row)
    files = BookFiles(
        customers=_write(
            folder / "customers.csv",
            CUSTOMER_FILE_COLUMNS,
            [_customer_row(c) for c in book.customers],
        ),
        opening_invoices=_write(
            folder / "opening-invoices.csv", INVOICE_FILE_COLUMNS, opening_invoices
        ),
        opening_payments=_write(folder / "opening-payments.csv", PAYMENT_COLUMNS, opening_payments),
    )
    for day, rows in sorted(invoices_by_day.items()):
        files.invoices_by_day[day] = _write(
            folder / "daily" / f"{day.isoformat()}-invoices.csv", INVOICE_FILE_COLUMNS, rows
        )
    for day, rows in sorted(payments_by_day.items()):
        files.payments_by_day[day] = _write(
            folder / "daily" / f"{day.isoformat()}-payments.csv", PAYMENT_COLUMNS, rows
        )
    return files
