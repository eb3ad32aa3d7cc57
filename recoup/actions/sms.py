"""The `send_sms` executor (SPEC §3): the action's sms template, in the customer's language
(fallback: the first language of the code), POSTed as JSON to an HTTP SMS provider.

Provider: RECOUP_SMS_URL, with `Authorization: Bearer RECOUP_SMS_TOKEN` when a token is set.
Request `{"to", "text", "reference"}`, the reference (and `Idempotency-Key`) being the
instance key so a retried send is recognisably the same message (R13). The answer's `id`
(or `message_id`, `sid`) and `status` are kept in the result with the segment count.
A 2xx is done; 408/425/429, 5xx, timeouts and connection errors are an outage (TransportError),
retried over hours; any other 4xx fails at once (a refused number or a bad token does not fix
itself).
"""

from __future__ import annotations

from typing import Any

import httpx

from recoup.actions.context import ActionContext
from recoup.actions.fee_rules import level_fees
from recoup.actions.outcomes import ActionOutcome, Done, PermanentFailure, Skipped
from recoup.actions.webhook import RetryableHttpError, unreachable
from recoup.domain.enums import Channel
from recoup.domain.redact import url_problem
from recoup.domain.sms import count_segments
from recoup.messages.render import (
    build_variables,
    render_row,
    select_template,
    uses_fees,
    uses_level_fees,
)
from recoup.webhooks.transport import encode, post_json

ID_KEYS = ("id", "message_id", "messageId", "sid")


def send_sms(ctx: ActionContext) -> ActionOutcome:
    code = ctx.params.get("template")
    if not code:
        raise PermanentFailure(f"action {ctx.instance.action} has no template")
    customer = ctx.customer
    phone = (customer.phone or "").strip()
    if not phone:
        return Skipped("customer has no phone")
    url = ctx.env.sms_url
    if not url:
        raise PermanentFailure(
            "no SMS provider configured: set RECOUP_SMS_URL (and RECOUP_SMS_TOKEN)"
        )
    problem = url_problem(url)
    if problem:  # said without quoting the URL: it may hold a token
        raise PermanentFailure(f"RECOUP_SMS_URL {problem}")
    template = select_template(ctx.session, str(code), Channel.sms.value, customer.language)
    if template is None:
        return Skipped(
            f"no active sms template {code} for language {customer.language or 'unset'}",
            {"template": code},
        )
    variables = build_variables(
        customer=customer,
        today=ctx.today,
        invoice=ctx.invoice,
        invoices=ctx.invoices,
        plan=ctx.plan,
        level=ctx.level,
        balance=ctx.balance,
        company=dict(ctx.settings.company or {}),
        charges=ctx.charges if uses_fees(template) else (),
        level_fees=level_fees(ctx) if uses_level_fees(template) else (),
    )
    text = render_row(template, variables).text.strip()
    segments = count_segments(text)
    headers = {"Idempotency-Key": ctx.instance.key}
    if ctx.env.sms_token:
        headers["Authorization"] = f"Bearer {ctx.env.sms_token}"
    body = encode({"to": phone, "text": text, "reference": ctx.instance.key})
    try:
        answer = post_json(url, body, headers=headers)
    except httpx.TransportError as exc:  # an outage: retried over hours
        raise unreachable("SMS provider", exc) from exc
    if not answer.ok:
        message = f"SMS provider refused the message to {phone}: {answer.describe()}"
        if answer.retryable:
            raise RetryableHttpError(message)
        raise PermanentFailure(message)
    result: dict[str, Any] = {
        "to": phone,
        "template": template.code,
        "language": template.language,
        "text": text,
        "segments": segments.segments,
        "encoding": segments.encoding.value,
        "characters": segments.units,
        "status_code": answer.status_code,
    }
    reply = answer.json()
    if isinstance(reply, dict):
        message_id = next((reply[k] for k in ID_KEYS if isinstance(reply.get(k), str | int)), None)
        if message_id is not None:
            result["provider_message_id"] = str(message_id)
        if isinstance(reply.get("status"), str):
            result["provider_status"] = reply["status"]
    return Done(result, reminder_sent=True)


__all__ = ["send_sms"]
