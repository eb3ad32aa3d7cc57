"""Template previews with real data: a template rendered for an invoice as its customer
would get it now (`recoup template preview`, the back office's preview)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput, NotFound
from recoup.documents import repository
from recoup.domain.enums import Channel
from recoup.messages.letter import Letter, Pdf, render_letter, to_pdf
from recoup.messages.render import (
    Rendered,
    TemplateNotFound,
    build_variables,
    render_row,
    select_template,
)
from recoup.models import Customer, Invoice, LevelRow, Plan, TemplateRow
from recoup.settings.service import get_settings


@dataclass(frozen=True)
class Preview(Rendered):
    """What the customer would get: the rendered template and, for a letter, its PDF."""

    pdf: Pdf | None = None


def _plan_for(session: Session, invoice: Invoice) -> Plan | None:
    """The plan covering the invoice: an open one first, else the newest."""
    plans = repository.plans_of_invoice(session, invoice.id)
    open_plans = [p for p in plans if p.is_open]
    candidates = open_plans or plans
    return candidates[0] if candidates else None


def _with_language(customer: Customer, language: str) -> Customer:
    """A transient copy of the customer speaking `language`: the row itself is not touched."""
    values = {c.key: getattr(customer, c.key) for c in sa_inspect(Customer).column_attrs}
    values["language"] = language
    return Customer(**values)


def _plan_invoices(session: Session, plan: Plan) -> list[Invoice]:
    return repository.open_invoices_of_plan(session, plan.id)


def _template(session: Session, code: str, channel: str | None, language: str) -> TemplateRow:
    if channel is not None and channel not in {c.value for c in Channel}:
        raise InvalidInput(
            f"unknown channel {channel!r} (expected email, letter or sms)", field="channel"
        )
    if channel is None:
        channels = repository.template_channels(session, code)
        if not channels:
            raise TemplateNotFound(f"no template {code}")
        if len(channels) > 1:
            raise InvalidInput(
                f"template {code} exists for channels {', '.join(channels)}: choose one",
                field="channel",
            )
        channel = channels[0]
    template = select_template(session, code, channel, language)
    if template is None:
        raise TemplateNotFound(f"no active template {code} ({channel})")
    return template


def preview_template(
    session: Session,
    code: str,
    *,
    invoice_id: str,
    today: date,
    language: str | None = None,
    channel: str | None = None,
    draft: tuple[str | None, str] | None = None,
) -> Preview:
    """Render template `code` for the invoice as its customer would get it now: the invoice's
    plan (if any) gives the level, the balance and the invoices; a letter is printed to PDF.
    `draft`: an unsaved (subject, body) of the template (the back office's editor), rendered
    instead of the stored one's; nothing is written."""
    invoice = repository.invoice(session, invoice_id)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    customer = repository.customer(session, invoice.customer_id)
    assert customer is not None  # the foreign key
    wanted = language if language is not None else customer.language or ""
    template = _template(session, code, channel, wanted)
    if draft is not None:  # a transient copy: the stored row is not touched
        template = TemplateRow(
            code=template.code,
            channel=template.channel,
            language=template.language,
            subject=draft[0],
            body=draft[1],
            active=True,
        )
    if language is not None:  # amounts and dates as well as words in the language asked for
        customer = _with_language(customer, language)
    plan = _plan_for(session, invoice)
    level: LevelRow | None = None
    invoices = [invoice]
    if plan is not None:
        level = next((lvl for lvl in plan.policy.levels if lvl.code == plan.level), None)
        invoices = _plan_invoices(session, plan) or [invoice]
    company = dict(get_settings(session).company or {})
    single = invoice if plan is None or plan.invoice_id is not None else None
    charges = repository.charges_of(
        session, plan_id=plan.id if plan is not None else None, invoice_id=invoice.id
    )
    if template.channel == Channel.letter:
        letter: Letter = render_letter(
            template,
            customer=customer,
            today=today,
            invoice=single,
            invoices=invoices,
            plan=plan,
            level=level,
            company=company,
            charges=charges,
        )
        return Preview(**{**asdict(letter.rendered), "html": letter.html}, pdf=to_pdf(letter.html))
    variables = build_variables(
        customer=customer,
        today=today,
        invoice=single,
        invoices=invoices,
        plan=plan,
        level=level,
        company=company,
        charges=charges,
    )
    return Preview(**asdict(render_row(template, variables)))


__all__ = ["Preview", "preview_template"]
