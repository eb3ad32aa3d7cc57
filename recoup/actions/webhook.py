"""The `webhook` and `retry_payment` executors (SPEC §3): a signed JSON POST describing the
plan, level and balance.

`webhook` posts to the action's `url`. `retry_payment` asks the billing system, at
RECOUP_BILLING_WEBHOOK_URL, to collect the REMAINING balance (the plan's, after any partial
payment), with `Idempotency-Key: <instance key>` so a retried request is the same request. The
billing system answers later: a payment through `recoup import payments` (which closes the plan,
R8) or a failure through `recoup payment-failed PLAN_ID --reason ...` (logged on the plan).

Both sign with RECOUP_WEBHOOK_SECRET (`Recoup-Signature: t=<unix ts>,v1=<hex HMAC-SHA256 of
f"{t}.{body}">`, see recoup.domain.signature). A 2xx is done; 408/425/429, 5xx, timeouts and
connection errors are an outage (TransportError), retried over hours; any other answer fails at
once.
"""

from __future__ import annotations

from typing import Any

import httpx

from recoup.actions.context import ActionContext
from recoup.actions.outcomes import ActionOutcome, Done, PermanentFailure
from recoup.domain.money import money_text
from recoup.domain.redact import redact_url, url_problem
from recoup.messages.errors import TransportError
from recoup.webhooks.payload import describe_plan, invoice_payload
from recoup.webhooks.transport import Response, post_signed


class RetryableHttpError(TransportError):
    """The endpoint answered with an error worth retrying (5xx, 429…): an outage, retried
    over hours (recoup.domain.retry)."""

    def __init__(self, message: str, *, reason: str = "server error") -> None:
        super().__init__(message, reason=reason)


def unreachable(what: str, exc: httpx.TransportError) -> TransportError:
    """A connection refused, a timeout, a bad name: the server cannot be reached."""
    detail = str(exc) or type(exc).__name__
    return TransportError(
        f"{what} unreachable: {type(exc).__name__}: {detail}", reason="server unreachable"
    )


def action_payload(ctx: ActionContext, kind: str) -> dict[str, Any]:
    """The plan (or, for a reminder, the invoice), the level and the balance still due."""
    balance = ctx.balance
    plan = describe_plan(ctx.session, ctx.plan, ctx.today) if ctx.plan is not None else None
    invoice_ids = (
        plan["invoice_ids"] if plan is not None else [i.id for i in ctx.invoices if i is not None]
    )
    return {
        "id": ctx.instance.key,
        "type": kind,
        "created": ctx.now.isoformat(),
        "on": ctx.today.isoformat(),
        "action": ctx.instance.action,
        "level": ctx.instance.level,
        "customer_id": ctx.customer.id,
        "plan_id": ctx.instance.plan_id,
        "invoice_ids": invoice_ids,
        "currency": balance.currency,
        "balance": money_text(balance.amount, balance.currency),
        "days_overdue": plan["days_overdue"] if plan is not None else _invoice_days(ctx),
        "plan": plan,
        "invoices": [invoice_payload(i, ctx.today) for i in ctx.invoices],
    }


def _invoice_days(ctx: ActionContext) -> int | None:
    return (ctx.today - ctx.invoice.due_date).days if ctx.invoice is not None else None


def _secret(ctx: ActionContext) -> str:
    secret = ctx.env.webhook_secret
    if not secret:
        raise PermanentFailure(
            f"action {ctx.instance.action}: RECOUP_WEBHOOK_SECRET is not set; webhooks are "
            "always signed"
        )
    return secret


def _outcome(ctx: ActionContext, url: str, answer: Response) -> dict[str, Any]:
    # the result, the log and the error show the endpoint, never its credentials (8.5)
    shown = redact_url(url)
    if answer.ok:
        return {"url": shown, "status_code": answer.status_code}
    message = f"{ctx.instance.type} to {shown}: {answer.describe()}"
    if answer.retryable:
        raise RetryableHttpError(message)
    raise PermanentFailure(message)


def _post(ctx: ActionContext, url: str, payload: dict[str, Any], event: str) -> Response:
    problem = url_problem(url)
    if problem:  # said without quoting the URL: its user info may hold a password
        where = "RECOUP_BILLING_WEBHOOK_URL" if event == "retry_payment" else "its url"
        raise PermanentFailure(f"action {ctx.instance.action}: {where} {problem}")
    secret = _secret(ctx)
    try:
        return post_signed(
            url,
            payload,
            secret=secret,
            now=ctx.now,
            # Standard Webhooks beside Recoup-Signature (SPEC §6): the instance's key is stable
            # across retries, so a receiver drops a delivery it already handled
            message_id=ctx.instance.key,
            signing_secrets=[secret] if secret else [],
            headers={
                "Idempotency-Key": ctx.instance.key,
                "Recoup-Event": event,
                "Recoup-Delivery": ctx.instance.key,
            },
        )
    except httpx.TransportError as exc:
        raise unreachable(f"{ctx.instance.type} endpoint", exc) from exc


def webhook(ctx: ActionContext) -> ActionOutcome:
    url = str(ctx.params.get("url") or "").strip()
    if not url:
        raise PermanentFailure(f"action {ctx.instance.action} has no url")
    if not url.startswith(("http://", "https://")):
        raise PermanentFailure(
            f"action {ctx.instance.action}: url must be http(s), not {redact_url(url)!r}"
        )
    payload = action_payload(ctx, "webhook")
    answer = _post(ctx, url, payload, "webhook")
    result = _outcome(ctx, url, answer)
    result.update(balance=payload["balance"], currency=payload["currency"])
    return Done(result)


def retry_payment(ctx: ActionContext) -> ActionOutcome:
    url = ctx.env.billing_webhook_url
    if not url:
        raise PermanentFailure(
            f"action {ctx.instance.action}: no billing endpoint configured "
            "(set RECOUP_BILLING_WEBHOOK_URL)"
        )
    payload = action_payload(ctx, "retry_payment")
    payload["amount"] = payload["balance"]  # the remaining balance, not the invoice total
    payload["idempotency_key"] = ctx.instance.key
    answer = _post(ctx, url, payload, "retry_payment")
    result = _outcome(ctx, url, answer)
    result.update(
        amount=payload["amount"],
        currency=payload["currency"],
        idempotency_key=ctx.instance.key,
    )
    reply = answer.json()
    if isinstance(reply, dict):
        for key in ("id", "status"):
            if isinstance(reply.get(key), str | int):
                result[f"billing_{key}"] = reply[key]
    return Done(result)


__all__ = ["RetryableHttpError", "action_payload", "retry_payment", "unreachable", "webhook"]
