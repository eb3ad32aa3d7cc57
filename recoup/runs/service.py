"""The daily dunning run: find the day's work (R15), evaluate it (pure), apply the decisions in
one transaction per chunk, then execute the queued actions (unless told not to).

`run_dunning` is the one entry: the faces (the CLI's `recoup run`, the demo, later the API)
call it. Its parts: `units` (the units of work and their loaders, shared with `explain`),
`pipeline` (the chunks decided in a forked process while the previous one is written),
`apply` (decisions turned into rows and written in bulk), `history` and `repository` (the
runs so far), `recoup.core.locks` (one run at a time)."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import time
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.claims import count_held
from recoup.actions.runner import execute_pending
from recoup.core.clock import today_in, utc_now
from recoup.core.env import EnvConfig
from recoup.core.errors import Conflict, InvalidInput
from recoup.core.locks import run_lock
from recoup.domain.enums import InstanceStatus, Mode, PlanStatus
from recoup.domain.redact import redact_text
from recoup.models import ActionInstance, Plan, PolicyRow, Run
from recoup.runs.context import Progress, RunContext, RunStats
from recoup.runs.pipeline import run_chunks
from recoup.runs.repository import latest_finished_run
from recoup.runs.units import find_units, load_domain_config
from recoup.settings.service import get_settings
from recoup.webhooks.service import has_endpoints, pump

CHUNK = 2000


class NoPolicies(InvalidInput):
    """A run with no policy to apply: a class of its own so that a face can add its own hint
    (the CLI names its command)."""


def run_dunning(
    factory: sessionmaker[Session],
    *,
    as_of: date,
    env: EnvConfig,
    execute: bool = True,
    actor: str = "system",
    progress: Progress | None = None,
    allow_future: bool = False,
    started: Callable[[int], None] | None = None,
) -> RunStats:
    """One run for the business date `as_of`. Safe to repeat and to restart after a crash:
    each chunk commits its decisions together with the markers that say they were made.
    `as_of` may not go back before the latest finished run, nor past tomorrow unless
    `allow_future` (a simulation) says so (R13). `started(run_id)` is called once the run's
    row is committed (the API answers with that id while the run goes on); the row's phase
    and units done of its total follow the progress as it goes."""
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    with run_lock(engine):
        stats = RunStats(as_of=as_of, executed=execute)
        with factory.begin() as session:
            config = load_domain_config(session)
            if not config.policies:
                raise NoPolicies("no policies configured yet")
            settings = get_settings(session)
            check_as_of(session, as_of, timezone=settings.timezone, allow_future=allow_future)
            run = Run(as_of=as_of, execute=execute, status="running", actor=actor)
            session.add(run)
            session.flush()
            stats.run_id = run.id
            rows = session.execute(select(PolicyRow.id, PolicyRow.name)).all()
            policy_ids = {name: pid for pid, name in rows}
            mode = Mode(settings.mode)
        if started is not None:
            started(stats.run_id)
        progress = RecordedProgress(factory, stats.run_id, progress or Progress())
        ctx = RunContext(
            as_of=as_of,
            config=config,
            policy_ids=policy_ids,
            actions={a.code: a for a in config.actions},
            run_id=stats.run_id,
            actor=actor,
            stats=stats,
        )
        try:
            return _run(factory, ctx, mode, env=env, execute=execute, progress=progress)
        except BaseException as exc:
            _record_run_failure(factory, stats, exc)
            raise


class RecordedProgress(Progress):
    """The face's progress, also written on the run's row: the phase at its start, the units
    done at most every PROGRESS_EVERY seconds (a chunk or an action each is too often on a
    fast day), in a short transaction of its own between the run's."""

    PROGRESS_EVERY = 0.5

    def __init__(self, factory: sessionmaker[Session], run_id: int, face: Progress) -> None:
        self._factory, self._run_id, self._face = factory, run_id, face
        self._phase: str | None = None
        self._done = self._total = 0
        self._written = 0.0
        super().__init__(start=self._start, advance=self._advance)

    def _start(self, label: str, total: int) -> None:
        self._face.start(label, total)
        self._phase, self._done, self._total = label, 0, total
        self.write()

    def _advance(self, n: int) -> None:
        self._face.advance(n)
        self._done += n
        if time.monotonic() - self._written >= self.PROGRESS_EVERY or self._done >= self._total:
            self.write()

    def write(self) -> None:
        with self._factory.begin() as session:
            session.execute(
                update(Run)
                .where(Run.id == self._run_id)
                .values(phase=self._phase, units_done=self._done, units_total=self._total)
            )
        self._written = time.monotonic()


def check_as_of(session: Session, as_of: date, *, timezone: str, allow_future: bool) -> None:
    """R13: a typo in the date must not run the book years ahead (suspending every account)
    nor replay the past over what later runs did."""
    latest = latest_finished_run(session)
    if latest is not None and as_of < latest.as_of:
        raise Conflict(
            f"as-of date {as_of} is earlier than {latest.as_of}, the date of run {latest.id} "
            "(finished): runs only move forward in time (rule R13 in docs/rules.md)",
            field="as_of",
        )
    tomorrow = today_in(timezone) + timedelta(days=1)
    if as_of > tomorrow and not allow_future:
        raise InvalidInput(
            f"as-of date {as_of} is after tomorrow ({tomorrow} in {timezone}): a run in the "
            "future is a simulation; pass {field} if that is what you mean "
            "(rule R13 in docs/rules.md)",
            field="future",
        )


def _record_run_failure(
    factory: sessionmaker[Session], stats: RunStats, error: BaseException
) -> None:
    """The run's row says how it ended, with what it had done (the chunks written are
    committed and stay done; the next run carries on from there)."""
    interrupted = isinstance(error, KeyboardInterrupt | SystemExit)
    with contextlib.suppress(Exception), factory.begin() as session:
        run = session.get(Run, stats.run_id)
        if run is not None:
            run.status = "interrupted" if interrupted else "failed"
            run.finished_at = utc_now()
            said = redact_text(str(error) or type(error).__name__)  # no URL credentials
            run.stats = stats.as_dict() | {"error": said}


def _run(
    factory: sessionmaker[Session],
    ctx: RunContext,
    mode: Mode,
    *,
    env: EnvConfig,
    execute: bool,
    progress: Progress,
) -> RunStats:
    stats, as_of = ctx.stats, ctx.as_of
    with factory() as session:
        units = find_units(session, as_of, mode)
    progress.start("Evaluating", len(units))
    size = int(os.environ.get("RECOUP_RUN_CHUNK", CHUNK))
    chunks = [units[start : start + size] for start in range(0, len(units), size)]
    # The chunk loop allocates millions of short-lived objects that reference counting
    # frees; the cyclic collector would rescan the growing heap again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        run_chunks(factory, ctx, mode, chunks, progress)
    finally:
        if gc_was_enabled:
            gc.enable()
    if execute:
        progress.start("Executing actions", _count_due(factory))
        result = execute_pending(
            factory,
            env=env,
            today=as_of,
            worker_id=f"run-{socket.gethostname()}-{os.getpid()}",
            on_progress=progress.advance,
        )
        stats.actions_done = result.done
        stats.actions_failed = result.failed
        stats.actions_skipped += result.skipped
        stats.actions_retried = result.retried
        stats.actions_postponed = result.postponed
        stats.channels_down = [down.as_dict() for down in result.channels_down.values()]
        stats.actions_held = count_held(factory)
        if has_endpoints(factory):  # webhooks out: deliver this run's events (SPEC §5)
            pump(factory, env=env)
    with factory.begin() as session:
        stats.plans_unrecovered = (
            session.scalar(
                select(func.count())
                .select_from(Plan)
                .where(Plan.status == PlanStatus.unrecovered.value, Plan.closed_on == as_of)
            )
            or 0
        )
        run = session.get(Run, stats.run_id)
        assert run is not None
        run.status = "finished"
        run.finished_at = utc_now()
        run.stats = stats.as_dict()
    return stats


def _count_due(factory: sessionmaker[Session]) -> int:
    """Action instances waiting for a machine (the executing phase's progress total)."""
    with factory() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(ActionInstance)
                .where(
                    ActionInstance.status == InstanceStatus.pending.value,
                    ActionInstance.next_attempt_at.is_not(None),
                )
            )
            or 0
        )
