"""Rendering message templates (SPEC §3): sandboxed Jinja2, strict about unknown variables,
with the `money` and `date` filters formatting in the customer's language (Babel).

Templates see plain values, never ORM objects: `customer`, `invoice`, `invoices`, `balance`,
`plan`, `level`, `company`, `today` (and `locale`); and about fees `charges` (the plan's, each
with its status), `fees_total` (the open ones), `total_due` (balance + open fees), `deadline`
(today + the level's `deadline_days`, or None) and `pay_url` (the company's `pay_url` pattern
rendered like a template, or None). Amounts are `Money` values, so `{{ balance|money }}` and
`{{ invoice.amount_due|money }}` both format with their currency.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import format_currency
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, pass_context
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, TemplateAssertionError
from jinja2.runtime import Context
from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput, NotFound
from recoup.domain.enums import ChargeStatus
from recoup.domain.fees import days_overdue
from recoup.domain.locales import normalize_language
from recoup.domain.money import Money
from recoup.messages import repository
from recoup.messages.sandbox import BoundedSandbox, RenderLimit, render_bounded
from recoup.models import Charge, Customer, Invoice, LevelRow, Plan, TemplateRow
from recoup.settings.service import get_settings

DEFAULT_LOCALE = "en"
_HTML_RE = re.compile(r"<\s*(html|body|p|div|br|table|span|a|strong|em|b|i|ul|ol|h[1-6])\b", re.I)
_TAG_RE = re.compile(r"<[^>]+>")


class TemplateError(InvalidInput):
    """A template that cannot be rendered: unknown variable, syntax error, forbidden access.
    `line` is the template's line when known, `reason` the message without the template's
    name (what `config validate` prints after the template's place)."""

    def __init__(self, message: str, *, line: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.reason = reason if reason is not None else message


class TemplateLimitExceeded(TemplateError):
    """A template that went over a rendering budget (size, time, arithmetic): permanent."""


class TemplateNotFound(NotFound):
    """No active template of that code and channel."""


# --- locale and filters --------------------------------------------------------------------


@lru_cache(maxsize=256)
def babel_locale(language: str | None) -> str:
    """The Babel locale for a customer language; unknown or empty: English."""
    lang = normalize_language(language)
    if lang is None:
        return DEFAULT_LOCALE
    try:
        return str(Locale.parse(lang))
    except (UnknownLocaleError, ValueError):
        base = lang.split("_", 1)[0]
        try:
            return str(Locale.parse(base))
        except (UnknownLocaleError, ValueError):
            return DEFAULT_LOCALE


def format_money(value: Any, currency: str | None = None, *, locale: str) -> str:
    """Money (or anything with amount and currency), or a decimal with a currency."""
    if isinstance(value, Money):
        amount, code = value.amount, value.currency
    elif isinstance(value, Mapping) and "amount" in value and "currency" in value:
        amount, code = Decimal(str(value["amount"])), str(value["currency"])
    elif hasattr(value, "amount") and hasattr(value, "currency"):
        amount, code = Decimal(str(value.amount)), str(value.currency)
    else:
        if currency is None:
            raise TemplateError(f"money filter needs a currency for {value!r}")
        amount, code = Decimal(str(value)), currency
    if currency is not None and currency != code:
        raise TemplateError(f"money filter: amount is in {code}, not {currency}")
    return str(format_currency(amount, code, locale=locale))


def format_day(value: Any, fmt: str = "medium", *, locale: str) -> str:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if not isinstance(value, date):
        raise TemplateError(f"date filter needs a date, not {value!r}")
    return str(babel_format_date(value, format=fmt, locale=locale))


@pass_context
def _money_filter(ctx: Context, value: Any, currency: str | None = None) -> str:
    if (
        currency is None
        and not isinstance(value, Money | Mapping)
        and not hasattr(value, "currency")
    ):
        balance = ctx.get("balance")
        currency = getattr(balance, "currency", None)
    return format_money(value, currency, locale=ctx.get("locale") or DEFAULT_LOCALE)


@pass_context
def _date_filter(ctx: Context, value: Any, fmt: str = "medium") -> str:
    return format_day(value, fmt, locale=ctx.get("locale") or DEFAULT_LOCALE)


def _make_env(autoescape: bool) -> BoundedSandbox:
    env = BoundedSandbox(
        undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=True
    )
    env.add_filter("money", _money_filter)
    env.add_filter("date", _date_filter)
    return env


TEXT_ENV = _make_env(autoescape=False)
HTML_ENV = _make_env(autoescape=True)


def looks_like_html(body: str) -> bool:
    return bool(_HTML_RE.search(body))


def html_to_text(markup: str) -> str:
    text = re.sub(r"(?i)<\s*br\s*/?>", "\n", markup)
    text = re.sub(r"(?i)</\s*(p|div|h[1-6]|li|tr)\s*>", "\n\n", text)
    text = _TAG_RE.sub("", text)
    text = html.unescape(text)
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


# A line this short ends where its author meant it to ("Kind regards,", a signature); a
# longer one is prose the YAML file wrapped, and flows again.
SHORT_LINE = 24
_LIST_ITEM_RE = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s")


def paragraphs_html(text: str) -> str:
    """Plain text as HTML paragraphs: blank lines separate paragraphs; inside one, the hard
    line breaks of the template file are joined (the reader's screen or page wraps), except
    after a short line (a closing, a signature, an address) and before a list item ("- ",
    "1. ")."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        inner = html.escape(lines[0])
        for before, line in zip(lines, lines[1:], strict=False):
            broken = len(before) <= SHORT_LINE or _LIST_ITEM_RE.match(line) is not None
            inner += ("<br>\n" if broken else " ") + html.escape(line)
        out.append(f"<p>{inner}</p>")
    return "\n".join(out)


def text_to_html(text: str) -> str:
    """The HTML alternative of a plain-text email: its paragraphs, in a readable column."""
    style = "font-family: sans-serif; font-size: 15px; line-height: 1.5; max-width: 40em"
    return (
        f'<!DOCTYPE html>\n<html><body style="{style}">\n{paragraphs_html(text)}\n</body></html>\n'
    )


@lru_cache(maxsize=512)
def compile_template(source: str, autoescape: bool = False) -> JinjaTemplate:
    """The compiled template (cached: a run renders the same few texts thousands of times)."""
    return (HTML_ENV if autoescape else TEXT_ENV).from_string(source)


def template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on (Jinja puts template frames in tracebacks)."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_string(
    source: str, variables: Mapping[str, Any], *, name: str, autoescape: bool = False
) -> str:
    """Render one template text within the rendering budgets (recoup.messages.sandbox); every
    problem becomes a TemplateError naming the template and the line."""
    try:
        return render_bounded(compile_template(source, autoescape), dict(variables))
    except TemplateAssertionError as exc:  # an unknown filter or test, found when compiling
        raise _error(name, exc, str(exc.message)) from exc
    except TemplateSyntaxError as exc:
        raise _error(name, exc, f"syntax error: {exc.message}") from exc
    except RenderLimit as exc:
        raise _error(name, exc, f"over a rendering limit: {exc}", TemplateLimitExceeded) from exc
    except MemoryError as exc:  # a bomb the budgets missed: as permanent as the others
        raise _error(
            name, exc, "over a rendering limit: out of memory", TemplateLimitExceeded
        ) from exc
    except UndefinedError as exc:
        raise _error(name, exc, str(exc.message)) from exc
    except SecurityError as exc:
        raise _error(name, exc, f"forbidden: {exc}") from exc
    except TemplateError as exc:
        raise _error(name, exc, exc.reason) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        raise _error(name, exc, str(exc) or type(exc).__name__) from exc


def _error(
    name: str, exc: BaseException, reason: str, kind: type[TemplateError] = TemplateError
) -> TemplateError:
    line = template_line(exc)
    where = f"template {name}: line {line}: " if line is not None else f"template {name}: "
    return kind(where + reason, line=line, reason=reason)


# --- template selection --------------------------------------------------------------------


def select_template(
    session: Session, code: str, channel: str, language: str | None
) -> TemplateRow | None:
    """The active template `code` of the channel in the customer's language, else its base
    language (`fr` for `fr_CA`), else the first language defined (lowest position, then id)."""
    rows = repository.active_templates(session, code, channel)
    if not rows:
        return None
    by_lang = {(normalize_language(r.language) or "").lower(): r for r in reversed(rows)}
    lang = (normalize_language(language) or "").lower()
    if lang:
        if lang in by_lang:
            return by_lang[lang]
        base = lang.split("_", 1)[0]
        if base in by_lang:
            return by_lang[base]
    return rows[0]


# --- the variables templates see -----------------------------------------------------------


def customer_view(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "language": customer.language,
        "country": customer.country,
        "currency": customer.currency,
        "category": customer.category,
        "is_company": customer.is_company,
        "payment_method": customer.payment_method,
        "status": customer.status,
        "address": customer.address,
        "attributes": dict(customer.attributes or {}),
    }


def invoice_view(invoice: Invoice, today: date | None = None) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "type": invoice.type,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "currency": invoice.currency,
        "amount": Money(invoice.amount, invoice.currency),
        "amount_due": Money(invoice.amount_due, invoice.currency),
        "status": invoice.status,
        "disputed": invoice.disputed,
        "days_overdue": (today - invoice.due_date).days if today else None,
    }


def plan_view(plan: Plan, today: date | None = None) -> dict[str, Any]:
    return {
        "id": plan.id,
        "status": plan.status,
        "level": plan.level,
        "currency": plan.currency,
        "mode": plan.mode,
        "balance": Money(plan.balance, plan.currency),
        "opened_on": plan.opened_on,
        "anchor_date": plan.anchor_date,
        "days_overdue": (
            days_overdue(today, plan.anchor_date, plan.paused_days) if today else None
        ),
    }


def level_view(level: LevelRow | None) -> dict[str, Any] | None:
    if level is None:
        return None
    return {
        "code": level.code,
        "days": level.days,
        "reminder": level.reminder,
        "end": level.end,
        "deadline_days": level.deadline_days,
    }


def charge_view(charge: Charge) -> dict[str, Any]:
    return {
        "id": charge.id,
        "amount": Money(charge.amount, charge.currency),
        "currency": charge.currency,
        "service": charge.service,
        "kind": charge.kind,
        "status": charge.status,
        "created_on": charge.created_on,
    }


def open_fees(charges: Sequence[Charge], currency: str) -> Money:
    """What is still owed in fees on top of the balance: the open charges (exported ones are
    the billing system's now, waived ones are not owed)."""
    return Money(
        sum(
            (c.amount for c in charges if c.status == ChargeStatus.open and c.currency == currency),
            Decimal(0),
        ),
        currency,
    )


FEE_VARIABLES = frozenset({"charges", "fees_total", "total_due"})
LEVEL_FEE_VARIABLES = frozenset({"level_fees", "level_fees_total"})


@lru_cache(maxsize=1024)
def _names_used(source: str) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(TEXT_ENV.parse(source)))
    except TemplateSyntaxError:
        return FEE_VARIABLES  # rendering will say what is wrong


def uses_fees(template: TemplateRow) -> bool:
    """Whether the template shows charges or totals with fees: only then are they read (one
    query per message saved for every other template)."""
    sources = (template.subject, template.body)
    return any(_names_used(source) & FEE_VARIABLES for source in sources if source)


def _fees_sum(found: Sequence[Mapping[str, Any]], currency: str) -> Money:
    amounts = (f["amount"].amount for f in found if f["amount"].currency == currency)
    return Money(sum(amounts, Decimal(0)), currency)


def uses_level_fees(template: TemplateRow) -> bool:
    """Whether the template announces its step's fees: only then are they computed."""
    sources = (template.subject, template.body)
    return any(_names_used(source) & LEVEL_FEE_VARIABLES for source in sources if source)


def _pay_url(company: Mapping[str, Any], variables: Mapping[str, Any]) -> str | None:
    pattern = company.get("pay_url")
    if not pattern:
        return None
    return render_string(str(pattern), variables, name="settings.company.pay_url").strip()


def build_variables(
    *,
    customer: Customer,
    today: date,
    invoice: Invoice | None = None,
    invoices: Sequence[Invoice] | None = None,
    plan: Plan | None = None,
    level: LevelRow | None = None,
    balance: Money | None = None,
    company: Mapping[str, Any] | None = None,
    charges: Sequence[Charge] = (),
    level_fees: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Template variables from ORM rows (the executor and `template preview` use this).
    `level_fees`: what the message's own step will charge once it is delivered
    (recoup.actions.fee_rules.level_fees), each with its `amount` as Money."""
    invoice_list: list[Invoice] = list(invoices) if invoices is not None else []
    if not invoice_list and invoice is not None:
        invoice_list = [invoice]
    if balance is None:
        if plan is not None:
            balance = Money(plan.balance, plan.currency)
        elif invoice is not None:
            balance = Money(invoice.amount_due, invoice.currency)
        elif invoice_list:
            currency = invoice_list[0].currency
            balance = Money(sum((i.amount_due for i in invoice_list), Decimal(0)), currency)
    fees = open_fees(charges, balance.currency) if balance is not None else None
    deadline_days = level.deadline_days if level is not None else None
    variables: dict[str, Any] = {
        "customer": customer_view(customer),
        "invoice": invoice_view(invoice, today) if invoice is not None else None,
        "invoices": [invoice_view(i, today) for i in invoice_list],
        "balance": balance,
        "plan": plan_view(plan, today) if plan is not None else None,
        "level": level_view(level),
        "company": dict(company or {}),
        "today": today,
        "locale": babel_locale(customer.language),
        "charges": [charge_view(c) for c in charges],
        "fees_total": fees,
        "total_due": balance + fees if balance is not None and fees is not None else balance,
        "deadline": today + timedelta(days=deadline_days) if deadline_days is not None else None,
        "level_fees": [dict(fee) for fee in level_fees],
        "level_fees_total": (
            _fees_sum(level_fees, balance.currency) if balance is not None else None
        ),
    }
    variables["pay_url"] = _pay_url(variables["company"], variables)
    return variables


class _AnyAttributes(dict[str, Any]):
    """A sample customer's free attributes: every name has a (sample) value, since real
    customers carry whatever columns their import had."""

    def __missing__(self, key: str) -> str:
        return "sample"


def sample_variables(
    *,
    mode: str = "invoice",
    reminder: bool = False,
    company: Mapping[str, Any] | None = None,
    currency: str = "EUR",
    language: str = "en",
    today: date = date(2026, 1, 15),
) -> dict[str, Any]:
    """The variables a template sees at run time, with sample values, built by the same
    `build_variables` as a real render so the two cannot drift (`config validate` renders
    every template against these, strictly). `reminder`: a reminder level's message (one
    invoice, no plan, in both modes); else a plan's: invoice mode has `invoice`, customer mode
    only `invoices`."""
    customer = Customer(
        id="C-SAMPLE",
        name="Sample Customer Ltd",
        email="billing@example.com",
        phone="+33 1 23 45 67 89",
        language=language,
        country="FR",
        currency=currency,
        category="smb",
        is_company=True,
        payment_method="transfer",
        status="active",
        address="Sample Customer Ltd\n1 Sample Street\n75001 Paris",
        attributes=_AnyAttributes(),
    )
    invoices = [
        Invoice(
            id=f"INV-SAMPLE-{n}",
            customer_id=customer.id,
            number=f"SAMPLE-{n}",
            type="commercial",
            issue_date=today - timedelta(days=40 + n),
            due_date=today - timedelta(days=10 + n),
            currency=currency,
            amount=Decimal("120.00"),
            amount_due=Decimal("100.00"),
            status="open",
            disputed=False,
        )
        for n in (1, 2)
    ]
    plan: Plan | None = None
    invoice: Invoice | None = invoices[0]
    level = LevelRow(code="sample_level", days=10, reminder=False, end=False)
    if reminder:
        invoices = invoices[:1]
        level = LevelRow(code="sample_reminder", days=-3, reminder=True, end=False)
    else:
        if mode == "customer":
            invoice = None
        else:
            invoices = invoices[:1]
        plan = Plan(
            id=1,
            customer_id=customer.id,
            invoice_id=invoice.id if invoice is not None else None,
            currency=currency,
            mode=mode,
            status="active",
            level=level.code,
            balance=sum((i.amount_due for i in invoices), Decimal(0)),
            opened_on=today - timedelta(days=5),
            anchor_date=invoices[-1].due_date,
            paused_days=0,
        )
    level.deadline_days = 8
    charge = Charge(
        id=1,
        customer_id=customer.id,
        invoice_id=invoices[0].id,
        amount=Decimal("15.00"),
        currency=currency,
        service="LATE_FEE",
        kind="late_fee_fixed",
        created_on=today - timedelta(days=5),
        status=ChargeStatus.open.value,
    )
    variables = build_variables(
        customer=customer,
        today=today,
        invoice=invoice,
        invoices=invoices,
        plan=plan,
        level=level,
        company=company,
        charges=[charge],
        level_fees=[
            {
                "action": "sample_fee",
                "service": "LATE_FEE",
                "kind": "late_fee_fixed",
                "amount": Money(Decimal("15.00"), currency),
            }
        ],
    )
    variables["customer"]["attributes"] = _AnyAttributes()
    return variables


@dataclass(frozen=True)
class Rendered:
    code: str
    channel: str
    language: str
    subject: str | None
    text: str
    html: str | None


def render_row(template: TemplateRow, variables: Mapping[str, Any]) -> Rendered:
    name = f"{template.code} ({template.language})"
    subject = None
    if template.subject:
        subject = render_string(template.subject, variables, name=f"{name} subject")
        # one header line; keep the no-break spaces Babel puts in amounts and dates
        subject = re.sub(r"[ \t]*[\r\n]+[ \t]*", " ", subject).strip()
    html_body: str | None
    if looks_like_html(template.body):
        html_body = render_string(template.body, variables, name=name, autoescape=True)
        text = html_to_text(html_body)
    else:
        text = render_string(template.body, variables, name=name)
        html_body = text_to_html(text) if template.channel == "email" else None
    return Rendered(
        code=template.code,
        channel=template.channel,
        language=template.language,
        subject=subject,
        text=text,
        html=html_body,
    )


def render_template(
    session: Session,
    code: str,
    channel: str,
    *,
    customer: Customer,
    today: date,
    invoice: Invoice | None = None,
    invoices: Iterable[Invoice] | None = None,
    plan: Plan | None = None,
    level: LevelRow | None = None,
    balance: Money | None = None,
    company: Mapping[str, Any] | None = None,
    language: str | None = None,
    charges: Sequence[Charge] = (),
) -> Rendered:
    """Choose the template for the customer's language (or `language`) and render it.
    Raises TemplateNotFound when no active template of that code and channel exists."""
    wanted = language if language is not None else customer.language
    template = select_template(session, code, channel, wanted)
    if template is None:
        raise TemplateNotFound(
            f"no active template {code} ({channel}) for language {wanted or 'unset'}"
        )
    if company is None:
        company = get_settings(session).company or {}
    variables = build_variables(
        customer=customer,
        today=today,
        invoice=invoice,
        invoices=list(invoices) if invoices is not None else None,
        plan=plan,
        level=level,
        balance=balance,
        company=company,
        charges=charges,
    )
    return render_row(template, variables)


__all__ = [
    "Rendered",
    "TemplateError",
    "TemplateNotFound",
    "babel_locale",
    "build_variables",
    "format_day",
    "format_money",
    "paragraphs_html",
    "render_row",
    "render_string",
    "render_template",
    "sample_variables",
    "select_template",
]
