"""Who may do what (issue 11): each route declares the right it needs with `requires(...)`,
and this table says which roles hold it. tests/api/test_roles.py walks every route of the app
against every role, so a route without a declared right cannot be added.

- `read`: look at anything (every role);
- `operate`: act on plans, tasks, customers, charges (collector, admin);
- `configure`: change the configuration, keys, settings (admin only; collectors read it)."""

from __future__ import annotations

from enum import StrEnum

from recoup.apikeys.schemas import Role


class Right(StrEnum):
    read = "read"
    operate = "operate"
    configure = "configure"


ROLES_WITH: dict[Right, frozenset[Role]] = {
    Right.read: frozenset({Role.admin, Role.collector, Role.viewer}),
    Right.operate: frozenset({Role.admin, Role.collector}),
    Right.configure: frozenset({Role.admin}),
}


def allowed(role: str, right: Right) -> bool:
    return role in ROLES_WITH[right]


__all__ = ["ROLES_WITH", "Right", "allowed"]
