"""Every query of API keys: by name, by the hash of a key, the listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.models import ApiKey


def get_by_name_or_not_found(session: Session, name: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise NotFound(f"API key {name!r} not found")
    return key


def credentials_by_hash(session: Session, key_hash: str) -> Row[Any] | None:
    """What checking a key reads (id, name, role, key_hash, revoked_at, last_used_at), as a
    row: every API request checks its key, and an ORM object would cost more than the query."""
    return session.execute(
        select(
            ApiKey.id,
            ApiKey.name,
            ApiKey.role,
            ApiKey.key_hash,
            ApiKey.revoked_at,
            ApiKey.last_used_at,
        ).where(ApiKey.key_hash == key_hash)
    ).first()


def set_last_used(session: Session, key_id: int, when: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))


def name_taken(session: Session, name: str) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


__all__ = [
    "credentials_by_hash",
    "set_last_used",
    "get_by_name_or_not_found",
    "list_keys",
    "name_taken",
]
