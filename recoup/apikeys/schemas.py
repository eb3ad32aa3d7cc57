"""API keys as every face shows them (`ApiKeyRead`: never the key, only its prefix), what
creating one takes (`ApiKeyCreate`) and what creating one answers, once (`ApiKeyCreated`)."""

from __future__ import annotations

from pydantic import Field

from recoup.core.roles import Role  # the roles of keys and of users (recoup.users) alike
from recoup.core.schemas import Schema, Timestamp


class ApiKeyRead(Schema):
    id: int
    name: str
    role: Role
    prefix: str
    created_at: Timestamp
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None


class ApiKeyCreate(Schema):
    name: str = Field(min_length=1, max_length=100)
    role: Role


class ApiKeyCreated(ApiKeyRead):
    """The new key and, this once, the key itself."""

    key: str


__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyRead", "Role"]
