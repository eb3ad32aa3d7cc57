"""Leases on action instances: the claim and takeover SQL (R13).

`claim_batch` leases due instances to a process's token, counting an attempt for each in the
claiming UPDATE, so a process that dies in the middle of an action still uses one up. Every
executing process holds a liveness lock named by its token (recoup.core.locks.holding): a
lease whose holder's lock is free is taken over at once, without waiting for it to expire
(`find_lost_holders`, `recover_lost`). The instance the dead process was executing has its
crash counted — after MAX_ATTEMPTS it is `failed`, with its collector task — and is executed
after the rest of its next batch; the others it had claimed were never started and go back
unblamed. `release_leases` hands back what a stopping process had not started;
`pause_channel` makes a channel whose server is down wait (recoup.actions.runner).

Instances of paused plans are not claimed: they stay `pending` with their `next_attempt_at`
and run on the first execution after the plan resumes, with nothing to re-arm. Manual
instances (`next_attempt_at` NULL) are never claimed: people do them through their task.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, exists, func, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.context import load_context
from recoup.actions.outcomes import ChannelDown, fail
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.core.errors import RecoupError
from recoup.core.locks import dead_holders
from recoup.domain.enums import Event, InstanceStatus, PlanStatus
from recoup.domain.retry import FailureKind, GiveUp, retry_decision
from recoup.log.service import log
from recoup.models import ActionInstance, Plan

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # RECOUP_LEASE_SECONDS overrides it (tests use a short one)


def lease_duration() -> timedelta:
    """How long a claim holds its instances: LEASE, or RECOUP_LEASE_SECONDS when set."""
    raw = os.environ.get("RECOUP_LEASE_SECONDS", "").strip()
    if not raw:
        return LEASE
    try:
        seconds = float(raw)
    except ValueError:
        raise RecoupError(f"RECOUP_LEASE_SECONDS: {raw!r} is not a number of seconds") from None
    if seconds <= 0:
        raise RecoupError(f"RECOUP_LEASE_SECONDS: {raw!r} must be positive")
    return timedelta(seconds=seconds)


def _due(now: datetime) -> Any:
    return and_(
        ActionInstance.status == InstanceStatus.pending.value,
        ActionInstance.next_attempt_at.is_not(None),
        ActionInstance.next_attempt_at <= now,
    )


def _not_paused() -> Any:
    return or_(
        ActionInstance.plan_id.is_(None),
        ~exists().where(Plan.id == ActionInstance.plan_id, Plan.status == PlanStatus.paused.value),
    )


def find_dead_holders(session: Session, *, token: str, now: datetime) -> set[str]:
    """The lease tokens of running instances whose process is gone (its liveness lock is
    free), leases still unexpired; `token` (this process) excluded."""
    tokens = session.scalars(
        select(ActionInstance.leased_by)
        .where(
            ActionInstance.status == InstanceStatus.running.value,
            ActionInstance.leased_by.is_not(None),
            ActionInstance.leased_by != token,
            ActionInstance.lease_until >= now,
        )
        .distinct()
    ).all()
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return dead_holders(engine, [t for t in tokens if t])


DIED = "died"


def find_lost_holders(session: Session, *, token: str, now: datetime) -> dict[str, str]:
    """Holders whose leases are to be taken over, with why: their process died, or it did
    not finish within its lease (hung)."""
    expired = session.scalars(
        select(ActionInstance.leased_by)
        .where(
            ActionInstance.status == InstanceStatus.running.value,
            ActionInstance.leased_by.is_not(None),
            ActionInstance.leased_by != token,
            ActionInstance.lease_until < now,
        )
        .distinct()
    ).all()
    lost = {t: "did not finish within its lease" for t in expired if t}
    lost.update((t, DIED) for t in find_dead_holders(session, token=token, now=now))
    return lost


def count_held(factory: sessionmaker[Session], *, now: datetime | None = None) -> int:
    """Instances still being executed by another live process (its lease unexpired, its
    liveness lock held)."""
    moment = now or utc_now()
    with factory() as session:
        dead = find_dead_holders(session, token="", now=moment)
        query = (
            select(func.count())
            .select_from(ActionInstance)
            .where(
                ActionInstance.status == InstanceStatus.running.value,
                ActionInstance.lease_until >= moment,
            )
        )
        if dead:
            query = query.where(ActionInstance.leased_by.not_in(sorted(dead)))
        return int(session.scalar(query) or 0)


def _suspects_last() -> Any:
    """The order a batch is executed in: instances that were executing when a process died
    come after the others, so a poison action cannot take the rest of its batch down."""
    return case((ActionInstance.crashes > 0, 1), else_=0)


def claim_batch(session: Session, *, token: str, now: datetime, size: int) -> list[int]:
    """Lease up to `size` due instances to `token`, counting an attempt for each; returns
    their ids in the order to execute them (`_suspects_last`). PostgreSQL skips rows another
    worker holds (row locks taken by the SELECT are kept until the claim commits, and a row
    another claim committed meanwhile is re-checked against `_due` when locked); SQLite has a
    single writer and the conditional UPDATE re-checks."""
    query = (
        select(ActionInstance.id)
        .where(_due(now), _not_paused())
        .order_by(ActionInstance.next_attempt_at, ActionInstance.id)
        .limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=ActionInstance)
    ids = list(session.scalars(query).all())
    if not ids:
        return []
    claimed = session.execute(
        update(ActionInstance)
        .where(ActionInstance.id.in_(ids), _due(now))
        .values(
            status=InstanceStatus.running.value,
            leased_by=token,
            lease_until=now + lease_duration(),
            attempts=ActionInstance.attempts + 1,
        )
        .returning(ActionInstance.id, ActionInstance.crashes)
        .execution_options(synchronize_session=False)
    ).all()
    return [row.id for row in sorted(claimed, key=lambda r: (r.crashes > 0, r.id))]


# An instance handed back unexecuted: pending again, its lease dropped and the attempt its
# claim counted given back.
HANDED_BACK: dict[str, Any] = {
    "status": InstanceStatus.pending.value,
    "leased_by": None,
    "lease_until": None,
    "attempts": ActionInstance.attempts - 1,
}


@dataclass
class Recovered:
    released: int = 0  # claimed by the lost holder but never started: due again
    retried: int = 0  # the one it was executing: pending again, its crash counted
    failed: int = 0  # the one it was executing, out of attempts: failed, with a task


def recover_lost(
    factory: sessionmaker[Session],
    lost: dict[str, str],
    *,
    env: EnvConfig,
    today: date,
    now: datetime,
    run_id: int | None = None,
) -> Recovered:
    """Take over the leases of holders that are gone (`find_lost_holders`), one transaction
    each. A holder executes its batch in a known order (`claim_batch`), one instance at a
    time: the first of its instances still running is the one it was executing when it died
    — its crash is counted (logged `action_retry`, or past MAX_ATTEMPTS `failed` with a
    collector task) — and the others were never started: they are handed back with their
    claim's attempt given back, due at once."""
    recovered = Recovered()
    for holder, why in sorted(lost.items()):
        with factory() as session, session.begin():
            mine = and_(
                ActionInstance.status == InstanceStatus.running.value,
                ActionInstance.leased_by == holder,
                # a live holder keeps what it holds until each lease runs out
                ActionInstance.lease_until < now if why != DIED else true(),
            )
            culprit = session.scalar(
                select(ActionInstance)
                .where(mine)
                .order_by(_suspects_last(), ActionInstance.id)
                .limit(1)
                .with_for_update()
            )
            if culprit is None or culprit.leased_by != holder:
                continue  # another worker took them over first
            unstarted = session.execute(
                update(ActionInstance)
                .where(mine, ActionInstance.id != culprit.id)
                .values(
                    **HANDED_BACK,
                )
                .execution_options(synchronize_session=False)
            )
            recovered.released += int(unstarted.rowcount or 0)
            culprit.crashes += 1
            error = f"the process executing it ({holder}) {why}"
            logger.warning(
                "action instance %s taken over: %s (%d other lease(s) handed back)",
                culprit.id,
                error,
                unstarted.rowcount or 0,
            )
            ctx = load_context(session, culprit, env=env, today=today, now=now, run_id=run_id)
            decision = retry_decision(culprit.attempts, FailureKind.crashed, now)
            if isinstance(decision, GiveUp):
                times = "once" if culprit.crashes == 1 else f"{culprit.crashes} times"
                fail(
                    ctx,
                    f"{error}; the process executing it died {times} "
                    f"in {culprit.attempts} attempt(s)",
                    GiveUp(f"the process executing it died {times}"),
                )
                recovered.failed += 1
                continue
            culprit.status = InstanceStatus.pending
            culprit.leased_by = None
            culprit.lease_until = None
            culprit.error = error
            culprit.next_attempt_at = now  # the others first (_suspects_last), then again
            log(
                session,
                Event.action_retry,
                **ctx.log_kwargs(),
                type=culprit.type,
                kind=FailureKind.crashed.value,
                error=error,
                attempt=culprit.attempts,
                crashes=culprit.crashes,
                next_attempt_at=now.isoformat(),
            )
            recovered.retried += 1
    return recovered


def release_leases(factory: sessionmaker[Session], ids: list[int], *, token: str) -> int:
    """Hand back instances leased to `token` and not started: due again at once, for any
    worker, their claim's attempt given back. Returns how many were released."""
    if not ids:
        return 0
    with factory() as session, session.begin():
        released = session.execute(
            update(ActionInstance)
            .where(
                ActionInstance.id.in_(ids),
                ActionInstance.leased_by == token,
                ActionInstance.status == InstanceStatus.running.value,
            )
            .values(
                **HANDED_BACK,
            )
            .execution_options(synchronize_session=False)
        )
        return int(released.rowcount or 0)


def pause_channel(
    factory: sessionmaker[Session],
    down: ChannelDown,
    *,
    token: str,
    unstarted: list[int],
    today: date,
    run_id: int | None,
) -> list[int]:
    """The channel's server is down: its other instances wait until `down.retry_at` — those
    of this batch not started (handed back, their attempt given back) and those due before
    then — as far into the outage as the one that failed (`transport_failures`), so they all
    give up together at the horizon. Logged once. Returns the ids of this batch handed back."""
    same = ActionInstance.type == down.action_type
    if down.action is not None:
        same = and_(same, ActionInstance.action == down.action)
    with factory() as session, session.begin():
        shared = down.transport_failures
        outage = case(
            (ActionInstance.transport_failures < shared, shared),
            else_=ActionInstance.transport_failures,
        )
        mine = (
            session.execute(
                update(ActionInstance)
                .where(
                    ActionInstance.id.in_(unstarted),
                    same,
                    ActionInstance.leased_by == token,
                    ActionInstance.status == InstanceStatus.running.value,
                )
                .values(
                    **HANDED_BACK,
                    next_attempt_at=down.retry_at,
                    transport_failures=outage,
                )
                .returning(ActionInstance.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        waiting = session.execute(
            update(ActionInstance)
            .where(
                same,
                ActionInstance.status == InstanceStatus.pending.value,
                ActionInstance.next_attempt_at.is_not(None),  # manual ones stay with people
                ActionInstance.next_attempt_at < down.retry_at,
            )
            .values(next_attempt_at=down.retry_at, transport_failures=outage)
            .execution_options(synchronize_session=False)
        )
        down.instances = 1 + len(mine) + int(waiting.rowcount or 0)
        logger.warning(
            "%s: %s; %d action(s) will be retried from %s",
            down.channel,
            down.error,
            down.instances,
            down.retry_at.isoformat(),
        )
        log(
            session,
            Event.channel_down,
            on=today,
            run_id=run_id,
            channel=down.channel,
            type=down.action_type,
            reason=down.reason,
            error=down.error,
            retry_at=down.retry_at.isoformat(),
            instances=down.instances,
        )
    return list(mine)


__all__ = [
    "DIED",
    "HANDED_BACK",
    "LEASE",
    "Recovered",
    "claim_batch",
    "count_held",
    "find_dead_holders",
    "find_lost_holders",
    "lease_duration",
    "pause_channel",
    "recover_lost",
    "release_leases",
]
