"""Aging: how long past due an amount is, in the buckets receivables reports use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bucket:
    key: str  # in JSON
    label: str  # in tables
    up_to: int | None  # the most days past due it holds; None: no limit


AGING_BUCKETS = (
    Bucket("current", "current", 0),  # not yet due, or due today
    Bucket("1_30", "1–30", 30),
    Bucket("31_60", "31–60", 60),
    Bucket("61_90", "61–90", 90),
    Bucket("over_90", "90+", None),
)


def aging_bucket(due_date: date, today: date) -> Bucket:
    overdue = (today - due_date).days
    for bucket in AGING_BUCKETS:
        if bucket.up_to is None or overdue <= bucket.up_to:
            return bucket
    raise AssertionError("the last bucket has no limit")
