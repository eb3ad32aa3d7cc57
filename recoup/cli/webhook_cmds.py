"""Webhooks out and the billing system's answers (SPEC §3, §5): `recoup deliveries`,
`recoup events deliver`, `recoup webhook list|rotate`, `recoup payment-failed PLAN_ID
--reason ...`. Endpoints are added in the policies file (`webhooks:`) or the API."""

from __future__ import annotations

from datetime import timedelta

import typer

from recoup.billing.service import record_payment_failure
from recoup.cli.common import (
    JSON_ONE_OPTION,
    JSON_OPTION,
    USER_OPTION,
    actor_name,
    console,
    env,
    handle_errors,
    output,
    parse_date,
    print_json,
    session_factory,
    transaction,
)
from recoup.webhooks import repository as delivery_repository
from recoup.webhooks.endpoints import rotate_secret
from recoup.webhooks.schemas import (
    DEFAULT_OVERLAP_HOURS,
    MAX_OVERLAP_HOURS,
    DeliveryRead,
    EndpointRead,
    EndpointSecret,
)
from recoup.webhooks.service import pump

TABLE_FIELDS = ["id", "event", "status", "attempts", "last_status_code", "url", "last_error"]
ENDPOINT_FIELDS = ["id", "url", "active", "events", "description", "previous_secret_expires_at"]

events_app = typer.Typer(
    help="Events sent to the configured webhook endpoints.", no_args_is_help=True
)


webhook_app = typer.Typer(
    help="The endpoints events are sent to, and their signing secrets.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("deliveries")(deliveries)
    app.add_typer(events_app, name="events")
    app.add_typer(webhook_app, name="webhook")
    app.command("payment-failed")(payment_failed)


@handle_errors
def deliveries(
    status: str | None = typer.Option(
        None, help="Only deliveries in this status (pending, delivered, failed)."
    ),
    limit: int = typer.Option(1000, help="At most this many (newest first)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The delivery log of outgoing events: one row per event and endpoint."""
    with transaction() as session:
        found = delivery_repository.list_deliveries(session, status=status, limit=limit)
        shown = [DeliveryRead.model_validate(row) for row in found]
    if as_json:
        print_json([row.model_dump(mode="json") for row in shown])
    else:
        output([row.model_dump() for row in shown], TABLE_FIELDS, as_json=False, title="Deliveries")


@events_app.command("deliver")
@handle_errors
def deliver(as_json: bool = JSON_ONE_OPTION) -> None:
    """Queue new events for every endpoint and send what is due now."""
    stats = pump(session_factory(), env=env())
    if as_json:
        print_json([stats.as_dict()])
        return
    console.print(
        f"queued {stats.enqueued}, delivered {stats.delivered}, "
        f"to retry {stats.retried}, failed {stats.failed}"
    )
    if stats.note:
        console.print(f"[yellow]{stats.note}[/yellow]")


@webhook_app.command("list")
@handle_errors
def list_endpoints(as_json: bool = JSON_OPTION) -> None:
    """The endpoints (never their secrets)."""
    with transaction() as session:
        rows = [
            EndpointRead.model_validate(row).model_dump(mode="json")
            for row in delivery_repository.all_endpoints(session)
        ]
    if as_json:
        print_json(rows)
        return
    shown = [{**row, "events": ", ".join(row["events"])} for row in rows]
    output(shown, ENDPOINT_FIELDS, as_json=False, title="Webhook endpoints")


@webhook_app.command("rotate")
@handle_errors
def rotate(
    endpoint_id: int = typer.Argument(..., help="The endpoint (see `recoup webhook list`)."),
    overlap_hours: int = typer.Option(
        DEFAULT_OVERLAP_HOURS,
        "--overlap-hours",
        min=0,
        max=MAX_OVERLAP_HOURS,
        help="How long the previous secret also signs (0: it stops at once).",
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the log)."),
    user: str | None = USER_OPTION,
    as_json: bool = JSON_ONE_OPTION,
) -> None:
    """Give an endpoint a new signing secret and print it, once."""
    with transaction() as session:
        endpoint = delivery_repository.get_endpoint_or_not_found(session, endpoint_id)
        secret = rotate_secret(
            session,
            endpoint,
            overlap=timedelta(hours=overlap_hours),
            actor=actor_name(user),
            reason=reason,
        )
        shown = EndpointSecret.of(endpoint, secret)
    if as_json:
        print_json([shown.model_dump(mode="json")])
        return
    until = shown.previous_secret_expires_at
    console.print(
        f"webhook endpoint {endpoint_id}: new secret, shown only now"
        + (f" (the previous one also signs until {until.isoformat()})" if until else "")
        + ":",
        highlight=False,
    )
    typer.echo(secret)  # alone on its line, so it can be copied or piped whole


@handle_errors
def payment_failed(
    plan_id: int = typer.Argument(..., help="The plan whose payment retry failed."),
    reason: str = typer.Option(..., "--reason", help="Why the billing system could not collect."),
    key: str | None = typer.Option(None, "--key", help="Idempotency key of the retry request."),
    on: str | None = typer.Option(None, "--on", help="Business date (default: today)."),
    user: str | None = USER_OPTION,
) -> None:
    """Record the billing system's answer that a payment retry failed (logged on the plan)."""
    with transaction() as session:
        entry = record_payment_failure(
            session,
            plan_id,
            reason=reason,
            actor=actor_name(user),
            on=parse_date(on, "--on"),
            key=key,
        )
        entry_id = entry.id
    console.print(f"plan {plan_id}: payment retry failure logged (log entry {entry_id})")
