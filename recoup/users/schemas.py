"""Users as every face shows them (`UserRead`: never the password hash) and what creating one
takes (`UserCreate`)."""

from __future__ import annotations

from pydantic import Field

from recoup.core.roles import Role
from recoup.core.schemas import Schema, Timestamp


class UserRead(Schema):
    id: int
    name: str
    email: str
    role: Role
    task_roles: list[str]
    created_at: Timestamp
    disabled_at: Timestamp | None
    last_login_at: Timestamp | None


class UserCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    role: Role
    task_roles: list[str] = Field(default_factory=list)


__all__ = ["UserCreate", "UserRead"]
