"""Every query of the webhooks: the delivery log (newest first, whole or in pages), the
active endpoints, the log entries to turn into events, the deliveries due and their claim."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import (
    DEFAULT_LIMIT,
    Keyset,
    check_limit,
    decode_id_cursor,
    split_page,
)
from recoup.domain.enums import DeliveryStatus
from recoup.models import LogEntry, Plan, WebhookDelivery, WebhookEndpoint


def _filtered(status: str | None) -> Select[Any]:
    query = select(WebhookDelivery)
    if status:
        try:
            wanted = DeliveryStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in DeliveryStatus)
            raise InvalidInput(
                f"unknown status {status!r} (one of: {choices})", field="status"
            ) from None
        query = query.where(WebhookDelivery.status == wanted.value)
    return query


def list_deliveries(
    session: Session, *, status: str | None = None, limit: int = 1000
) -> list[WebhookDelivery]:
    """The last `limit` deliveries, newest first."""
    query = _filtered(status).order_by(WebhookDelivery.id.desc()).limit(limit)
    return list(session.scalars(query))


def page(
    session: Session,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[WebhookDelivery], str | None]:
    """One page of deliveries, newest first, and the cursor of the next (older) page."""
    limit = check_limit(limit)
    query = _filtered(status).order_by(WebhookDelivery.id.desc())
    if cursor is not None:
        query = query.where(WebhookDelivery.id < decode_id_cursor(cursor))
    return split_page(list(session.scalars(query.limit(limit + 1))), limit)


def endpoint_page(
    session: Session,
    endpoint_id: int,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> tuple[list[WebhookDelivery], str | None]:
    """One page of an endpoint's deliveries, newest first, and the cursor of the next;
    `before`: the page before the cursor's delivery."""
    limit = check_limit(limit)
    keyset = Keyset(descending=True, before=before)
    query = (
        _filtered(status)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(*keyset.order(WebhookDelivery.id))
    )
    if cursor is not None:
        query = query.where(keyset.past(WebhookDelivery.id, decode_id_cursor(cursor)))
    return keyset.page(list(session.scalars(query.limit(limit + 1))), limit)


def get_delivery_or_not_found(session: Session, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return delivery


# --- endpoints -----------------------------------------------------------------------------


def get_endpoint_or_not_found(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def endpoint_by_url(session: Session, url: str) -> WebhookEndpoint | None:
    return session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.url == url))


def endpoints_page(
    session: Session,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> tuple[list[WebhookEndpoint], str | None]:
    """One page of the endpoints, oldest first (by id), and the cursor of the next;
    `before`: the page before the cursor's endpoint."""
    limit = check_limit(limit)
    keyset = Keyset(before=before)
    query = select(WebhookEndpoint).order_by(*keyset.order(WebhookEndpoint.id))
    if cursor is not None:
        query = query.where(keyset.past(WebhookEndpoint.id, decode_id_cursor(cursor)))
    return keyset.page(list(session.scalars(query.limit(limit + 1))), limit)


def all_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint, active or not, by id (the CLI's listing)."""
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def active_endpoints_by_url(session: Session) -> dict[str, WebhookEndpoint]:
    return {endpoint.url: endpoint for endpoint in active_endpoints(session)}


def drop_expired_secrets(session: Session, now: datetime) -> int:
    """Forget the previous secrets whose overlap has ended; how many."""
    result = session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.previous_secret_expires_at.is_not(None),
            WebhookEndpoint.previous_secret_expires_at <= now,
        )
        .values(previous_secret=None, previous_secret_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def detach_deliveries(session: Session, endpoint_id: int) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .values(endpoint_id=None)
        .execution_options(synchronize_session=False)
    )


def move_pending(session: Session, endpoint_id: int, url: str) -> None:
    """Point an endpoint's waiting deliveries at its new URL."""
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.pending.value,
        )
        .values(url=url)
        .execution_options(synchronize_session=False)
    )


def active_endpoints(session: Session) -> list[WebhookEndpoint]:
    """The active endpoints, by id."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.id)
        )
    )


def active_endpoint_urls(session: Session) -> set[str]:
    return set(session.scalars(select(WebhookEndpoint.url).where(WebhookEndpoint.active.is_(True))))


def has_active_endpoint(session: Session) -> bool:
    endpoint = session.scalar(
        select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(True)).limit(1)
    )
    return endpoint is not None


# --- the log entries events come from -------------------------------------------------------


def entries_to_scan(
    session: Session,
    *,
    events: Collection[str],
    above: int,
    after: int,
    limit: int,
    recent_since: datetime | None = None,
    recent_above: int = 0,
) -> list[LogEntry]:
    """The next `limit` entries of `events` after id `after`, by id: those above `above`, and
    with `recent_since`, also those written since then above `recent_above` (the rescan)."""
    condition: Any = LogEntry.id > above
    if recent_since is not None:
        recent = and_(LogEntry.at >= recent_since, LogEntry.id > recent_above)
        condition = or_(condition, recent)
    return list(
        session.scalars(
            select(LogEntry)
            .where(condition, LogEntry.event.in_(events), LogEntry.id > after)
            .order_by(LogEntry.id)
            .limit(limit)
        )
    )


def max_log_id(session: Session) -> int:
    """The id of the latest log entry, 0 when the log is empty."""
    return int(session.scalar(select(func.max(LogEntry.id))) or 0)


def queued_pairs(session: Session, entry_ids: Collection[int]) -> set[tuple[str, int]]:
    """The (url, log entry id) pairs already queued among these entries."""
    return {
        (url, log_entry_id)
        for url, log_entry_id in session.execute(
            select(WebhookDelivery.url, WebhookDelivery.log_entry_id).where(
                WebhookDelivery.log_entry_id.in_(entry_ids)
            )
        )
    }


def plans_by_id(session: Session, plan_ids: Collection[int]) -> dict[int, Plan]:
    if not plan_ids:
        return {}
    return {plan.id: plan for plan in session.scalars(select(Plan).where(Plan.id.in_(plan_ids)))}


# --- deliveries due -------------------------------------------------------------------------


def due(now: datetime) -> ColumnElement[bool]:
    """A delivery waiting whose next attempt has come."""
    return and_(
        WebhookDelivery.status == DeliveryStatus.pending.value,
        WebhookDelivery.next_attempt_at <= now,
    )


def count_due(session: Session, now: datetime) -> int:
    return int(
        session.scalar(select(func.count()).select_from(WebhookDelivery).where(due(now))) or 0
    )


def has_pending_delivery(session: Session) -> bool:
    waiting = session.scalar(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == DeliveryStatus.pending.value)
        .limit(1)
    )
    return waiting is not None


def claimable_ids(session: Session, *, now: datetime, size: int) -> list[int]:
    """The first `size` due deliveries, oldest attempt first; on PostgreSQL locked with
    FOR UPDATE SKIP LOCKED, so two pumps at once take different ones."""
    query = (
        select(WebhookDelivery.id)
        .where(due(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def deliveries_by_ids(session: Session, ids: Collection[int]) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))))


def lock_delivery(session: Session, delivery_id: int) -> WebhookDelivery | None:
    """One delivery, locked for its outcome (SELECT … FOR UPDATE where the database can)."""
    return session.get(WebhookDelivery, delivery_id, with_for_update=True)


__all__ = [
    "active_endpoint_urls",
    "active_endpoints",
    "active_endpoints_by_url",
    "all_endpoints",
    "drop_expired_secrets",
    "endpoint_by_url",
    "endpoint_page",
    "endpoints_page",
    "get_delivery_or_not_found",
    "get_endpoint_or_not_found",
    "move_pending",
    "claimable_ids",
    "count_due",
    "deliveries_by_ids",
    "detach_deliveries",
    "due",
    "entries_to_scan",
    "has_active_endpoint",
    "has_pending_delivery",
    "list_deliveries",
    "lock_delivery",
    "max_log_id",
    "page",
    "plans_by_id",
    "queued_pairs",
]
