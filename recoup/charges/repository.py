"""Every query of charges: a charge by id (locked for the change that follows), the list with
its filters, in pages or whole, a plan's charges, the open ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import (
    DEFAULT_LIMIT,
    Keyset,
    check_limit,
    decode_id_cursor,
)
from recoup.domain.enums import ChargeStatus
from recoup.models import Charge


def get_or_not_found(session: Session, charge_id: int) -> Charge:
    """The charge, locked (FOR UPDATE on PostgreSQL): it is read to be changed."""
    charge = session.get(Charge, charge_id, with_for_update=True)
    if charge is None:
        raise NotFound(f"no charge {charge_id}")
    return charge


def _filtered(customer_id: str | None, status: str | None) -> Select[Any]:
    if status is not None and status not in {s.value for s in ChargeStatus}:
        known = ", ".join(s.value for s in ChargeStatus)
        raise InvalidInput(
            f"unknown charge status {status!r} (expected one of: {known})", field="status"
        )
    query = select(Charge)
    if customer_id:
        query = query.where(Charge.customer_id == customer_id)
    if status:
        query = query.where(Charge.status == status)
    return query


def list_charges(
    session: Session, *, customer_id: str | None = None, status: str | None = None
) -> list[Charge]:
    """Every matching charge, oldest first."""
    return list(session.scalars(_filtered(customer_id, status).order_by(Charge.id)))


def page(
    session: Session,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> tuple[list[Charge], str | None]:
    """One page of the matching charges, oldest first, and the next page's cursor;
    `before`: the page before the cursor's charge."""
    limit = check_limit(limit)
    keyset = Keyset(before=before)
    query = _filtered(customer_id, status).order_by(*keyset.order(Charge.id))
    if cursor is not None:
        query = query.where(keyset.past(Charge.id, decode_id_cursor(cursor)))
    return keyset.page(list(session.scalars(query.limit(limit + 1))), limit)


def open_charges(session: Session) -> list[Charge]:
    """Every open charge, oldest first, locked for the change that follows."""
    return list(
        session.scalars(
            select(Charge)
            .where(Charge.status == ChargeStatus.open.value)
            .order_by(Charge.id)
            .with_for_update()
        )
    )


__all__ = ["get_or_not_found", "list_charges", "open_charges", "page"]
