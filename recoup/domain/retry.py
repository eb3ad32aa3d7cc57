"""When to try a failed action instance again: a pure decision, applied by
`recoup.actions.outcomes` (procrastinate's `RetryStrategy.get_retry_decision`). No clock: `now`
and the jitter are given.

Four kinds of failure, each with its own budget:

- `permanent` — a refusal or a bad setting (a 5xx SMTP refusal, a 4xx HTTP answer, a broken
  template): retrying cannot fix it, give up at once.
- `transient` — anything unexpected: a few quick tries (1, 2, 4, 8 min), MAX_ATTEMPTS in all.
- `crashed` — the process executing it died (or hung past its lease): counted like a
  transient failure, so a poison action that kills its process every time ends `failed`.
- `transport` — the channel's server could not be reached or was busy (connection refused, a
  timeout, an SMTP 4xx, an HTTP 5xx): an outage, not a verdict on the message. These do not
  use up attempts; they back off over hours (1 min doubling, capped at 6 h, with jitter) and
  give up only after about TRANSPORT_HORIZON of waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(seconds=60)
BACKOFF_CAP = timedelta(hours=1)
TRANSPORT_BASE = timedelta(seconds=60)
TRANSPORT_CAP = timedelta(hours=6)
TRANSPORT_HORIZON = timedelta(hours=48)
JITTER = 0.1  # transport delays are spread by up to ±10 %, so a queue does not retry as one


class FailureKind(StrEnum):
    permanent = "permanent"
    transient = "transient"
    crashed = "crashed"
    transport = "transport"


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


RetryDecision = RetryAt | GiveUp


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after `attempts` failed ones: 1, 2, 4, 8 min… ≤ 1 h."""
    delay: timedelta = BACKOFF_BASE * (2 ** max(0, min(attempts, 30) - 1))
    return min(delay, BACKOFF_CAP)


def transport_backoff(failures: int) -> timedelta:
    """Delay after `failures` transport failures in a row, before jitter: 1, 2, 4 … min ≤ 6 h."""
    delay: timedelta = TRANSPORT_BASE * (2 ** max(0, min(failures, 30) - 1))
    return min(delay, TRANSPORT_CAP)


def transport_waited(failures: int) -> timedelta:
    """How long the server has been out, as counted by the delays waited between the first
    of `failures` transport failures and the last (jitter aside)."""
    return sum((transport_backoff(n) for n in range(1, failures)), timedelta(0))


def retry_decision(
    attempts: int,
    kind: FailureKind,
    now: datetime,
    *,
    transport_failures: int = 0,
    jitter: float = 0.0,
) -> RetryDecision:
    """`attempts`: the attempts used so far, this one included (transport failures excluded);
    `transport_failures`: the transport failures in a row, this one included; `jitter` in
    [-1, 1] scales the ±JITTER spread of a transport delay."""
    if kind is FailureKind.permanent:
        return GiveUp("refused: retrying cannot help")
    if kind is FailureKind.transport:
        waited = transport_waited(transport_failures)
        if waited >= TRANSPORT_HORIZON:
            hours = int(waited.total_seconds() // 3600)
            return GiveUp(f"the server was unreachable for {hours} h ({transport_failures} tries)")
        spread = max(-1.0, min(1.0, jitter)) * JITTER
        return RetryAt(now + transport_backoff(transport_failures) * (1 + spread))
    if attempts >= MAX_ATTEMPTS:
        return GiveUp(f"{attempts} attempts, the most allowed")
    return RetryAt(now + backoff(attempts))


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "JITTER",
    "MAX_ATTEMPTS",
    "TRANSPORT_BASE",
    "TRANSPORT_CAP",
    "TRANSPORT_HORIZON",
    "FailureKind",
    "GiveUp",
    "RetryAt",
    "RetryDecision",
    "backoff",
    "retry_decision",
    "transport_backoff",
    "transport_waited",
]
