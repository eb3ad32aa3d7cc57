"""Every query of API keys: by name, by the hash of a key, the listing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.models import ApiKey


def get_by_name_or_not_found(session: Session, name: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise NotFound(f"API key {name!r} not found")
    return key


def by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def name_taken(session: Session, name: str) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


__all__ = ["by_hash", "get_by_name_or_not_found", "list_keys", "name_taken"]
