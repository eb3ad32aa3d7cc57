"""Executing action instances (SPEC §3): the framework, the executors, message rendering."""

from recoup.actions.framework import (
    MAX_ATTEMPTS,
    ExecutionStats,
    backoff,
    execute_pending,
)
from recoup.actions.render import Rendered, TemplateError, TemplateNotFound, render_template

__all__ = [
    "MAX_ATTEMPTS",
    "ExecutionStats",
    "Rendered",
    "TemplateError",
    "TemplateNotFound",
    "backoff",
    "execute_pending",
    "render_template",
]
