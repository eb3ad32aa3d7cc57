"""The log as every face shows it (SPEC §5 field names, in the CLI's `--json` order)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import PlainSerializer

from recoup.core.schemas import Schema

# A timezone-aware timestamp written as `datetime.isoformat()` (`…+00:00`), as the CLI's
# `--json` always has; pydantic's own JSON form would end in `Z`. (Shared by the read schemas
# of the features above the log; its place is recoup.core.schemas.)
Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]


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


__all__ = ["LogEntryRead", "Timestamp"]
