"""The one place the wall clock is read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utc_now() -> datetime:
    return datetime.now(UTC)


def today_in(timezone: str) -> date:
    return utc_now().astimezone(ZoneInfo(timezone)).date()
