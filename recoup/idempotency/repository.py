"""Every query of idempotency keys: one reservation by (API key, key), taking over a stale one,
and purging the expired."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from recoup.models import IdempotencyKey


def find(session: Session, api_key_id: int, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
        )
    )


def add(
    session: Session, *, api_key_id: int, key: str, fingerprint: str, now: datetime
) -> IdempotencyKey:
    """The reservation; flushed, so a second one of the same key fails here (the unique
    constraint), waiting on PostgreSQL until the first commits."""
    row = IdempotencyKey(
        api_key_id=api_key_id, key=key, fingerprint=fingerprint, created_at=now, locked_at=now
    )
    session.add(row)
    session.flush()
    return row


def take_over(session: Session, row_id: int, locked_at: datetime, now: datetime) -> bool:
    """Lock a stale reservation again; False when another request took it first."""
    result = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == row_id,
            IdempotencyKey.locked_at == locked_at,
            IdempotencyKey.status_code.is_(None),
        )
        .values(locked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get(session: Session, row_id: int) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, row_id)


def remove(session: Session, row_id: int) -> None:
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))


def purge_created_before(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


__all__ = ["add", "find", "get", "purge_created_before", "remove", "take_over"]
