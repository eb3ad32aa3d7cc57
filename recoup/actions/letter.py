"""The send_letter executor (SPEC §3): the action's letter template, in the customer's language
(fallback: the template's first language), inside the letter layout, printed to PDF, written to
`<documents>/<plan id>/<instance id>-<level>-<action>.pdf` and stored as a Document attached to
the plan and its invoices.

Idempotent per action instance (R13): the file name is the instance's, so a retry overwrites it;
the Document row is unique per instance, so a retry finds it instead of adding a second one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recoup.actions.context import ActionContext
from recoup.actions.fee_rules import level_fees
from recoup.actions.outcomes import ActionOutcome, Done, PermanentFailure, Skipped
from recoup.core.errors import RecoupError
from recoup.documents.repository import for_instance, latest_letter
from recoup.documents.service import letter_path, store_letter, write_file
from recoup.domain.enums import Channel
from recoup.messages.email import Attachment
from recoup.messages.letter import render_letter, to_pdf
from recoup.messages.render import select_template, uses_level_fees
from recoup.models import Document


def _result(document: Document, **extra: Any) -> dict[str, Any]:
    return {
        "document_id": document.id,
        "path": document.path,
        "invoice_ids": list(document.invoice_ids or []),
        **extra,
    }


class NoLetterTemplate(RecoupError):
    """No active letter template for the customer's language (a skip, not a failure)."""


def generate_letter(ctx: ActionContext, code: str) -> dict[str, Any]:
    """The instance's letter from template `code`: rendered, printed, written and stored once
    (an existing document whose file is there is returned as it is). Returns the result fields;
    raises NoLetterTemplate."""
    existing = for_instance(ctx.session, ctx.instance.id)
    if existing is not None and Path(existing.path).is_file():
        return _result(existing, already_generated=True)
    customer = ctx.customer
    template = select_template(ctx.session, code, Channel.letter.value, customer.language)
    if template is None:
        raise NoLetterTemplate(
            f"no active letter template {code} for language {customer.language or 'unset'}"
        )
    letter = render_letter(
        template,
        customer=customer,
        today=ctx.today,
        invoice=ctx.invoice,
        invoices=ctx.invoices,
        plan=ctx.plan,
        level=ctx.level,
        balance=ctx.balance,
        company=ctx.settings.company or {},
        charges=ctx.charges,
        level_fees=level_fees(ctx) if uses_level_fees(template) else (),
    )
    pdf = to_pdf(letter.html)
    path = letter_path(ctx.env.documents_dir, ctx.instance)
    write_file(
        path,
        pdf.content,
        below=ctx.env.data_dir,
        file_mode=ctx.env.file_mode,
        dir_mode=ctx.env.dir_mode,
    )
    document = store_letter(ctx.session, ctx.instance, path=path, invoice_ids=letter.invoice_ids)
    result = _result(
        document,
        pages=pdf.pages,
        template=template.code,
        language=template.language,
        subject=letter.rendered.subject,
    )
    if letter.total is not None:
        result["total"] = str(letter.total.amount)
        result["currency"] = letter.total.currency
    return result


def send_letter(ctx: ActionContext) -> ActionOutcome:
    code = ctx.params.get("template")
    if not code:
        raise PermanentFailure(f"action {ctx.instance.action} has no template")
    try:
        result = generate_letter(ctx, str(code))
    except NoLetterTemplate as exc:
        return Skipped(str(exc), {"template": code})
    return Done(result, reminder_sent=True)


def letter_attachment(ctx: ActionContext) -> tuple[Attachment | None, str | None]:
    """For an email with `attach_letter: true`: a letter as a PDF attachment, or None and what
    is missing. With `letter_template: CODE` the email generates its own letter (stored as a
    document of the plan, like any letter: Openbravo generates one when sending an email);
    otherwise the plan's latest letter (without a plan: the latest letter about the invoice)."""
    code = ctx.params.get("letter_template")
    if code:
        try:
            path = Path(generate_letter(ctx, str(code))["path"])
        except NoLetterTemplate as exc:
            return None, str(exc)
    else:
        document = latest_letter(
            ctx.session, plan_id=ctx.instance.plan_id, invoice_id=ctx.invoice_id
        )
        if document is None:
            return None, "letter (none generated yet)"
        path = Path(document.path)
    if not path.is_file():
        return None, str(path)
    return Attachment(filename=path.name, content=path.read_bytes()), None


__all__ = ["NoLetterTemplate", "generate_letter", "letter_attachment", "send_letter"]
