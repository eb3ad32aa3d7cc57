"""Outgoing events (SPEC §5 "webhooks out"), derived from the append-only log.

Where the engine and the executors write `plan_opened`, `level_reached`, `charge_created`,
`status_changed`, `task_created` and `plan_recovered|unrecovered|stopped` (sent as
`plan_closed` with the final status), and people `charge_waived`, nothing else has to know
about webhooks:

- `enqueue_events(session, since_log_id)` scans the log entries written since each active
  endpoint's cursor and inserts one `webhook_deliveries` row per (endpoint, entry) it
  subscribes to. The unique (url, log_entry_id) makes it idempotent, so two pumps at once or
  a pump repeated after a crash never queue an event twice. On PostgreSQL a transaction can
  commit a lower log id after a higher one was seen; entries of the last RESCAN_WINDOW are
  therefore looked at again (the unique key drops what is already queued).
- `deliver_pending(factory, env=..., now=...)` POSTs due deliveries, signed the Standard
  Webhooks way with the endpoint's own secret(s) (`webhook-id`, `webhook-timestamp`,
  `webhook-signature`, see recoup.webhooks.signing) and, with RECOUP_WEBHOOK_SECRET set, with
  `Recoup-Signature` as before; with `Recoup-Event`, `Recoup-Delivery` and `Idempotency-Key`
  (the event id) headers. A 2xx is delivered; anything else is retried after 1, 2, 4, …
  minutes (capped at an hour), each failure logged (`webhook_failed`) with its reason, until
  MAX_ATTEMPTS. Delivery is at least once: receivers deduplicate on `webhook-id` (or the
  event id).
- `pump(factory, env=..., now=...)` does both; the run calls it after executing actions, and
  `recoup events deliver` on demand. It is an edge: it owns its transactions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, update
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.domain.enums import DeliveryStatus, Event, WebhookEvent
from recoup.domain.redact import redact_url
from recoup.log.service import log
from recoup.models import LogEntry, WebhookDelivery, WebhookEndpoint
from recoup.plans import repository as plan_repository
from recoup.webhooks import repository
from recoup.webhooks.payload import plan_payload
from recoup.webhooks.signing import message_id
from recoup.webhooks.transport import post_signed

logger = logging.getLogger(__name__)

# Log events each outgoing event comes from.
SOURCES: dict[WebhookEvent, tuple[Event, ...]] = {
    WebhookEvent.plan_opened: (Event.plan_opened,),
    WebhookEvent.plan_closed: (Event.plan_recovered, Event.plan_unrecovered, Event.plan_stopped),
    WebhookEvent.level_reached: (Event.level_reached,),
    WebhookEvent.charge_created: (Event.charge_created,),
    WebhookEvent.charge_waived: (Event.charge_waived,),
    WebhookEvent.status_changed: (Event.status_changed,),
    WebhookEvent.task_created: (Event.task_created,),
}
OUTGOING: dict[str, WebhookEvent] = {
    source.value: event for event, sources in SOURCES.items() for source in sources
}
FINAL_STATUS = {
    Event.plan_recovered.value: "recovered",
    Event.plan_unrecovered.value: "unrecovered",
    Event.plan_stopped.value: "stopped",
}

MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # a claimed delivery is not claimed again before this
RESCAN_WINDOW = timedelta(minutes=10)
SCAN_BATCH = 500
DELIVERY_BATCH = 50


def backoff(attempts: int) -> timedelta:
    """Delay after `attempts` failed attempts: 1, 2, 4, 8 … minutes, at most an hour."""
    delay: timedelta = BACKOFF_BASE * (2 ** max(0, attempts - 1))
    return min(delay, BACKOFF_CAP)


@dataclass
class PumpStats:
    enqueued: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    note: str | None = None  # a remark for the person who asked (none is made today)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "enqueued": self.enqueued,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
        }
        if self.note:
            result["note"] = self.note
        return result


# --- enqueueing ----------------------------------------------------------------------------


def _sources_for(endpoint: WebhookEndpoint) -> set[str]:
    sources: set[str] = set()
    for name in endpoint.events or []:
        try:
            event = WebhookEvent(name)
        except ValueError:  # refused by validation; rows written otherwise are ignored
            continue
        sources.update(source.value for source in SOURCES[event])
    return sources


def event_reason(event: str, details: dict[str, Any]) -> str | None:
    """Why it happened, in a word or a person's words: the log entry's `reason` (a stop's, a
    waiver's, `paid` for a recovery), else what the event implies."""
    reason = details.get("reason")
    if reason:
        return str(reason)
    if event == Event.level_reached.value and details.get("days_overdue") is not None:
        return f"{details['days_overdue']} days overdue"
    return DEFAULT_REASON.get(event)


DEFAULT_REASON = {
    Event.plan_opened.value: "overdue",
    Event.plan_recovered.value: "paid",
    Event.plan_unrecovered.value: "end level reached",
    Event.plan_stopped.value: "stopped",
}


def event_payload(entry: LogEntry, plan: dict[str, Any] | None) -> dict[str, Any]:
    """The body an endpoint receives for one log entry: same for every endpoint."""
    kind = OUTGOING[entry.event]
    details = dict(entry.details or {})
    data: dict[str, Any] = {
        "customer_id": entry.customer_id,
        "invoice_id": entry.invoice_id,
        "plan_id": entry.plan_id,
        "level": entry.level,
        "action": entry.action,
        "actor": entry.actor,
        "details": details,
        "plan": plan,
        # issue 11: what a receiver acts on without digging into `plan` or `details`
        "policy": plan["policy"] if plan is not None else None,
        "balance": plan["balance"] if plan is not None else None,
        "currency": plan["currency"] if plan is not None else None,
        "reason": event_reason(entry.event, details),
    }
    if kind is WebhookEvent.plan_closed:
        data["status"] = FINAL_STATUS[entry.event]
    return {
        "id": f"evt_{entry.id}",
        "type": kind.value,
        "created": entry.at.isoformat(),
        "on": entry.on.isoformat() if entry.on else None,
        "data": data,
    }


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(WebhookDelivery).on_conflict_do_nothing(
            index_elements=["url", "log_entry_id"]
        )
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(WebhookDelivery).on_conflict_do_nothing(
            index_elements=["url", "log_entry_id"]
        )
    else:  # pragma: no cover - the two supported databases are above
        stmt = insert(WebhookDelivery)
    session.execute(stmt, rows)
    return len(rows)  # already-queued pairs were filtered out before; a racing pump's are dropped


def enqueue_events(
    session: Session, since_log_id: int | None = None, *, now: datetime | None = None
) -> int:
    """Queue deliveries for subscribed log entries; returns how many were new. Flushes only.

    Without `since_log_id` each endpoint continues from its cursor (and looks again at the last
    RESCAN_WINDOW); with it, entries after that id are (re)considered for every endpoint, never
    before the endpoint was added.
    """
    now = now or utc_now()
    endpoints = repository.active_endpoints(session)
    wanted = [(endpoint, _sources_for(endpoint)) for endpoint in endpoints]
    wanted = [(endpoint, sources) for endpoint, sources in wanted if sources]
    if not wanted:
        return 0
    all_sources = sorted(set().union(*(sources for _, sources in wanted)))
    floors = {
        endpoint.id: max(
            endpoint.start_log_id,
            since_log_id if since_log_id is not None else endpoint.cursor_log_id,
        )
        for endpoint, _ in wanted
    }
    low = min(floors.values())
    rescan = since_log_id is None  # also the entries of the last RESCAN_WINDOW
    first_start = min(endpoint.start_log_id for endpoint, _ in wanted)
    inserted = 0
    last_id = 0
    while True:
        entries = repository.entries_to_scan(
            session,
            events=all_sources,
            above=low,
            after=last_id,
            limit=SCAN_BATCH,
            recent_since=now - RESCAN_WINDOW if rescan else None,
            recent_above=first_start,
        )
        if not entries:
            break
        last_id = entries[-1].id
        inserted += _enqueue_batch(
            session, wanted, floors, entries, rescan=since_log_id is None, now=now
        )
    top = repository.max_log_id(session)
    for endpoint, _ in wanted:
        endpoint.cursor_log_id = max(endpoint.cursor_log_id, top)
    session.flush()
    return inserted


def _enqueue_batch(
    session: Session,
    wanted: Sequence[tuple[WebhookEndpoint, set[str]]],
    floors: dict[int, int],
    entries: Sequence[LogEntry],
    *,
    rescan: bool,
    now: datetime,
) -> int:
    entry_ids = [entry.id for entry in entries]
    existing = repository.queued_pairs(session, entry_ids)
    plan_ids = {entry.plan_id for entry in entries if entry.plan_id is not None}
    plans = repository.plans_by_id(session, plan_ids)
    invoice_ids = plan_repository.invoice_ids_by_plan(session, plan_ids)
    payloads: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        for endpoint, sources in wanted:
            if entry.event not in sources or (endpoint.url, entry.id) in existing:
                continue
            floor = endpoint.start_log_id if rescan else floors[endpoint.id]
            if entry.id <= floor:
                continue
            if entry.id not in payloads:
                plan = plans.get(entry.plan_id) if entry.plan_id is not None else None
                today = entry.on or entry.at.date()
                view = (
                    plan_payload(plan, invoice_ids.get(plan.id, []), today)
                    if plan is not None
                    else None
                )
                payloads[entry.id] = event_payload(entry, view)
            rows.append(
                {
                    "url": endpoint.url,
                    "endpoint_id": endpoint.id,
                    "event": OUTGOING[entry.event].value,
                    "log_entry_id": entry.id,
                    "plan_id": entry.plan_id,
                    "customer_id": entry.customer_id,
                    "payload": payloads[entry.id],
                    "status": DeliveryStatus.pending.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    return _insert_ignoring_duplicates(session, rows)


# --- delivering ----------------------------------------------------------------------------


def claim_deliveries(session: Session, *, now: datetime, size: int) -> list[int]:
    """Lease due deliveries by moving their next attempt LEASE ahead; returns their ids."""
    ids = repository.claimable_ids(session, now=now, size=size)
    if not ids:
        return []
    claimed = session.scalars(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids), repository.due(now))
        .values(next_attempt_at=now + LEASE)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(claimed)


@dataclass(frozen=True)
class _Attempt:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets an endpoint's deliveries are signed with now: its own, and during a
    rotation's overlap the previous one too (newest first)."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        found.append(endpoint.previous_secret)
    return found


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    url: str
    payload: dict[str, Any]
    secrets: list[str] | None  # None: the endpoint is gone or inactive


def _attempt(job: _Job, *, legacy_secret: str | None, now: datetime) -> _Attempt:
    payload = job.payload
    # signed when it is sent: a long batch must not send timestamps receivers find too old
    # (a pump given a later `now`, as tests and simulations do, keeps it)
    sent_at = max(now, utc_now())
    try:
        answer = post_signed(
            job.url,
            payload,
            secret=legacy_secret,
            now=sent_at,
            message_id=message_id(job.delivery_id),
            signing_secrets=job.secrets or [],
            headers={
                "Recoup-Event": str(payload.get("type")),
                "Recoup-Delivery": str(job.delivery_id),
                "Idempotency-Key": str(payload.get("id")),
            },
        )
    except httpx.HTTPError as exc:
        return _Attempt(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if answer.ok:
        return _Attempt(answer.status_code, None)
    return _Attempt(answer.status_code, answer.describe())


def deliver_pending(
    factory: sessionmaker[Session],
    *,
    env: EnvConfig,
    now: datetime | None = None,
    limit: int | None = None,
) -> PumpStats:
    """POST every due delivery, each recorded in its own transaction. An edge: commits.

    Each is signed with its endpoint's secrets (webhook-signature) and, where the installation
    has RECOUP_WEBHOOK_SECRET, also with it as `Recoup-Signature`, as before per-endpoint
    secrets, so receivers set up then keep working."""
    stats = PumpStats()
    now = now or utc_now()
    processed = 0
    while limit is None or processed < limit:
        size = DELIVERY_BATCH if limit is None else min(DELIVERY_BATCH, limit - processed)
        with factory.begin() as session:
            ids = claim_deliveries(session, now=now, size=size)
            active = repository.active_endpoints_by_url(session)
            jobs = [
                _Job(
                    row.id,
                    row.url,
                    dict(row.payload),
                    signing_secrets(active[row.url], now) if row.url in active else None,
                )
                for row in repository.deliveries_by_ids(session, ids)
            ]
        if not jobs:
            break
        for job in sorted(jobs, key=lambda job: job.delivery_id):
            if job.secrets is None:
                attempt = _Attempt(None, "endpoint is no longer configured or is inactive")
                final = True
            else:
                attempt = _attempt(job, legacy_secret=env.webhook_secret, now=now)
                if attempt.error:  # stored and logged: without credentials (issue 8.5)
                    attempt = _Attempt(attempt.status_code, env.redact(attempt.error))
                final = False
            with factory.begin() as session:
                kind = _record(session, job.delivery_id, attempt, now=now, final=final)
            setattr(stats, kind, getattr(stats, kind) + 1)
            processed += 1
    return stats


def _record(
    session: Session, delivery_id: int, attempt: _Attempt, *, now: datetime, final: bool
) -> str:
    delivery = repository.lock_delivery(session, delivery_id)
    assert delivery is not None
    delivery.attempts += 1
    delivery.last_status_code = attempt.status_code
    if attempt.ok:
        delivery.status = DeliveryStatus.delivered.value
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = None
        session.flush()
        return "delivered"
    delivery.last_error = attempt.error
    if final or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.failed.value
        delivery.next_attempt_at = None
        kind = "failed"
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
        kind = "retried"
    log(
        session,
        Event.webhook_failed,
        customer_id=delivery.customer_id,
        plan_id=delivery.plan_id,
        delivery_id=delivery.id,
        url=redact_url(delivery.url),
        webhook_event=delivery.event,
        event_id=(delivery.payload or {}).get("id"),
        attempt=delivery.attempts,
        status_code=attempt.status_code,
        error=attempt.error,
        next_attempt_at=delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
        final=kind == "failed",
    )
    logger.warning(
        "webhook delivery %s to %s failed (attempt %s): %s",
        delivery.id,
        redact_url(delivery.url),
        delivery.attempts,
        attempt.error,
    )
    session.flush()
    return kind


# --- the pump ------------------------------------------------------------------------------


def has_endpoints(factory: sessionmaker[Session]) -> bool:
    """Anything to do: an active endpoint, or deliveries still waiting."""
    with factory() as session:
        return repository.has_active_endpoint(session) or repository.has_pending_delivery(session)


def pump(
    factory: sessionmaker[Session],
    *,
    env: EnvConfig,
    now: datetime | None = None,
) -> PumpStats:
    """Queue the new events for every endpoint, then deliver what is due. Owns its
    transactions; safe to call from the run, the worker and the CLI, even at once."""
    now = now or utc_now()
    if not has_endpoints(factory):
        return PumpStats()
    with factory.begin() as session:
        repository.drop_expired_secrets(session, now)  # a rotation's overlap has ended
        enqueued = enqueue_events(session, now=now)
    stats = deliver_pending(factory, env=env, now=now)
    stats.enqueued = enqueued
    return stats


__all__ = [
    "MAX_ATTEMPTS",
    "PumpStats",
    "backoff",
    "deliver_pending",
    "enqueue_events",
    "event_payload",
    "has_endpoints",
    "pump",
]
