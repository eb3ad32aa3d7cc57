"""The queries that read the delivery log (newest first), whole or in pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput
from recoup.core.schemas import DEFAULT_LIMIT, check_limit, decode_cursor, encode_cursor
from recoup.domain.enums import DeliveryStatus
from recoup.models import WebhookDelivery


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
        key = decode_cursor(cursor)
        if len(key) != 1 or not isinstance(key[0], int):
            raise InvalidInput("{field}: not a cursor this list gave out", field="cursor")
        query = query.where(WebhookDelivery.id < key[0])
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor([rows[limit - 1].id])
    return rows, None


__all__ = ["list_deliveries", "page"]
