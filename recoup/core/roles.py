"""Who may do what, for every face (issue 11, issue 12): the three roles a key or a user has,
the three rights, and which roles hold each right. The API (recoup.api.roles) and the back
office (recoup.web) read the same table, so a role means the same on both.

- `read`: look at anything (every role);
- `operate`: act on plans, tasks, customers, charges (collector, admin);
- `configure`: change the configuration, keys, settings (admin only; collectors read it)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """SPEC §6 / issue 11: `admin` everything; `collector` plans, tasks, manual actions,
    customers, configuration read-only; `viewer` read-only."""

    admin = "admin"
    collector = "collector"
    viewer = "viewer"


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


__all__ = ["ROLES_WITH", "Right", "Role", "allowed"]
