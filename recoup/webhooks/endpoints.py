"""Managing webhook endpoints one by one (issue 11; the API's /webhooks, `recoup webhook`):
create, change, remove, rotate the secret, send a delivery again. Services: they flush, never
commit; each change is logged as `config_changed` with the actor and the reason.

The policies file's `webhooks:` list manages the same rows, by URL: `config apply` of a file
that does not list an endpoint removes it (export the configuration first), and an endpoint it
keeps keeps its secret.

A rotation makes a new secret; for `overlap` the previous one signs too (two `v1,` signatures
in `webhook-signature`), then it is dropped. Rotating again within the overlap replaces the
previous secret with the one being rotated out: at most two sign at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from recoup.core.clock import utc_now
from recoup.core.errors import Conflict, InvalidInput
from recoup.domain.enums import DeliveryStatus, Event, WebhookEvent
from recoup.domain.redact import redact_url, url_problem
from recoup.log.service import log
from recoup.models import WebhookDelivery, WebhookEndpoint
from recoup.webhooks import repository
from recoup.webhooks.service import enqueue_events
from recoup.webhooks.signing import new_secret

# logged when a person sends a delivery again (not one of the engine's events)
REDELIVERED = Event.webhook_redelivered.value


def check_url(url: str, field: str = "url") -> str:
    """An http(s) URL with a host (the same check the webhook transport makes before it
    posts), refused without quoting it: its user info may hold a password."""
    url = url.strip()
    if not url:
        raise InvalidInput("{field} is required", field=field)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInput("{field} must not contain spaces or control characters", field=field)
    problem = url_problem(url)
    if problem:
        raise InvalidInput(f"{{field}} {problem}", field=field)
    return url


def _description(text: str | None) -> str | None:
    if text is None:
        return None
    if any(not ch.isprintable() and ch not in "\n\t" for ch in text):
        raise InvalidInput("{field} must not contain control characters", field="description")
    return text.strip() or None


def _unique_url(session: Session, url: str, endpoint_id: int | None = None) -> None:
    found = repository.endpoint_by_url(session, url)
    if found is not None and found.id != endpoint_id:
        raise Conflict(f"{{field}}: endpoint {found.id} already has this URL", field="url")


def _events(events: Sequence[WebhookEvent | str] | None) -> list[str]:
    if events is None:  # as in the policies file: every event
        return [event.value for event in WebhookEvent]
    found: list[str] = []
    for event in events:
        value = WebhookEvent(event).value
        if value not in found:
            found.append(value)
    return found


def _log(
    session: Session,
    endpoint: WebhookEndpoint,
    change: str,
    *,
    actor: str,
    reason: str | None,
    **details: object,
) -> None:
    label = f"webhook {redact_url(endpoint.url)}"  # the log keeps no endpoint token
    lists: dict[str, list[str]] = {"created": [], "changed": [], "removed": []}
    lists[change].append(label)
    log(
        session,
        Event.config_changed,
        actor=actor,
        webhook_id=endpoint.id,
        reason=reason,
        **lists,
        **details,
    )


def create_endpoint(
    session: Session,
    *,
    url: str,
    events: Sequence[WebhookEvent | str] | None = None,
    description: str | None = None,
    active: bool = True,
    actor: str,
    reason: str | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (to show once). It receives the events logged from now
    on, not the history."""
    url = check_url(url)
    _unique_url(session, url)
    log_end = repository.max_log_id(session)
    position = max((e.position for e in repository.all_endpoints(session)), default=-1) + 1
    endpoint = WebhookEndpoint(
        url=url,
        events=_events(events),
        description=_description(description),
        active=active,
        position=position,
        start_log_id=log_end,
        cursor_log_id=log_end,
        secret=new_secret(),
    )
    session.add(endpoint)
    session.flush()
    _log(session, endpoint, "created", actor=actor, reason=reason)
    session.flush()
    return endpoint, endpoint.secret


def update_endpoint(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    events: Sequence[WebhookEvent | str] | None = None,
    description: str | None = None,
    active: bool | None = None,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Change what is given. A new URL receives the deliveries still waiting and the events
    from now on; a re-activated endpoint gets the events from now on (as `config apply`)."""
    now = now or utc_now()
    fields: list[str] = []
    # everything checked before anything changes
    url = check_url(url) if url is not None else None
    wanted_description = _description(description) if description is not None else None
    if url is not None and url != endpoint.url:
        _unique_url(session, url, endpoint.id)
        # what was logged so far is queued for the old URL first, then moved with the rest
        # of its waiting deliveries, so no event is lost or sent twice to the new one
        enqueue_events(session, now=now)
        repository.move_pending(session, endpoint.id, url)
        endpoint.url = url
        top = repository.max_log_id(session)
        endpoint.start_log_id = endpoint.cursor_log_id = top
        fields.append("url")
    if events is not None:
        wanted = _events(events)
        if wanted != list(endpoint.events or []):
            endpoint.events = wanted
            fields.append("events")
    if description is not None and wanted_description != endpoint.description:
        endpoint.description = wanted_description
        fields.append("description")
    if active is not None and active != endpoint.active:
        if active:  # events logged while it was inactive are not sent
            top = repository.max_log_id(session)
            endpoint.start_log_id = endpoint.cursor_log_id = top
        endpoint.active = active
        fields.append("active")
    if fields:
        _log(session, endpoint, "changed", actor=actor, reason=reason, fields=fields)
    session.flush()
    return endpoint


def delete_endpoint(
    session: Session, endpoint: WebhookEndpoint, *, actor: str, reason: str | None = None
) -> None:
    """Remove an endpoint: its deliveries stop (those waiting fail as no longer configured);
    its delivery log stays."""
    _log(session, endpoint, "removed", actor=actor, reason=reason)
    # SQLite may give a later endpoint the same id: the log is no longer listed under it
    repository.detach_deliveries(session, endpoint.id)
    session.delete(endpoint)
    session.flush()


def rotate_secret(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    overlap: timedelta,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> str:
    """A new secret for the endpoint (to show once); the one it replaces still signs for
    `overlap` (none: it stops at once)."""
    if overlap < timedelta(0):
        raise InvalidInput("{field} cannot be negative", field="overlap_hours")
    now = now or utc_now()
    if overlap > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + overlap
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = new_secret()
    _log(
        session,
        endpoint,
        "changed",
        actor=actor,
        reason=reason,
        fields=["secret"],
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
    )
    session.flush()
    return endpoint.secret


def redeliver(
    session: Session,
    delivery: WebhookDelivery,
    *,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> WebhookDelivery:
    """Queue a delivered or failed delivery again, to its endpoint's current URL, with the
    same `webhook-id` and body; the next pump sends it (one more attempt, then retries while
    under MAX_ATTEMPTS)."""
    now = now or utc_now()
    if delivery.status == DeliveryStatus.pending.value:
        raise Conflict(f"delivery {delivery.id} is already waiting to be sent")
    endpoint = (
        session.get(WebhookEndpoint, delivery.endpoint_id)
        if delivery.endpoint_id is not None
        else repository.endpoint_by_url(session, delivery.url)
    )
    if endpoint is None or not endpoint.active:
        raise Conflict(f"delivery {delivery.id}: its endpoint is removed or inactive")
    delivery.url = endpoint.url
    delivery.endpoint_id = endpoint.id
    delivery.status = DeliveryStatus.pending.value
    delivery.next_attempt_at = now
    delivery.delivered_at = None
    log(
        session,
        REDELIVERED,
        actor=actor,
        customer_id=delivery.customer_id,
        plan_id=delivery.plan_id,
        delivery_id=delivery.id,
        webhook_id=endpoint.id,
        url=redact_url(endpoint.url),
        webhook_event=delivery.event,
        event_id=(delivery.payload or {}).get("id"),
        reason=reason,
    )
    session.flush()
    return delivery


__all__ = [
    "REDELIVERED",
    "check_url",
    "create_endpoint",
    "delete_endpoint",
    "redeliver",
    "rotate_secret",
    "update_endpoint",
]
