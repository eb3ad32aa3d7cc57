"""Applying a chunk's decisions: the evaluator's decisions turned into rows (`Batch.build`,
where the chunk is decided), then written in bulk in the chunk's transaction
(`Batch.lock_invoices`, `Batch.flush`), and what a change committed in between needs
(`settle_changed`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from recoup.core.bulk import (
    TupleFormat,
    bulk_delete,
    bulk_insert,
    bulk_update,
    json_text,
    reserve_ids,
)
from recoup.core.clock import utc_now
from recoup.core.db import hold_write_lock
from recoup.domain.enums import (
    PROMISE_PAUSE_REASON,
    Event,
    InstanceStatus,
    Mode,
    PlanStatus,
    TaskStatus,
)
from recoup.domain.evaluator import (
    ClosePlan,
    JoinInvoices,
    OpenPlan,
    Outcome,
    QueueReminder,
    ReachLevel,
    ResumePlan,
    SkipLevel,
    SkipReminder,
    Unit,
    UpdatePlan,
)
from recoup.domain.policy import Level, Policy
from recoup.models import ActionInstance, Invoice, InvoiceCheck, LogEntry, Plan, PlanInvoice, Task
from recoup.plans.closing import close_plan, refresh_plans_after_change
from recoup.plans.promise import PromiseCheck, promises_due
from recoup.runs.context import RunContext
from recoup.runs.units import FACT_STAMP, InvoiceRec, Item, PlanRec, among
from recoup.schedule.service import recheck_invoices

logger = logging.getLogger(__name__)

LOG_COLUMNS = (
    "at",
    "on",
    "event",
    "actor",
    "customer_id",
    "invoice_id",
    "plan_id",
    "level",
    "action",
    "run_id",
    "details",
)
INSTANCE_COLUMNS = (
    "key",
    "plan_id",
    "invoice_id",
    "customer_id",
    "policy_id",
    "level",
    "action",
    "type",
    "attempts",
    "due_on",
    "created_at",
    "status",
    "next_attempt_at",
    "error",
    "finished_at",
)
# a new plan's row: the columns set once, then its state (what an update writes)
PLAN_FIXED_COLUMNS = (
    "id",
    "customer_id",
    "invoice_id",
    "currency",
    "mode",
    "policy_id",
    "open_key",
    "opened_on",
    "created_at",
)
PLAN_UPDATE_COLUMNS = (
    "status",
    "level",
    "balance",
    "anchor_date",
    "paused_days",
    "paused_on",
    "pause_until",
    "pause_reason",
    "next_step_on",
    "updated_at",
)
PLAN_INSERT_COLUMNS = PLAN_FIXED_COLUMNS + PLAN_UPDATE_COLUMNS


LOCK_TRIES = 200  # 50 ms apart: 10 s before waiting with some locks held
LOCK_NOT_AVAILABLE = "55P03"


def share_locked(session: Session, query: Any, run_id: int) -> Sequence[Any]:
    """PostgreSQL: the rows of `query`, FOR SHARE (it blocks their updates until the chunk
    commits), all at once or none: waiting for one while holding others could deadlock with
    an import updating the same invoices in another order. A writer holding some of them
    commits soon; the locks are tried again."""
    for attempt in range(LOCK_TRIES):
        try:
            with session.begin_nested():
                return (
                    session.connection()
                    .execute(query.with_for_update(read=True, nowait=True))
                    .all()
                )
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            if attempt == 0:
                logger.info("run %s: a chunk's invoices are being changed; waiting", run_id)
            time.sleep(0.05)
    logger.info("run %s: a chunk's invoices still changing after 10 s; waiting on them", run_id)
    return session.connection().execute(query.with_for_update(read=True)).all()


def settle_changed(session: Session, ctx: RunContext, invoice_ids: list[str]) -> int:
    """Invoices that changed after their chunk was decided (a payment, an import or a dispute
    committed in between): the chunk's rows are written as decided, then what the change
    would have done to them, had it come after the write, is done here, in the same
    transaction: plans whose debt is gone close `recovered` (R8) and the invoices are looked
    at again. Returns the plans recovered."""
    logger.info(
        "run %s: %d invoice(s) changed while their chunk was decided (%s): their plans are "
        "settled again (rule R8 in docs/rules.md) and they are checked again",
        ctx.run_id,
        len(invoice_ids),
        ", ".join(invoice_ids[:5]) + (", ..." if len(invoice_ids) > 5 else ""),
    )
    recovered = refresh_plans_after_change(session, invoice_ids, on=ctx.as_of, actor=ctx.actor)
    recheck_invoices(session, invoice_ids)
    session.flush()
    return len(recovered)


class Batch:
    """A chunk's decisions turned into rows (`build`, while the previous chunk is written),
    then written in bulk in the chunk's transaction (`flush`)."""

    def __init__(self, ctx: RunContext, dialect: str) -> None:
        self.ctx = ctx
        self.dialect = dialect
        self.stats_delta: dict[str, int] = {}
        # the facts (FACT_COLUMNS) of every invoice the chunk was decided on
        self.seen: list[tuple[Any, ...]] = []
        self.logs: list[tuple[Any, ...]] = []
        self.instances: list[tuple[Any, ...]] = []
        self._formats()
        # plans reaching a final status: closed through the ORM once the rows are written
        self.closings: list[tuple[int, ClosePlan]] = []
        self.manual_keys: dict[str, dict[str, Any]] = {}
        # invoices whose check row goes (cleared or replaced), and the new rows
        self.checks_gone: list[str] = []
        self.checks_new: list[dict[str, Any]] = []
        self.plan_invoices: list[dict[str, Any]] = []
        # new plans: their insert-only columns until `build` ends, then whole rows
        self.new_plans: list[tuple[tuple[Any, ...], PlanRec]] = []
        # promises to pay whose date has come (R10): how each stands, and the plans whose
        # promise ends with this chunk
        self.promises: dict[int, PromiseCheck] = {}
        self.promises_ended: list[int] = []
        self.plan_rows: list[tuple[Any, ...]] = []
        self.dirty_plans: dict[int, PlanRec] = {}
        self.plan_updates: list[dict[str, Any]] = []
        self.now = utc_now()
        # constants in the driver's format, computed once per chunk
        self.now_db = self.log_format.value("at", self.now)
        self.today_db = self.log_format.value("on", ctx.as_of)

    def _formats(self) -> None:
        self.log_format = TupleFormat(self.dialect, LogEntry.__table__, LOG_COLUMNS)
        self.instance_format = TupleFormat(self.dialect, ActionInstance.__table__, INSTANCE_COLUMNS)
        self.plan_format = TupleFormat(self.dialect, Plan.__table__, PLAN_INSERT_COLUMNS)

    def __getstate__(self) -> dict[str, Any]:
        # sent to the writing process without the run's context and table formats
        state = dict(vars(self))
        for name in ("ctx", "log_format", "instance_format", "plan_format"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._formats()

    def attach(self, ctx: RunContext) -> None:
        """In the writing process: the run's context (the decider's counts are added once
        the chunk is committed)."""
        self.ctx = ctx

    def build(self, session: Session, items: list[Item]) -> None:
        """Give the chunk's new plans their ids (they key the actions), then apply."""
        openings = [
            (index, decision)
            for index, (_u, outcome, *_rest) in enumerate(items)
            for decision in outcome.decisions
            if isinstance(decision, OpenPlan)
        ]
        ids = self._plan_ids(session, len(openings))
        opened: dict[int, PlanRec] = {}
        for (index, decision), plan_id in zip(openings, ids, strict=True):
            unit, _outcome, _plan, customer_id, invoices, _stale = items[index]
            opened[index] = self._new_plan(plan_id, unit, decision, customer_id, invoices)
        as_of = self.ctx.as_of
        promised = [
            plan.id
            for item in items
            if (plan := item[2]) is not None
            and plan.pause_reason == PROMISE_PAUSE_REASON
            and plan.pause_until is not None
            and plan.pause_until <= as_of
        ]
        if promised:  # rare: one query for the chunk's promises that came due
            self.promises = promises_due(session, promised)
        seen = self.seen
        for index, (unit, outcome, plan, customer_id, invoices, stale) in enumerate(items):
            self.apply(unit, outcome, opened.get(index, plan), customer_id, invoices, stale)
            seen.extend((inv.id, inv.stamp) for inv in invoices)
            seen.extend((inv.id, inv.stamp) for inv in stale)
        self._plan_rows()
        self.promises = {}  # used by apply only; not sent to the writing process

    def _plan_rows(self) -> None:
        """The plans' rows as the driver stores them: new plans with their final state (they
        need no update), changed plans as updates. Built here, where the chunk is decided, so
        that plain tuples and dicts cross to the writing process (pickling the records costs
        more than building the rows)."""
        converters = [self.plan_format.value_converter(name) for name in PLAN_UPDATE_COLUMNS]
        for fixed, rec in self.new_plans:
            self.dirty_plans.pop(rec.id, None)
            state = [getattr(rec, name) for name in PLAN_UPDATE_COLUMNS[:-1]]
            state.append(self.now)
            converted = [convert(v) for convert, v in zip(converters, state, strict=True)]
            self.plan_rows.append((*fixed, *converted))
        self.new_plans = []
        self.plan_updates = [
            {"id": rec.id, "updated_at": self.now}
            | {name: getattr(rec, name) for name in PLAN_UPDATE_COLUMNS[:-1]}
            for rec in self.dirty_plans.values()
        ]
        self.dirty_plans = {}

    def _plan_ids(self, session: Session, count: int) -> list[int]:
        """Ids for new plans. PostgreSQL: from the sequence. SQLite: counted on from the
        largest id, read once per run, because the previous chunk may not be committed yet
        when this one is decided; only the run, which holds the run lock, creates plans."""
        ctx = self.ctx
        if count == 0 or self.dialect == "postgresql":
            return reserve_ids(session, Plan.__table__, count)
        if ctx.next_plan_id is None:
            ctx.next_plan_id = reserve_ids(session, Plan.__table__, 1)[0]
        first = ctx.next_plan_id
        ctx.next_plan_id += count
        return list(range(first, first + count))

    def _new_plan(
        self,
        plan_id: int,
        unit: Unit,
        decision: OpenPlan,
        customer_id: str,
        invoices: Sequence[InvoiceRec],
    ) -> PlanRec:
        assert unit.policy is not None
        invoice_mode = unit.settings.mode is Mode.invoice
        invoice_id = invoices[0].id if invoice_mode else None
        # PLAN_FIXED_COLUMNS; the state columns are the record's final state, added by
        # _plan_rows
        fixed = (
            plan_id,
            customer_id,
            invoice_id,
            unit.currency,
            unit.settings.mode.value,
            self.ctx.policy_ids[unit.policy.name],
            f"inv:{invoice_id}" if invoice_mode else f"cust:{customer_id}:{unit.currency}",
            self.today_db,
            self.now_db,
        )
        rec = PlanRec(
            plan_id,
            customer_id,
            invoice_id,
            unit.currency,
            PlanStatus.active.value,
            None,
            decision.balance,
            decision.anchor_date,
            0,
            None,
            None,
            None,
            None,
        )
        self.new_plans.append((fixed, rec))
        return rec

    def _log(
        self,
        event: Event,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        plan_id: int | None = None,
        level: str | None = None,
        action: str | None = None,
        **details: Any,
    ) -> None:
        """A log row built directly (the hot path): callers pass JSON-ready details."""
        self.logs.append(
            (
                self.now_db,
                self.today_db,
                event.value,
                self.ctx.actor,
                customer_id,
                invoice_id,
                plan_id,
                level,
                action,
                self.ctx.run_id,
                json_text(details),
            )
        )

    def _queue_level(
        self,
        *,
        key_prefix: str,
        level: Level,
        policy: Policy,
        customer_id: str,
        plan_id: int | None,
        invoice_id: str | None,
        run_actions: bool,
        reason: str | None = None,
    ) -> list[str]:
        """Queue (or record as skipped) the level's actions; returns their codes. The level's
        log entry lists them, so a step costs one log row, not one per action."""
        queued: list[str] = []
        policy_id = self.ctx.policy_ids[policy.name]
        for code in level.actions:
            action = self.ctx.actions.get(code)
            if action is None:
                continue
            key = f"{key_prefix}:{level.code}:{code}"
            queued.append(code)
            status = InstanceStatus.pending.value
            next_attempt: Any = self.now_db
            error = finished = None
            if not run_actions:
                status, next_attempt, error, finished = (
                    InstanceStatus.skipped.value,
                    None,
                    reason,
                    self.now_db,
                )
                self.ctx.stats.actions_skipped += 1
            elif action.is_manual:
                next_attempt = None  # for people, not machines
                self.manual_keys[key] = {
                    "role": action.role or "collector",
                    "instructions": action.instructions,
                    "plan_id": plan_id,
                    "level": level.code,
                    "action": code,
                    "customer_id": customer_id,
                    "invoice_id": invoice_id,
                }
                self.ctx.stats.actions_queued += 1
            else:
                self.ctx.stats.actions_queued += 1
            self.instances.append(
                (
                    key,
                    plan_id,
                    invoice_id,
                    customer_id,
                    policy_id,
                    level.code,
                    code,
                    action.type.value,
                    0,
                    self.today_db,
                    self.now_db,
                    status,
                    next_attempt,
                    error,
                    finished,
                )
            )
        return queued

    def apply(
        self,
        unit: Unit,
        outcome: Outcome,
        plan: PlanRec | None,
        customer_id: str,
        invoices: Sequence[InvoiceRec],
        stale: Iterable[InvoiceRec] = (),
    ) -> None:
        ctx = self.ctx
        policy = unit.policy
        invoice_mode = unit.settings.mode is Mode.invoice
        invoice_id = invoices[0].id if invoice_mode and invoices else None
        for inv in invoices:
            nxt = outcome.invoice_next_check.get(inv.id)
            if inv.next_check_on != nxt:
                self._check(inv, nxt)
        for inv in stale:
            if inv.next_check_on is not None:
                self._check(inv, None)
        if not outcome.decisions and plan is None:
            return
        assert policy is not None or not outcome.decisions
        plan_updates: dict[str, Any] = {}
        opening = next((d for d in outcome.decisions if isinstance(d, OpenPlan)), None)
        # A plan opening today records in its own log entry the reminders and levels it passed
        # over (one log row per new plan instead of up to four on a first run over a book).
        folded: list[dict[str, str]] = []
        levels_passed: list[dict[str, Any]] = []
        if opening is not None:
            levels_passed = [
                {"level": d.level.code, "reason": d.reason, "actions": list(d.level.actions)}
                for d in outcome.decisions
                if isinstance(d, SkipLevel)
            ]
        for decision in outcome.decisions:
            assert policy is not None
            if isinstance(decision, QueueReminder):
                ctx.stats.reminders += 1
                actions = self._queue_level(
                    key_prefix=f"inv:{decision.invoice_id}",
                    level=decision.level,
                    policy=policy,
                    customer_id=customer_id,
                    plan_id=None,
                    invoice_id=decision.invoice_id,
                    run_actions=True,
                )
                self._log(
                    Event.level_reached,
                    customer_id=customer_id,
                    invoice_id=decision.invoice_id,
                    level=decision.level.code,
                    reminder=True,
                    actions=actions,
                )
            elif isinstance(decision, SkipReminder):
                ctx.stats.levels_skipped += 1
                actions = list(decision.level.actions)
                if opening is not None:
                    # a plan opens for this debt today: its entry records the reminder skipped
                    # (one log row per new plan instead of two on a first run)
                    folded.append({"level": decision.level.code, "reason": decision.reason})
                    continue
                if plan is None:
                    # the record that keeps this reminder from being decided again; an
                    # invoice a plan covers never looks at its reminders again
                    actions = self._queue_level(
                        key_prefix=f"inv:{decision.invoice_id}",
                        level=decision.level,
                        policy=policy,
                        customer_id=customer_id,
                        plan_id=None,
                        invoice_id=decision.invoice_id,
                        run_actions=False,
                        reason=decision.reason,
                    )
                self._log(
                    Event.level_skipped,
                    customer_id=customer_id,
                    invoice_id=decision.invoice_id,
                    level=decision.level.code,
                    reason=decision.reason,
                    reminder=True,
                    actions=actions,
                )
            elif isinstance(decision, OpenPlan):
                assert plan is not None  # created in one batch by write()
                ctx.stats.plans_opened += 1
                if not invoice_mode:  # an invoice-mode plan covers its own invoice (links.py)
                    self.plan_invoices.extend(
                        {"plan_id": plan.id, "invoice_id": i, "joined_on": ctx.as_of}
                        for i in decision.invoice_ids
                    )
                self._log(
                    Event.plan_opened,
                    customer_id=customer_id,
                    invoice_id=invoice_id,
                    plan_id=plan.id,
                    policy=policy.name,
                    balance=str(decision.balance),
                    currency=unit.currency,
                    anchor_date=decision.anchor_date.isoformat(),
                    **({"reminders_skipped": folded} if folded else {}),
                    **({"levels_skipped": levels_passed} if levels_passed else {}),
                )
            elif isinstance(decision, JoinInvoices):
                assert plan is not None
                self.plan_invoices.extend(
                    {"plan_id": plan.id, "invoice_id": i, "joined_on": ctx.as_of}
                    for i in decision.invoice_ids
                )
                for i in decision.invoice_ids:
                    self._log(
                        Event.invoice_joined, customer_id=customer_id, invoice_id=i, plan_id=plan.id
                    )
            elif isinstance(decision, UpdatePlan):
                plan_updates.update(anchor_date=decision.anchor_date, balance=decision.balance)
            elif isinstance(decision, ResumePlan):
                assert plan is not None
                plan_updates.update(
                    status=PlanStatus.active.value,
                    paused_days=plan.paused_days + decision.paused_days,
                    paused_on=None,
                    pause_until=None,
                    pause_reason=None,
                )
                promise = self.promises.get(plan.id) if self.promises else None
                self._log(
                    Event.plan_resumed,
                    customer_id=customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    reason=decision.reason,
                    paused_days=decision.paused_days,
                    **({"promise": promise.details()} if promise is not None else {}),
                )
                if promise is not None:
                    self.promises_ended.append(plan.id)
                    if not promise.kept:  # R10: it escalates from the level where it stood
                        self._log(
                            Event.promise_broken,
                            customer_id=customer_id,
                            invoice_id=plan.invoice_id,
                            plan_id=plan.id,
                            level=plan.level,
                            **promise.details(),
                        )
            elif isinstance(decision, ReachLevel):
                assert plan is not None
                plan_updates["level"] = decision.level.code
                ctx.stats.plans_advanced += 1
                actions = self._queue_level(
                    key_prefix=f"plan:{plan.id}",
                    level=decision.level,
                    policy=policy,
                    customer_id=customer_id,
                    plan_id=plan.id,
                    invoice_id=plan.invoice_id,
                    run_actions=True,
                )
                self._log(
                    Event.level_reached,
                    customer_id=customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    level=decision.level.code,
                    days_overdue=decision.days_overdue,
                    actions=actions,
                )
            elif isinstance(decision, SkipLevel):
                assert plan is not None
                plan_updates["level"] = decision.level.code
                ctx.stats.levels_skipped += 1
                ctx.stats.actions_skipped += len(decision.level.actions)
                if opening is not None:
                    continue  # recorded in the plan_opened entry
                self._log(
                    Event.level_skipped,
                    customer_id=customer_id,
                    invoice_id=plan.invoice_id,
                    plan_id=plan.id,
                    level=decision.level.code,
                    reason=decision.reason,
                    actions=list(decision.level.actions),
                )
            elif isinstance(decision, ClosePlan):
                assert plan is not None
                self._apply_plan_updates(plan, plan_updates)
                self.closings.append((plan.id, decision))
                if decision.status is PlanStatus.recovered:
                    ctx.stats.plans_recovered += 1
                return
        if plan is not None:
            plan_updates["next_step_on"] = outcome.plan_next_step
            self._apply_plan_updates(plan, plan_updates)

    def _check(self, invoice: InvoiceRec, when: date | None) -> None:
        if invoice.next_check_on is not None:  # it has a row to replace or clear
            self.checks_gone.append(invoice.id)
        if when is not None:
            self.checks_new.append({"invoice_id": invoice.id, "check_on": when})

    def _apply_plan_updates(self, plan: PlanRec, updates: dict[str, Any]) -> None:
        for key, value in updates.items():
            if getattr(plan, key) != value:
                setattr(plan, key, value)
                self.dirty_plans[plan.id] = plan

    def lock_invoices(self, session: Session) -> list[str]:
        """First in the chunk's write transaction: lock the invoices the chunk was decided on
        and return those that changed since. A payment or import that commits before this
        is seen here; one that comes later waits for the chunk's commit (PostgreSQL: the row
        locks, in id order as a payment takes them; SQLite: the write lock) and then finds
        the chunk's plans to close."""
        if not self.seen:
            return []
        ids = [fact[0] for fact in self.seen]
        if self.dialect == "postgresql":
            query = select(Invoice.id, FACT_STAMP).where(among(session, Invoice.id, ids))
            rows = share_locked(session, query.order_by(Invoice.id), self.ctx.run_id)
        else:
            hold_write_lock(session)
            # the ids as one JSON parameter: binding thousands of them cost more than the read
            each = func.json_each(bindparam("ids", json_text(ids))).table_valued("value")
            query = select(Invoice.id, FACT_STAMP).where(Invoice.id.in_(select(each.c.value)))
            rows = session.connection().execute(query).all()
        now = dict(rows)
        seen, self.seen = self.seen, []
        return sorted(invoice_id for invoice_id, stamp in seen if now.get(invoice_id) != stamp)

    def flush(self, session: Session) -> None:
        if self.plan_rows:
            self.plan_format.insert(session, self.plan_rows)
            self.plan_rows = []
        if self.plan_updates:
            bulk_update(session, Plan.__table__, PLAN_UPDATE_COLUMNS, self.plan_updates)
            self.plan_updates = []
        if self.promises_ended:  # a promise ends with its pause
            session.execute(
                update(Plan)
                .where(Plan.id.in_(self.promises_ended))
                .values(promise_amount=None, promise_made_on=None)
            )
            self.promises_ended = []
        if self.plan_invoices:
            bulk_insert(session, PlanInvoice.__table__, self.plan_invoices)
            self.plan_invoices = []
        if self.instances:
            self.instance_format.insert(session, self.instances)
            self.instances = []
        if self.manual_keys:
            ids = dict(
                session.execute(
                    select(ActionInstance.key, ActionInstance.id).where(
                        ActionInstance.key.in_(list(self.manual_keys))
                    )
                ).all()
            )
            task_rows = []
            for key, info in self.manual_keys.items():
                task_rows.append(
                    {
                        "plan_id": info["plan_id"],
                        "action_instance_id": ids[key],
                        "level": info["level"],
                        "action": info["action"],
                        "role": info["role"],
                        "instructions": info["instructions"],
                        "status": TaskStatus.open.value,
                        "created_on": self.ctx.as_of,
                        "created_at": self.now,
                    }
                )
                self._log(
                    Event.task_created,
                    customer_id=info["customer_id"],
                    invoice_id=info["invoice_id"],
                    plan_id=info["plan_id"],
                    level=info["level"],
                    action=info["action"],
                    role=info["role"],
                )
                self.ctx.stats.tasks_created += 1
            bulk_insert(session, Task.__table__, task_rows)
            self.manual_keys = {}
        bulk_delete(session, InvoiceCheck.__table__.c.invoice_id, self.checks_gone)
        bulk_insert(session, InvoiceCheck.__table__, self.checks_new)
        self.checks_gone, self.checks_new = [], []
        if self.logs:
            self.log_format.insert(session, self.logs)
            self.logs = []
        for plan_id, decision in self.closings:  # after the plan's own rows and log entries
            row = session.get(Plan, plan_id)
            assert row is not None
            close_plan(
                session,
                row,
                decision.status,
                on=self.ctx.as_of,
                actor=self.ctx.actor,
                reason=decision.reason,
            )
        if self.closings:
            session.flush()
            self.closings = []
