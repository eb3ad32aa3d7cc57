"""Executors of the automatic action types: send_email, late_fee_fixed, late_fee_percent,
interest, change_account_status (SPEC §3).

Each takes the instance's context, performs its effect inside the caller's transaction (the
runner commits) and returns `Done(result)` or `Skipped(reason)`. Effects are idempotent per
action instance (R13): a charge or a status change already recorded for the instance is found
and reported instead of being made twice; an email keeps the Message-ID of its instance key.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from recoup.actions.context import ActionContext
from recoup.actions.fee_rules import FEE_DECISIONS, level_fees
from recoup.actions.letter import letter_attachment
from recoup.actions.outcomes import ActionOutcome, Done, PermanentFailure, Skipped
from recoup.core.files import FileRefused, UnsafePath, read_inside
from recoup.domain import fees
from recoup.domain.enums import CANCELLED_ACCOUNT_STATUS, Channel, Event
from recoup.log.service import log
from recoup.messages.email import (
    DEFAULT_SENDER,
    Attachment,
    PermanentDeliveryError,
    build_message,
    message_id_for,
    send_smtp,
    smtp_transport_error,
    write_outbox,
)
from recoup.messages.render import (
    build_variables,
    render_row,
    select_template,
    uses_fees,
    uses_level_fees,
)
from recoup.models import Charge, StatusChange

logger = logging.getLogger(__name__)


# --- charges -------------------------------------------------------------------------------


def _charge_result(charge: Charge, **extra: Any) -> dict[str, Any]:
    return {
        "charge_id": charge.id,
        "amount": str(charge.amount),
        "currency": charge.currency,
        "service": charge.service,
        **extra,
    }


def _existing_charge(ctx: ActionContext) -> Charge | None:
    return ctx.session.scalar(select(Charge).where(Charge.action_instance_id == ctx.instance.id))


def _charge(ctx: ActionContext, decision: fees.FeeDecision, **details: Any) -> ActionOutcome:
    if isinstance(decision, fees.NoFee):
        return Skipped(decision.reason, details)
    service = ctx.params.get("service")
    if not service:
        raise PermanentFailure(f"action {ctx.instance.action} has no service code for its charge")
    charge = Charge(
        action_instance_id=ctx.instance.id,
        customer_id=ctx.instance.customer_id,
        invoice_id=ctx.invoice_id,
        plan_id=ctx.instance.plan_id,
        amount=decision.amount,
        currency=decision.currency,
        service=str(service),
        kind=ctx.instance.type,
        created_on=ctx.today,
    )
    ctx.session.add(charge)
    ctx.session.flush()
    log(
        ctx.session,
        Event.charge_created,
        **ctx.log_kwargs(),
        charge_id=charge.id,
        amount=charge.amount,
        currency=charge.currency,
        service=charge.service,
        kind=charge.kind,
        **details,
    )
    return Done(_charge_result(charge, **details))


def _already_charged(ctx: ActionContext) -> ActionOutcome | None:
    existing = _existing_charge(ctx)
    if existing is None:
        return None
    return Done(_charge_result(existing, already_charged=True))


def charge_fee(ctx: ActionContext) -> ActionOutcome:
    done = _already_charged(ctx)
    if done is not None:
        return done
    decision, details = FEE_DECISIONS[ctx.instance.type](ctx)
    return _charge(ctx, decision, **details)


# --- account status (R12) ------------------------------------------------------------------


def change_account_status(ctx: ActionContext) -> ActionOutcome:
    status = ctx.params.get("status")
    if not status:
        raise PermanentFailure(f"action {ctx.instance.action} has no status to set")
    status = str(status)
    if status == CANCELLED_ACCOUNT_STATUS:
        return Skipped("status cancelled is final: dunning never sets it")
    existing = ctx.session.scalar(
        select(StatusChange).where(StatusChange.action_instance_id == ctx.instance.id)
    )
    if existing is not None:
        return Done(
            {
                "status": existing.new_status,
                "previous_status": existing.previous_status,
                "already_recorded": True,
            }
        )
    if ctx.plan is None:
        return Skipped("an account status is changed by a plan, not by a reminder")
    customer = ctx.customer
    previous = customer.status
    changed = previous != status
    # Recorded even when the status is already the one asked for: this plan then also holds
    # it, so another plan's recovery does not restore it while this one is still open (R12).
    ctx.session.add(
        StatusChange(
            action_instance_id=ctx.instance.id,
            plan_id=ctx.plan.id,
            customer_id=customer.id,
            previous_status=previous,
            new_status=status,
            changed_at=ctx.now,
        )
    )
    if changed:
        customer.status = status
        log(
            ctx.session,
            Event.status_changed,
            **ctx.log_kwargs(),
            previous=previous,
            status=status,
        )
    ctx.session.flush()
    result: dict[str, Any] = {"status": status, "previous_status": previous, "changed": changed}
    if not changed:
        result["note"] = f"customer already had status {status}"
    return Done(result)


# --- email ---------------------------------------------------------------------------------


def _invoice_pdfs(
    ctx: ActionContext,
) -> tuple[list[Attachment], list[str], list[dict[str, str]]]:
    """The invoices' PDFs, read only from inside the invoice folder (recoup.core.files): a
    path leaving it, a symlink, a file that is not a PDF or too large is refused, and the
    email goes without it, the refusal and its reason in the result."""
    attachments: list[Attachment] = []
    missing: list[str] = []
    refused: list[dict[str, str]] = []
    for invoice in ctx.invoices:
        if not invoice.pdf_path:
            continue
        try:
            name, content = read_inside(
                ctx.env.invoices_dir, invoice.pdf_path, max_bytes=ctx.env.invoice_max_bytes
            )
        except FileNotFoundError:
            missing.append(invoice.pdf_path)
            logger.warning("invoice %s: PDF %s not found", invoice.id, invoice.pdf_path)
            continue
        except (UnsafePath, FileRefused) as exc:
            refused.append(
                {"invoice_id": invoice.id, "pdf_path": invoice.pdf_path, "reason": exc.message}
            )
            logger.warning(
                "invoice %s: PDF %r not attached: %s", invoice.id, invoice.pdf_path, exc.message
            )
            continue
        attachments.append(Attachment(filename=name, content=content))
    return attachments, missing, refused


def send_email(ctx: ActionContext) -> ActionOutcome:
    code = ctx.params.get("template")
    if not code:
        raise PermanentFailure(f"action {ctx.instance.action} has no template")
    customer = ctx.customer
    if not customer.email:
        return Skipped("customer has no email")
    template = select_template(ctx.session, str(code), Channel.email.value, customer.language)
    if template is None:
        return Skipped(
            f"no active template {code} for language {customer.language or 'unset'}",
            {"template": code},
        )
    company = dict(ctx.settings.company or {})
    variables = build_variables(
        customer=customer,
        today=ctx.today,
        invoice=ctx.invoice,
        invoices=ctx.invoices,
        plan=ctx.plan,
        level=ctx.level,
        balance=ctx.balance,
        company=company,
        charges=ctx.charges if uses_fees(template) else (),
        level_fees=level_fees(ctx) if uses_level_fees(template) else (),
    )
    rendered = render_row(template, variables)
    attach = bool(ctx.params.get("attach_invoice")) or bool(
        ctx.policy is not None and ctx.policy.attach_invoice
    )
    attachments, missing, refused = _invoice_pdfs(ctx) if attach else ([], [], [])
    if ctx.params.get("attach_letter") or ctx.params.get("letter_template"):  # a letter PDF
        letter, letter_missing = letter_attachment(ctx)
        if letter is not None:
            attachments.append(letter)
        if letter_missing is not None:
            missing.append(letter_missing)
    sender = str(company.get("email") or DEFAULT_SENDER)
    try:
        msg = build_message(
            key=ctx.instance.key,
            sender=sender,
            sender_name=company.get("name"),
            to=customer.email,
            to_name=customer.name,
            subject=rendered.subject or str(code),
            text=rendered.text,
            html=rendered.html,
            attachments=attachments,
            reply_to=company.get("reply_to"),
        )
    except PermanentDeliveryError as exc:  # a header injection: the same on every retry
        raise PermanentFailure(exc.message) from exc
    result: dict[str, Any] = {
        "to": customer.email,
        "template": template.code,
        "language": template.language,
        "subject": msg["Subject"],
        "message_id": message_id_for(ctx.instance.key),
        "attachments": [a.filename for a in attachments],
    }
    if missing:
        result["missing_attachments"] = missing
    if refused:
        result["refused_attachments"] = refused
    if attach:  # asked for the invoices' PDFs: say which ones the email went without
        refused_ids = {r["invoice_id"] for r in refused}
        absent = [
            i.id
            for i in ctx.invoices
            if not i.pdf_path or i.pdf_path in missing or i.id in refused_ids
        ]
        if absent:
            result["attachments_missing"] = absent
            logger.info("email %s sent without the PDF of %s", ctx.instance.key, absent)
    if ctx.env.smtp_url:
        try:
            result["delivery"] = send_smtp(
                msg, ctx.env.smtp_url, sender=sender, recipients=[customer.email]
            )
        except PermanentDeliveryError as exc:
            raise PermanentFailure(exc.message) from exc
        except OSError as exc:  # smtplib's errors too: an outage is retried over hours
            outage = smtp_transport_error(exc, ctx.env.smtp_url)
            if outage is None:
                raise
            raise outage from exc
    else:
        path = write_outbox(
            msg,
            ctx.env.outbox_dir,
            instance_id=ctx.instance.id,
            key=ctx.instance.key,
            file_mode=ctx.env.file_mode,
            dir_mode=ctx.env.dir_mode,
        )
        result["delivery"] = "outbox"
        result["path"] = str(path)
    return Done(result, reminder_sent=True)


__all__ = [
    "change_account_status",
    "send_email",
]
