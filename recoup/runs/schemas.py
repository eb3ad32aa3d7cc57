"""What the faces show of a run (SPEC §5 names: the fields `recoup runs --json` prints)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import model_validator

from recoup.core.schemas import Schema, Timestamp
from recoup.domain.money import round_money


class RunRead(Schema):
    """One run and how it ended. `status`: running, finished, failed, or interrupted (killed
    while it ran: marked running while no run holds the lock). The counts are what the run
    had committed; none for a run that ended before counting."""

    id: int
    as_of: date
    status: str
    execute: bool
    actor: str
    started_at: Timestamp
    finished_at: Timestamp | None
    considered: int | None
    plans_opened: int | None
    actions_queued: int | None
    actions_done: int | None
    actions_failed: int | None
    actions_postponed: int | None
    actions_held: int | None
    # channels whose server was down: channel, reason, error, retry_at, instances
    channels_down: list[dict[str, Any]]
    error: str | None


class RunCreate(Schema):
    """Start a run: for `as_of` (default: today in the settings' time zone; not before the
    latest finished run, not after tomorrow unless `future`, a simulation: R13); `execute`
    false only decides and queues, leaving the actions to `recoup worker`."""

    as_of: date | None = None
    execute: bool = True
    future: bool = False


class RunDetailRead(RunRead):
    """One run with its progress while it works (`phase`: Evaluating, then Executing actions;
    `units_done` of `units_total` in that phase) and, once it ends, its whole `summary`: the
    counts `recoup run` prints (invoices considered, reminders, plans opened, advanced,
    recovered, unrecovered, levels skipped, actions queued, done, failed, skipped, to retry,
    tasks created)."""

    phase: str | None
    units_done: int | None
    units_total: int | None
    summary: dict[str, int]


class ExplanationRead(Schema):
    """Why an invoice is (or is not) dunned on `as_of` and what the run would do that day
    (`recoup explain --json`): the policy and why it applies, days overdue, the plan, the
    run's steps (`today`), the reasons, and the next level with its date."""

    invoice_id: str
    customer_id: str
    as_of: date
    policy: str | None
    policy_reason: str
    days_overdue: int | None
    balance: Decimal
    currency: str
    plan_id: int | None
    plan_status: str | None
    level: str | None
    today: list[str]
    reasons: list[str]
    next_level: str | None
    next_on: date | None
    invoice_status: str

    @model_validator(mode="after")
    def _rounded(self) -> ExplanationRead:
        self.balance = round_money(self.balance, self.currency)
        return self
