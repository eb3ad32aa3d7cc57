"""Every query of idempotency keys: one reservation by (API key, key), taking over a stale one,
and purging the expired.

Every POST with an `Idempotency-Key` runs these, in two small transactions of its own around
the request (recoup.api.idempotency): Core statements built once, rows rather than ORM
objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from recoup.core.db import table_of
from recoup.models import IdempotencyKey

_KEYS = table_of(IdempotencyKey)

_FIND = select(
    _KEYS.c.id,
    _KEYS.c.fingerprint,
    _KEYS.c.created_at,
    _KEYS.c.locked_at,
    _KEYS.c.status_code,
    _KEYS.c.content_type,
    _KEYS.c.body,
).where(_KEYS.c.api_key_id == bindparam("api_key_id"), _KEYS.c.key == bindparam("key"))

# the reservation unless (API key, key) has one: the unique constraint decides, in the insert
_ADD = {
    "postgresql": postgresql.insert(_KEYS)
    .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
    .returning(_KEYS.c.id),
    "sqlite": sqlite.insert(_KEYS)
    .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
    .returning(_KEYS.c.id),
}

_TAKE_OVER = (
    update(_KEYS)
    .where(
        _KEYS.c.id == bindparam("row_id"),
        _KEYS.c.locked_at == bindparam("was_locked_at"),
        _KEYS.c.status_code.is_(None),
    )
    .values(locked_at=bindparam("now"))
)

_ANSWER = (
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("row_id"))
    .values(
        status_code=bindparam("answer_status"),
        content_type=bindparam("answer_type"),
        body=bindparam("answer_body"),
    )
)

_REMOVE = delete(_KEYS).where(_KEYS.c.id == bindparam("row_id"))
_REMOVE_EXPIRED = delete(_KEYS).where(
    _KEYS.c.id == bindparam("row_id"), _KEYS.c.created_at < bindparam("cutoff")
)
# The oldest expired ones, a batch at a time: read in created_at order, the index is used
# whatever the statistics say (a bare `created_at < cutoff` was planned as a scan of the whole
# table while they said nothing), and a request never deletes more than a batch.
PURGE_BATCH = 1000
_PURGE = delete(_KEYS).where(
    _KEYS.c.id.in_(
        select(_KEYS.c.id)
        .where(_KEYS.c.created_at < bindparam("cutoff"))
        .order_by(_KEYS.c.created_at)
        .limit(bindparam("batch"))
        .scalar_subquery()
    )
)


def find(session: Session, api_key_id: int, key: str) -> Row[*tuple[Any, ...]] | None:
    """(id, fingerprint, created_at, locked_at, status_code, content_type, body) of the
    reservation."""
    return session.execute(_FIND, {"api_key_id": api_key_id, "key": key}).first()


def add_unless_taken(
    session: Session, *, api_key_id: int, key: str, fingerprint: str, now: datetime
) -> int | None:
    """The new reservation's id, or None when (API key, key) has one already. On PostgreSQL a
    reservation of the same key not yet committed is waited for: None once it commits, a new
    reservation if it rolls back."""
    statement = _ADD[session.get_bind().dialect.name]
    return session.execute(
        statement,
        {
            "api_key_id": api_key_id,
            "key": key,
            "fingerprint": fingerprint,
            "created_at": now,
            "locked_at": now,
        },
    ).scalar()


def take_over(session: Session, row_id: int, locked_at: datetime, now: datetime) -> bool:
    """Lock a stale reservation again; False when another request took it first."""
    result = session.execute(_TAKE_OVER, {"row_id": row_id, "was_locked_at": locked_at, "now": now})
    return bool(result.rowcount)  # type: ignore[attr-defined]


def keep_answer(
    session: Session, row_id: int, *, status_code: int, content_type: str | None, body: bytes
) -> None:
    """The answer to replay (nothing when the reservation was purged meanwhile)."""
    session.execute(
        _ANSWER,
        {
            "row_id": row_id,
            "answer_status": status_code,
            "answer_type": content_type,
            "answer_body": body,
        },
    )


def remove(session: Session, row_id: int) -> None:
    session.execute(_REMOVE, {"row_id": row_id})


def remove_expired(session: Session, row_id: int, cutoff: datetime) -> None:
    """The reservation, if it was created before `cutoff` (not when another request has just
    reserved the key again)."""
    session.execute(_REMOVE_EXPIRED, {"row_id": row_id, "cutoff": cutoff})


def purge_created_before(session: Session, cutoff: datetime) -> int:
    """Remove up to PURGE_BATCH of the reservations created before `cutoff`, oldest first;
    returns how many."""
    result = session.execute(_PURGE, {"cutoff": cutoff, "batch": PURGE_BATCH})
    return int(result.rowcount)  # type: ignore[attr-defined]


__all__ = [
    "PURGE_BATCH",
    "add_unless_taken",
    "find",
    "keep_answer",
    "purge_created_before",
    "remove",
    "remove_expired",
    "take_over",
]
