"""Every query of the log: what happened, with filters, newest entries or cursor pages."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from recoup.core.schemas import (
    DEFAULT_LIMIT,
    Keyset,
    check_limit,
    decode_id_cursor,
)
from recoup.models import LogEntry


@dataclass(frozen=True)
class LogFilter:
    """Which entries: of a plan, a customer, an invoice, one event; `since`/`until` are
    business dates (the entry's `on`), both included."""

    plan_id: int | None = None
    customer_id: str | None = None
    invoice_id: str | None = None
    event: str | None = None
    since: date | None = None
    until: date | None = None

    def where(self, query: Select[Any]) -> Select[Any]:
        if self.plan_id is not None:
            query = query.where(LogEntry.plan_id == self.plan_id)
        if self.invoice_id:
            query = query.where(LogEntry.invoice_id == self.invoice_id)
        if self.customer_id:
            query = query.where(LogEntry.customer_id == self.customer_id)
        if self.event:
            query = query.where(LogEntry.event == self.event)
        if self.since is not None:
            query = query.where(LogEntry.on >= self.since)
        if self.until is not None:
            query = query.where(LogEntry.on <= self.until)
        return query


def recent(session: Session, filters: LogFilter = LogFilter(), *, limit: int) -> list[LogEntry]:
    """The last `limit` entries that match, oldest first (how `recoup log` reads)."""
    query = filters.where(select(LogEntry)).order_by(LogEntry.id.desc()).limit(limit)
    return list(reversed(list(session.scalars(query))))


def page(
    session: Session,
    filters: LogFilter = LogFilter(),
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> tuple[list[LogEntry], str | None]:
    """One page of the matching entries in the order they were written, and the cursor of
    the next page (None: this is the last); `before`: the page before the cursor's entry."""
    limit = check_limit(limit)
    keyset = Keyset(before=before)
    query = filters.where(select(LogEntry)).order_by(*keyset.order(LogEntry.id))
    if cursor is not None:
        query = query.where(keyset.past(LogEntry.id, decode_id_cursor(cursor)))
    return keyset.page(list(session.scalars(query.limit(limit + 1))), limit)


def for_plan(session: Session, plan_id: int) -> list[LogEntry]:
    """A plan's history, oldest first."""
    return list(
        session.scalars(select(LogEntry).where(LogEntry.plan_id == plan_id).order_by(LogEntry.id))
    )


def for_invoices(session: Session, invoice_ids: Collection[str]) -> list[LogEntry]:
    """What happened to these invoices, oldest first."""
    return list(
        session.scalars(
            select(LogEntry)
            .where(LogEntry.invoice_id.in_(list(invoice_ids) or [""]))
            .order_by(LogEntry.id)
        )
    )


__all__ = ["LogFilter", "for_invoices", "for_plan", "page", "recent"]
