"""Who may do what (issue 11): each route declares the right it needs with `requires(...)`,
and the table in recoup.core.roles (shared with the back office, recoup.web) says which roles
hold it. tests/api/test_roles.py walks every route of the app against every role, so a route
without a declared right cannot be added."""

from __future__ import annotations

from recoup.core.roles import ROLES_WITH, Right, allowed

__all__ = ["ROLES_WITH", "Right", "allowed"]
