"""Closing plans: recovered on payment (R8, with R12 restore), unrecovered at the end (R7),
stopped by hand (R10). Services flush; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from recoup.core.clock import utc_now
from recoup.core.db import table_of
from recoup.domain.enums import (
    OPEN_PLAN_VALUES,
    Event,
    InstanceStatus,
    InvoiceStatus,
    Mode,
    PlanStatus,
    TaskStatus,
)
from recoup.domain.evaluator import InvoiceFacts, customer_balance
from recoup.domain.policy import Settings
from recoup.log.service import log_for_plan
from recoup.models import (
    Plan,
    SettingsRow,
    StatusChange,
)
from recoup.plans import repository
from recoup.settings.service import get_settings
from recoup.tasks import repository as task_repository


def cancel_pending_work(
    session: Session, plan: Plan, *, on: date, actor: str | None, reason: str
) -> None:
    """Cancel the plan's unfinished action instances and open tasks, each logged."""
    now = utc_now()
    # FOR UPDATE: an instance a worker is executing is locked until it is done; waiting for it
    # and re-reading its status keeps a finished one finished (an email sent stays `done`)
    instances = repository.unfinished_instances_locked(session, plan.id)
    for instance in instances:
        instance.status = InstanceStatus.cancelled
        instance.error = reason
        instance.finished_at = now
        instance.lease_until = None
        log_for_plan(
            session,
            Event.action_cancelled,
            plan,
            on=on,
            actor=actor,
            level=instance.level,
            action=instance.action,
            reason=reason,
        )
    for task in task_repository.open_of_plan(session, plan.id):
        task.status = TaskStatus.cancelled
        task.outcome = reason
        task.completed_at = now
        log_for_plan(
            session,
            Event.task_cancelled,
            plan,
            on=on,
            actor=actor,
            level=task.level,
            action=task.action,
            task_id=task.id,
            reason=reason,
        )


def restore_account_status(session: Session, plan: Plan, *, on: date, actor: str | None) -> None:
    """R12: give back the status this plan changed, unless another open plan also changed it."""
    changes = repository.unrestored_status_changes(session, plan.id)
    if not changes:
        return
    now = utc_now()
    for change in changes:
        change.restored_at = now
    other_open = repository.other_open_status_change(session, plan)
    customer = repository.customer_of(session, plan)
    assert customer is not None
    previous = changes[0].previous_status  # the status before this plan touched it
    if other_open is not None:
        log_for_plan(
            session,
            Event.action_skipped,
            plan,
            on=on,
            actor=actor,
            reason="status not restored: another open plan also changed it",
            status=customer.status,
        )
        # hand the memory of the original status to the plan that still holds it
        session.execute(
            update(StatusChange)
            .where(StatusChange.id == other_open)
            .values(previous_status=previous)
        )
        return
    current = customer.status
    if current == previous:
        return  # the plan's change was a no-op (the status was already set)
    customer.status = previous
    log_for_plan(
        session,
        Event.status_restored,
        plan,
        on=on,
        actor=actor,
        previous=current,
        status=previous,
    )


def close_plan(
    session: Session,
    plan: Plan,
    status: PlanStatus,
    *,
    on: date,
    actor: str | None = None,
    reason: str | None = None,
) -> None:
    if not plan.is_open:
        return
    event = {
        PlanStatus.recovered: Event.plan_recovered,
        PlanStatus.unrecovered: Event.plan_unrecovered,
        PlanStatus.stopped: Event.plan_stopped,
    }[status]
    # a plan never closes before it opened (a person's date, a payment dated before it)
    on = max(on, plan.opened_on) if plan.opened_on is not None else on
    cancel_pending_work(session, plan, on=on, actor=actor, reason=reason or status.value)
    if status is PlanStatus.recovered:
        restore_account_status(session, plan, on=on, actor=actor)
    if plan.status == PlanStatus.paused and plan.paused_on is not None:
        plan.paused_days += max(0, (on - plan.paused_on).days)
    plan.status = status
    plan.closed_on = on
    plan.open_key = None
    plan.next_step_on = None
    if status is PlanStatus.stopped:
        plan.stop_reason = reason
    log_for_plan(
        session,
        event,
        plan,
        on=on,
        actor=actor,
        balance=plan.balance,
        currency=plan.currency,
        reason=reason,
    )
    session.flush()


def domain_settings(row: SettingsRow) -> Settings:
    """The settings the balance rule reads, without loading the whole configuration."""
    return Settings(
        mode=Mode(row.mode),
        invoice_types=tuple(row.invoice_types or ()),
        customer_balance=(
            tuple(row.customer_balance) if row.customer_balance is not None else None
        ),
    )


def customer_plan_balance(
    session: Session, plan: Plan, settings: SettingsRow, today: date
) -> Decimal:
    """Customer mode (R4): the balance `customer_balance` defines, over the invoices of the
    plan's customer and currency that no other plan covers (the run's view of the plan)."""
    rows = repository.open_invoices_of_account(session, plan.customer_id, plan.currency)
    invoices = []
    joined = set()
    for invoice_id, due_date, currency, amount_due, type_, status, disputed, plan_id in rows:
        if plan_id is not None and plan_id != plan.id:
            continue  # another plan's debt
        if plan_id == plan.id:
            joined.add(invoice_id)
        invoices.append(
            InvoiceFacts(
                invoice_id, due_date, currency, amount_due, type_, InvoiceStatus(status), disputed
            )
        )
    return customer_balance(
        invoices,
        domain_settings(settings),
        today,
        joined=frozenset(joined),
        final=not plan.is_open,
    )


def _is_recovered(
    session: Session, plan: Plan, on: date, *, known: Mapping[str, Decimal] | None = None
) -> bool:
    """Set the plan's balance from its invoices as of `on`; True when R8 closes it. `known`:
    by invoice, the balance its invoice-mode plan has, where the caller knows it."""
    if plan.invoice_id is not None:
        if known is not None and plan.invoice_id in known:
            plan.balance = known[plan.invoice_id]
        else:
            invoice = repository.invoice(session, plan.invoice_id)
            assert invoice is not None
            plan.balance = own_balance(invoice.amount_due, invoice.is_open)
        return plan.balance <= 0
    plan.balance = customer_plan_balance(session, plan, get_settings(session), on)
    policy = repository.policy_of(session, plan)
    threshold = Decimal((policy.min_balance or {}).get(plan.currency, "0")) if policy else 0
    return plan.balance <= 0 or plan.balance < threshold


def own_balance(amount_due: Decimal, is_open: bool) -> Decimal:
    """What an invoice-mode plan owes: its invoice's amount due while the invoice is open."""
    return amount_due if is_open else Decimal(0)


def refresh_plans_after_change(
    session: Session, invoice_ids: list[str], *, on: date, actor: str | None = None
) -> list[Plan]:
    """R8: after payments (or re-imported invoices), update the balance of every open plan that
    covers these invoices and close as `recovered` those whose debt is gone; a plan closed
    `unrecovered` whose debt is now paid moves to `recovered` too. `on` is the business date of
    the change (a payment's date): the customer-mode balance counts the invoices due by then
    (R4). Returns the plans recovered."""
    if not invoice_ids:
        return []
    plans: dict[int, Plan] = {}
    for plan in repository.open_for_invoices(session, invoice_ids):
        plans[plan.id] = plan
    # loaded (not only their accounts): each invoice-mode plan's balance is read from its own
    invoices = repository.invoices(session, invoice_ids)
    pairs = {(inv.customer_id, inv.currency) for inv in invoices}
    for plan in repository.open_for_customers(session, pairs):
        plans[plan.id] = plan
    closed: list[Plan] = []
    for plan in sorted(plans.values(), key=lambda p: p.id):
        if _is_recovered(session, plan, on):
            close_plan(session, plan, PlanStatus.recovered, on=on, actor=actor, reason="paid")
            closed.append(plan)
    # R8: a debt paid after its plan ended at the last level
    for plan in repository.ended_unrecovered_for_invoices(session, invoice_ids):
        if _is_recovered(session, plan, on):
            recover_after_end(session, plan, on=on, actor=actor)
            closed.append(plan)
    session.flush()
    return closed


def refresh_plans_of_invoices(
    session: Session,
    balances: Mapping[str, Decimal],
    customer_id: str,
    currency: str,
    *,
    on: date,
    actor: str | None = None,
) -> list[Plan]:
    """refresh_plans_after_change of invoices of one customer and currency whose debt the
    caller has just changed (one payment): `balances`, by invoice, own_balance of it as
    written. The same plans settled in the same order, with the same effects and log
    entries, found in one query. A plan of one invoice alone that stays open (a partial
    payment, the common case) is only given its new balance, without being loaded; every
    other goes the ORM way above."""
    rows = repository.over_invoices(session, sorted(balances), customer_id, currency)
    if not rows:
        return []
    opened = sorted({r.id for r in rows if r.status in OPEN_PLAN_VALUES})
    ended = sorted({r.id for r in rows if r.status == PlanStatus.unrecovered.value})
    stays = {
        r.id: (r.balance, balances[r.invoice_id])
        for r in rows
        if r.invoice_id in balances
        and r.status in OPEN_PLAN_VALUES
        and balances[r.invoice_id] > 0
        and not repository.is_loaded(session, r.id)  # a loaded plan's state is the one to use
    }
    closed: list[Plan] = []
    for plan_id in opened:
        if plan_id in stays:
            was, balance = stays[plan_id]
            if was != balance:  # as the ORM writes a changed value only
                set_balance(session, plan_id, balance)
            continue
        plan = repository.find_bare(session, plan_id)
        assert plan is not None
        if _is_recovered(session, plan, on, known=balances):
            close_plan(session, plan, PlanStatus.recovered, on=on, actor=actor, reason="paid")
            closed.append(plan)
    for plan_id in ended:
        plan = repository.find_bare(session, plan_id)
        assert plan is not None
        if _is_recovered(session, plan, on, known=balances):
            recover_after_end(session, plan, on=on, actor=actor)
            closed.append(plan)
    session.flush()
    return closed


_PLANS = table_of(Plan)
_SET_BALANCE = (
    update(_PLANS)
    .where(_PLANS.c.id == bindparam("plan_id"))
    .values(balance=bindparam("new_balance"))
)


def set_balance(session: Session, plan_id: int, balance: Decimal) -> None:
    """An open plan's new balance, written without loading it (`updated_at` follows)."""
    session.execute(_SET_BALANCE, {"plan_id": plan_id, "new_balance": balance})


def recover_after_end(session: Session, plan: Plan, *, on: date, actor: str | None) -> None:
    """R8: an `unrecovered` plan whose debt was paid moves to `recovered` (the one move out
    of a final status) and gives back the account statuses it changed (R12)."""
    ended_on = plan.closed_on
    day = max(on, ended_on) if ended_on is not None else on
    restore_account_status(session, plan, on=day, actor=actor)
    plan.status = PlanStatus.recovered
    plan.closed_on = day
    log_for_plan(
        session,
        Event.plan_recovered,
        plan,
        on=day,
        actor=actor,
        balance=plan.balance,
        currency=plan.currency,
        reason="paid",
        after_end=True,
        unrecovered_on=ended_on,
    )
    session.flush()


def maybe_close_unrecovered(session: Session, plan: Plan, *, on: date) -> bool:
    """R7: at the end level, once every action and task there is finished, the plan closes
    `unrecovered` if the balance is still due."""
    if plan.status != PlanStatus.active or plan.level is None:
        return False
    policy = repository.policy_of(session, plan)
    if policy is None:
        return False
    end_codes = {lvl.code for lvl in policy.levels if lvl.end}
    if plan.level not in end_codes:
        return False
    if has_pending_work(session, plan.id):
        return False
    if plan.balance <= 0:
        return False
    close_plan(session, plan, PlanStatus.unrecovered, on=on, reason="end level reached")
    return True


def has_pending_work(session: Session, plan_id: int) -> bool:
    return repository.has_unfinished_instance(session, plan_id) or task_repository.has_open(
        session, plan_id
    )


__all__ = [
    "cancel_pending_work",
    "close_plan",
    "customer_plan_balance",
    "has_pending_work",
    "domain_settings",
    "maybe_close_unrecovered",
    "own_balance",
    "recover_after_end",
    "refresh_plans_after_change",
    "refresh_plans_of_invoices",
    "restore_account_status",
    "set_balance",
]
