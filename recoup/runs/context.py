"""What a run carries through its parts: its counts (`RunStats`, what the faces print), the
progress callbacks a face turns into a bar, and the context of one run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from recoup.runs.units import Deciding


@dataclass
class RunStats:
    run_id: int = 0
    as_of: date | None = None
    considered: int = 0
    reminders: int = 0
    plans_opened: int = 0
    plans_advanced: int = 0
    plans_recovered: int = 0
    plans_unrecovered: int = 0
    levels_skipped: int = 0
    actions_queued: int = 0
    tasks_created: int = 0
    actions_done: int = 0
    actions_failed: int = 0
    actions_skipped: int = 0
    actions_retried: int = 0
    actions_postponed: int = 0  # not tried: their channel's server was down
    actions_held: int = 0  # still being executed by another live worker when the run ended
    executed: bool = True
    # channels whose server was down: channel, reason, error, retry_at, instances
    channels_down: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if type(v) is int and k != "run_id"}

    def counts_since(self, before: dict[str, int]) -> dict[str, int]:
        return {k: v - before.get(k, 0) for k, v in self.counts().items()}

    def add(self, delta: dict[str, int]) -> None:
        for key, value in delta.items():
            setattr(self, key, getattr(self, key) + value)

    def restore(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in vars(self).items()}


@dataclass
class Progress:
    """Callbacks a face turns into a progress bar."""

    start: Callable[[str, int], None] = lambda label, total: None
    advance: Callable[[int], None] = lambda n: None


@dataclass(kw_only=True)
class RunContext(Deciding):
    """One run: what deciding needs, and what applying the decisions adds (the policies' row
    ids, the run's id and actor, its counts)."""

    policy_ids: dict[str, int]
    run_id: int
    actor: str
    stats: RunStats
    next_plan_id: int | None = None  # SQLite: the next free plan id (see Batch._plan_ids)
