"""The log as every face shows it (SPEC §5 field names, in the CLI's `--json` order)."""

from __future__ import annotations

from datetime import date
from typing import Any

from recoup.core.schemas import Schema, Timestamp


class LogEntryRead(Schema):
    at: Timestamp
    on: date | None
    event: str
    actor: str
    customer_id: str | None
    invoice_id: str | None
    plan_id: int | None
    level: str | None
    action: str | None
    details: dict[str, Any] | None


__all__ = ["LogEntryRead"]
