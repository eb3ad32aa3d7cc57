"""The dunning letter: a rendered letter template inside an A4 layout (letterhead, addresses,
place and date, subject, body, the overdue invoices with their total, closing), printed to PDF
with WeasyPrint.

The template's text is the user's (sandboxed, rendered by `recoup.messages.render`); the layout
is ours (`recoup/templates/letter.html`). Fixed wording of the layout follows the template's
language, numbers and dates the customer's locale, as the template's own filters do.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from babel import Locale, UnknownLocaleError
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from recoup.domain.enums import ActionType, ChargeStatus
from recoup.domain.money import Money
from recoup.messages.assets import BASE_URL, asset_fetcher
from recoup.messages.render import (
    Rendered,
    babel_locale,
    build_variables,
    format_day,
    format_money,
    paragraphs_html,
    render_row,
)
from recoup.models import Charge, Customer, Invoice, LevelRow, Plan, TemplateRow

LAYOUT = "letter.html"

# Fixed wording of the layout, by language; English for any other.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Subject:",
        "subject_reminder": "Reminder: overdue invoices",
        "subject_final": "Final notice before collection",
        "our_ref": "Our reference",
        "customer_no": "Customer no.",
        "invoice": "Invoice",
        "due_date": "Due date",
        "amount": "Amount",
        "amount_due": "Amount due",
        "days_overdue": "Days overdue",
        "total": "Total due",
        "fee": "Late fee",
        "interest": "Interest",
        "charged_on": "charged",
        "closing": "Yours sincerely,",
        "department": "Accounts receivable",
        "vat": "VAT no.",
        "page": "Page",
        "of": "of",
        "place_date": "{place}, {date}",
    },
    "fr": {
        "subject": "Objet :",
        "subject_reminder": "Relance : factures impayées",
        "subject_final": "Mise en demeure de payer",
        "our_ref": "Notre référence",
        "customer_no": "Client n°",
        "invoice": "Facture",
        "due_date": "Échéance",
        "amount": "Montant",
        "amount_due": "Reste dû",
        "days_overdue": "Jours de retard",
        "total": "Total dû",
        "fee": "Frais de retard",
        "interest": "Intérêts de retard",
        "charged_on": "du",
        "closing": (
            "Nous vous prions d’agréer, Madame, Monsieur, l’expression de nos salutations "
            "distinguées."
        ),
        "department": "Service recouvrement",
        "vat": "N° TVA",
        "page": "Page",
        "of": "sur",
        "place_date": "{place}, le {date}",
    },
    "de": {
        "subject": "Betreff:",
        "subject_reminder": "Zahlungserinnerung: überfällige Rechnungen",
        "subject_final": "Letzte Mahnung",
        "our_ref": "Unser Zeichen",
        "customer_no": "Kundennr.",
        "invoice": "Rechnung",
        "due_date": "Fällig am",
        "amount": "Betrag",
        "amount_due": "Offen",
        "days_overdue": "Tage überfällig",
        "total": "Offener Gesamtbetrag",
        "fee": "Mahngebühr",
        "interest": "Verzugszinsen",
        "charged_on": "vom",
        "closing": "Mit freundlichen Grüßen",
        "department": "Forderungsmanagement",
        "vat": "USt-IdNr.",
        "page": "Seite",
        "of": "von",
        "place_date": "{place}, {date}",
    },
    "es": {
        "subject": "Asunto:",
        "subject_reminder": "Recordatorio: facturas vencidas",
        "subject_final": "Último aviso antes de reclamación",
        "our_ref": "Nuestra referencia",
        "customer_no": "N.º de cliente",
        "invoice": "Factura",
        "due_date": "Vencimiento",
        "amount": "Importe",
        "amount_due": "Pendiente",
        "days_overdue": "Días de retraso",
        "total": "Total pendiente",
        "fee": "Recargo por demora",
        "interest": "Intereses de demora",
        "charged_on": "del",
        "closing": "Atentamente,",
        "department": "Departamento de cobros",
        "vat": "NIF",
        "page": "Página",
        "of": "de",
        "place_date": "{place}, {date}",
    },
    "it": {
        "subject": "Oggetto:",
        "subject_reminder": "Sollecito: fatture scadute",
        "subject_final": "Ultimo avviso prima del recupero",
        "our_ref": "Nostro riferimento",
        "customer_no": "Cliente n.",
        "invoice": "Fattura",
        "due_date": "Scadenza",
        "amount": "Importo",
        "amount_due": "Residuo",
        "days_overdue": "Giorni di ritardo",
        "total": "Totale dovuto",
        "fee": "Penale di mora",
        "interest": "Interessi di mora",
        "charged_on": "del",
        "closing": "Distinti saluti,",
        "department": "Ufficio recupero crediti",
        "vat": "P. IVA",
        "page": "Pagina",
        "of": "di",
        "place_date": "{place}, {date}",
    },
    "nl": {
        "subject": "Betreft:",
        "subject_reminder": "Herinnering: vervallen facturen",
        "subject_final": "Laatste aanmaning",
        "our_ref": "Ons kenmerk",
        "customer_no": "Klantnr.",
        "invoice": "Factuur",
        "due_date": "Vervaldatum",
        "amount": "Bedrag",
        "amount_due": "Openstaand",
        "days_overdue": "Dagen te laat",
        "total": "Totaal openstaand",
        "fee": "Aanmaningskosten",
        "interest": "Rente",
        "charged_on": "van",
        "closing": "Met vriendelijke groet,",
        "department": "Debiteurenbeheer",
        "vat": "Btw-nr.",
        "page": "Pagina",
        "of": "van",
        "place_date": "{place}, {date}",
    },
}

_BODY_RE = re.compile(r"(?is)<body[^>]*>(.*)</body>")


@cache
def _layout_env() -> Environment:
    return Environment(
        loader=PackageLoader("recoup", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def labels_for(language: str | None) -> dict[str, str]:
    base = (language or "en").replace("-", "_").split("_", 1)[0].lower()
    return {**LABELS["en"], **LABELS.get(base, {})}


def lines(value: Any) -> list[str]:
    """Address lines from a multi-line string, a list, or nothing."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).splitlines()
    return [str(item).strip() for item in items if str(item).strip()]


def country_name(code: str | None, locale: str) -> str | None:
    if not code:
        return None
    try:
        territories = Locale.parse(locale).territories
    except (UnknownLocaleError, ValueError):
        return code
    return str(territories.get(code.upper(), code))


def recipient_lines(customer: Customer, locale: str) -> list[str]:
    """The customer's postal address; without one, name and country."""
    address = lines(customer.address)
    if address and address[0].casefold() != customer.name.strip().casefold():
        address.insert(0, customer.name)
    if not address:
        address = [customer.name]
        country = country_name(customer.country, locale)
        if country:
            address.append(country)
    return address


def body_markup(rendered: Rendered) -> Markup:
    """The rendered template as HTML: its own markup (autoescaped when rendered), or its
    plain text as paragraphs."""
    if rendered.html is not None:
        match = _BODY_RE.search(rendered.html)
        return Markup(match.group(1) if match else rendered.html)  # noqa: S704 (autoescaped)
    return Markup(paragraphs_html(rendered.text))  # noqa: S704 (escaped there)


@dataclass(frozen=True)
class InvoiceLine:
    number: str
    due_date: str
    amount: str
    amount_due: str
    days_overdue: int


@dataclass(frozen=True)
class FeeLine:
    label: str
    amount: str


@dataclass(frozen=True)
class Letter:
    rendered: Rendered
    html: str
    total: Money | None
    invoice_ids: list[str]


def letter_html(
    rendered: Rendered,
    *,
    customer: Customer,
    invoices: Sequence[Invoice],
    today: date,
    company: Mapping[str, Any],
    level: LevelRow | None = None,
    plan: Plan | None = None,
    charges: Sequence[Charge] = (),
) -> tuple[str, Money | None]:
    """The whole letter as an HTML document, and the total of its table: the invoices, and
    the open fees charged on them (a row each)."""
    locale = babel_locale(customer.language)
    words = labels_for(rendered.language)
    rows: list[InvoiceLine] = []
    total: Money | None = None
    for invoice in invoices:
        due = Money(invoice.amount_due, invoice.currency)
        total = due if total is None or total.currency != due.currency else total + due
        rows.append(
            InvoiceLine(
                number=invoice.number,
                due_date=format_day(invoice.due_date, "medium", locale=locale),
                amount=format_money(Money(invoice.amount, invoice.currency), locale=locale),
                amount_due=format_money(due, locale=locale),
                days_overdue=max(0, (today - invoice.due_date).days),
            )
        )
    currencies = {i.currency for i in invoices}
    if len(currencies) > 1:  # a plan has one currency; never add across currencies
        total = None
    fee_rows: list[FeeLine] = []
    for charge in charges:
        if charge.status != ChargeStatus.open or total is None or charge.currency != total.currency:
            continue  # exported fees are billed elsewhere, waived ones not owed
        fee = Money(charge.amount, charge.currency)
        total += fee
        name = words["interest"] if charge.kind == ActionType.interest else words["fee"]
        when = format_day(charge.created_on, "medium", locale=locale)
        fee_rows.append(
            FeeLine(
                label=f"{name} {words['charged_on']} {when}",
                amount=format_money(fee, locale=locale),
            )
        )
    day = format_day(today, "long", locale=locale)
    place = str(company.get("city") or "").strip()
    place_date = words["place_date"].format(place=place, date=day) if place else day
    if rendered.subject:
        subject = rendered.subject
    elif level is not None and level.end:
        subject = words["subject_final"]
    else:
        subject = words["subject_reminder"]
    references = [f"{words['customer_no']} {customer.id}"]
    if plan is not None:
        references.append(f"{words['our_ref']} {plan.id}")
    company_lines = lines(company.get("address"))
    template = _layout_env().get_template(LAYOUT)
    document = template.render(
        lang=(rendered.language or "en").replace("_", "-"),
        words=words,
        company={
            "name": str(company.get("name") or ""),
            "address": company_lines,
            "email": company.get("email"),
            "phone": company.get("phone"),
            "website": company.get("website"),
            "vat": company.get("vat") or company.get("vat_number"),
            "iban": company.get("iban"),
            "bic": company.get("bic"),
            "signatory": company.get("signatory"),
        },
        recipient=recipient_lines(customer, locale),
        place_date=place_date,
        references=references,
        subject=subject,
        body=body_markup(rendered),
        rows=rows,
        fee_rows=fee_rows,
        total=format_money(total, locale=locale) if total is not None else None,
    )
    return document, total


def render_letter(
    template: TemplateRow,
    *,
    customer: Customer,
    today: date,
    invoice: Invoice | None = None,
    invoices: Sequence[Invoice] = (),
    plan: Plan | None = None,
    level: LevelRow | None = None,
    balance: Money | None = None,
    company: Mapping[str, Any] | None = None,
    charges: Sequence[Charge] = (),
    level_fees: Sequence[Mapping[str, Any]] = (),
) -> Letter:
    """Render `template` (a letter template) with the plan's data inside the layout."""
    company = dict(company or {})
    invoice_list = list(invoices) or ([invoice] if invoice is not None else [])
    variables = build_variables(
        customer=customer,
        today=today,
        invoice=invoice,
        invoices=invoice_list,
        plan=plan,
        level=level,
        balance=balance,
        company=company,
        charges=charges,
        level_fees=level_fees,
    )
    rendered = render_row(template, variables)
    document, total = letter_html(
        rendered,
        customer=customer,
        invoices=invoice_list,
        today=today,
        company=company,
        level=level,
        plan=plan,
        charges=charges,
    )
    return Letter(
        rendered=rendered,
        html=document,
        total=total,
        invoice_ids=[i.id for i in invoice_list],
    )


@dataclass(frozen=True)
class Pdf:
    content: bytes
    pages: int


_local = threading.local()


def _font_config() -> Any:
    """One WeasyPrint font configuration per thread: a fresh one per letter makes Pango
    build its font map again each time (slower, and slower still as a worker runs on)."""
    config = getattr(_local, "font_config", None)
    if config is None:
        from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

        config = _local.font_config = FontConfiguration()
    return config


def to_pdf(document: str) -> Pdf:
    """Print an HTML letter to PDF (WeasyPrint, imported late: it is slow to import)."""
    import weasyprint  # type: ignore[import-untyped]

    # Only data: URLs and Recoup's own assets are loaded (relative URLs resolve there), and
    # the PDF carries no attachments, whatever the template asked for (issue 8.2).
    source = weasyprint.HTML(string=document, base_url=BASE_URL, url_fetcher=asset_fetcher())
    rendered = source.render(font_config=_font_config())
    rendered.metadata.attachments = []
    for page in rendered.pages:
        page.links = [link for link in page.links if link[0] != "attachment"]
    content = rendered.write_pdf(attachments=None, pdf_forms=False) or b""
    return Pdf(content=content, pages=len(rendered.pages))


__all__ = [
    "LABELS",
    "Letter",
    "Pdf",
    "body_markup",
    "labels_for",
    "letter_html",
    "recipient_lines",
    "render_letter",
    "to_pdf",
]
