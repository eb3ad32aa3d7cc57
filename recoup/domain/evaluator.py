"""The dunning engine's brain (R1-R15): state, policy and today in, decisions out.

Pure: no database, no clock. A *unit* is what one plan covers: an invoice (invoice mode) or a
(customer, currency) pair (customer mode). The run loads units, calls `evaluate`, and applies
the decisions; `explain` calls the same function and prints its reasons. Inputs and decisions
are immutable NamedTuples: the run builds several for every invoice of a large book, and a
NamedTuple costs a fraction of a frozen dataclass to create.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple

from recoup.domain.enums import (
    PROMISE_PAUSE_REASON,
    CatchUp,
    InvoiceStatus,
    Mode,
    PlanStatus,
    Transition,
)
from recoup.domain.money import ZERO
from recoup.domain.policy import Action, Level, Policy, Settings

OPEN_INVOICE_STATUSES = frozenset({InvoiceStatus.open, InvoiceStatus.partially_paid})


# --- inputs --------------------------------------------------------------------------------


class CustomerFacts(NamedTuple):
    id: str
    excluded: bool = False
    status: str = "active"


class InvoiceFacts(NamedTuple):
    id: str
    due_date: date
    currency: str
    amount_due: Decimal
    type: str = "commercial"
    status: InvoiceStatus = InvoiceStatus.open
    disputed: bool = False
    number: str = ""


class PlanState(NamedTuple):
    status: PlanStatus
    level: str | None
    anchor_date: date
    balance: Decimal
    paused_days: int = 0
    paused_on: date | None = None
    pause_until: date | None = None
    pause_reason: str | None = None
    open_tasks: int = 0  # R6: manual work not yet completed
    unfinished_actions: int = 0  # automatic actions not yet executed
    joined: frozenset[str] = frozenset()  # invoice ids already covered


class Unit(NamedTuple):
    today: date
    settings: Settings
    customer: CustomerFacts
    currency: str
    invoices: tuple[InvoiceFacts, ...]
    policy: Policy | None
    policy_reason: str
    plan: PlanState | None = None
    # (invoice id, level code) of reminder levels already recorded (sent or skipped)
    reminders_done: frozenset[tuple[str, str]] = frozenset()
    actions: Mapping[str, Action] = MappingProxyType({})
    # reasons in words cost time; the run turns them off, `explain` and tests keep them
    explain: bool = True


# --- decisions -----------------------------------------------------------------------------


class QueueReminder(NamedTuple):
    invoice_id: str
    level: Level


class SkipReminder(NamedTuple):
    invoice_id: str
    level: Level
    reason: str


class OpenPlan(NamedTuple):
    anchor_date: date
    balance: Decimal
    invoice_ids: tuple[str, ...]


class JoinInvoices(NamedTuple):
    invoice_ids: tuple[str, ...]


class UpdatePlan(NamedTuple):
    anchor_date: date
    balance: Decimal


class ResumePlan(NamedTuple):
    paused_days: int
    reason: str


class ReachLevel(NamedTuple):
    level: Level
    days_overdue: int


class SkipLevel(NamedTuple):
    level: Level
    reason: str


class ClosePlan(NamedTuple):
    status: PlanStatus
    reason: str


Decision = (
    QueueReminder
    | SkipReminder
    | OpenPlan
    | JoinInvoices
    | UpdatePlan
    | ResumePlan
    | ReachLevel
    | SkipLevel
    | ClosePlan
)


class Outcome(NamedTuple):
    decisions: tuple[Decision, ...]
    # R15: when the run must look again; None means "only when something changes"
    plan_next_step: date | None
    invoice_next_check: Mapping[str, date | None]
    reasons: tuple[str, ...]
    days_overdue: int | None = None
    balance: Decimal = ZERO
    level: str | None = None
    next_level: Level | None = None
    next_level_on: date | None = None


# --- eligibility (R2) ----------------------------------------------------------------------


def ineligibility(invoice: InvoiceFacts, unit: Unit) -> str | None:
    """Why this invoice is not dunned, or None when it is eligible (R2)."""
    settings = unit.settings
    if invoice.type not in settings.invoice_types:
        types = list(settings.invoice_types)
        return f"invoice type {invoice.type!r} is not in the dunned types {types}"
    if invoice.status not in OPEN_INVOICE_STATUSES:
        return f"invoice is {invoice.status.value}"
    if invoice.amount_due <= 0:
        return "nothing is due"
    if invoice.disputed:
        return "invoice is disputed"
    if unit.customer.excluded:
        return "customer is excluded from dunning"
    if unit.customer.status == "cancelled":
        return "customer account is cancelled"
    if unit.policy is None:
        return f"no policy applies: {unit.policy_reason}"
    if unit.policy.currency and unit.policy.currency != invoice.currency:
        return (
            f"policy {unit.policy.name!r} is for {unit.policy.currency}, "
            f"invoice is in {invoice.currency}"
        )
    return None


# --- the customer-mode balance (R4) ---------------------------------------------------------


def customer_balance(
    invoices: Iterable[InvoiceFacts],
    settings: Settings,
    today: date,
    *,
    joined: frozenset[str] = frozenset(),
    final: bool = False,
) -> Decimal:
    """A customer-mode plan's balance (R4), the one definition the run, `explain` and a
    payment (R8) share: the amount due of the dunned invoices (R2's invoice conditions) of the
    balance types that have fallen due (due date <= today) or already belong to the plan
    (`joined`: they fell due when they joined, so a payment dated before that still finds
    them owed). A final plan's balance is what is left of its own invoices: a dispute raised
    after it ended does not pay them."""
    types = settings.balance_types
    total = ZERO
    for invoice in invoices:
        if (
            invoice.type in types
            and invoice.type in settings.invoice_types
            and invoice.status in OPEN_INVOICE_STATUSES
            and invoice.amount_due > 0
            and (final or not invoice.disputed)
            and (invoice.id in joined or (not final and invoice.due_date <= today))
        ):
            total += invoice.amount_due
    return total


# --- the evaluation ------------------------------------------------------------------------


def evaluate(unit: Unit) -> Outcome:
    builder = _Builder(unit)
    builder.run()
    return builder.outcome()


class _Builder:
    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.today = unit.today
        self.decisions: list[Decision] = []
        self.reasons: list[str] = []
        self.next_check: dict[str, date | None] = {inv.id: None for inv in unit.invoices}
        self.plan_next: date | None = None
        self.days_overdue: int | None = None
        self.balance = ZERO
        self.level: str | None = unit.plan.level if unit.plan else None
        self.next_level: Level | None = None
        self.next_level_on: date | None = None

    def _note(self, text: Callable[[], str]) -> None:
        if self.unit.explain:
            self.reasons.append(text())

    def outcome(self) -> Outcome:
        return Outcome(
            decisions=tuple(self.decisions),
            plan_next_step=self.plan_next,
            invoice_next_check=self.next_check,
            reasons=tuple(self.reasons),
            days_overdue=self.days_overdue,
            balance=self.balance,
            level=self.level,
            next_level=self.next_level,
            next_level_on=self.next_level_on,
        )

    # R2, R3
    def eligible_invoices(self) -> list[InvoiceFacts]:
        eligible = []
        for invoice in self.unit.invoices:
            why = ineligibility(invoice, self.unit)
            if why is None:
                eligible.append(invoice)
            elif self.unit.explain and (
                len(self.unit.invoices) == 1 or invoice.status in OPEN_INVOICE_STATUSES
            ):
                self.reasons.append(f"invoice {invoice.number or invoice.id}: {why}")
        return eligible

    def run(self) -> None:
        unit = self.unit
        if unit.policy is not None and unit.explain:
            self.reasons.append(f"policy {unit.policy.name!r}: {unit.policy_reason}")
        eligible = self.eligible_invoices()
        plan = unit.plan

        if plan is not None and plan.status.is_final:
            self._note(lambda: f"plan is {plan.status.value} (final)")
            # what is still owed on the plan's debt (`explain` shows it; R8 may recover it)
            if unit.settings.mode is Mode.invoice:
                self.balance = eligible[0].amount_due if eligible else ZERO
            else:
                self.balance = customer_balance(
                    eligible, unit.settings, self.today, joined=plan.joined, final=True
                )
            return
        policy = unit.policy
        if policy is None or not eligible:
            if plan is not None and plan.status is PlanStatus.active and policy is not None:
                # The debt left dunning (paid, disputed, cancelled): only R8 closes plans, so
                # the run never sends anything and waits for the payment to be recorded.
                self._note(lambda: "no eligible invoice left in the plan: nothing to do")
            return

        self.reminders(policy, eligible)
        if unit.settings.mode is Mode.invoice:
            self.invoice_mode(policy, eligible[0])
        else:
            self.customer_mode(policy, eligible)

    # R9
    def reminders(self, policy: Policy, eligible: list[InvoiceFacts]) -> None:
        plan = self.unit.plan
        for invoice in eligible:
            if plan is not None and (
                self.unit.settings.mode is Mode.invoice or invoice.id in plan.joined
            ):
                continue  # a plan already covers it: reminders are behind it
            upcoming: list[date] = []
            for level in policy.reminder_levels:
                if (invoice.id, level.code) in self.unit.reminders_done:
                    continue
                fire_on = invoice.due_date + timedelta(days=level.days)
                if self.today >= invoice.due_date:
                    self.decisions.append(
                        SkipReminder(
                            invoice.id,
                            level,
                            f"due date {invoice.due_date} passed before "
                            f"the reminder's day {fire_on}",
                        )
                    )
                elif self.today >= fire_on:
                    self.decisions.append(QueueReminder(invoice.id, level))
                    if self.unit.explain:
                        self.reasons.append(f"reminder {level.code!r} for invoice {invoice.id}")
                    upcoming.append(invoice.due_date)  # to record skips of later reminders
                else:
                    upcoming.append(fire_on)
                    if self.unit.explain:
                        self.reasons.append(
                            f"reminder {level.code!r} for invoice {invoice.number or invoice.id} "
                            f"on {fire_on}"
                        )
            if upcoming:
                self._check_invoice_on(invoice.id, min(upcoming))

    def _check_invoice_on(self, invoice_id: str, when: date | None) -> None:
        if when is None:
            return
        when = max(when, self.today + timedelta(days=1))
        current = self.next_check.get(invoice_id)
        self.next_check[invoice_id] = when if current is None else min(current, when)

    # R1, R4 in invoice mode
    def invoice_mode(self, policy: Policy, invoice: InvoiceFacts) -> None:
        plan = self.unit.plan
        self.balance = invoice.amount_due
        first = policy.dunning_levels[0] if policy.dunning_levels else None
        if plan is None:
            if first is None:
                return
            days_overdue = (self.today - invoice.due_date).days
            self.days_overdue = days_overdue
            opens_on = invoice.due_date + timedelta(days=first.days)
            minimum = policy.min_balance_for(invoice.currency)
            if invoice.amount_due < minimum:
                self._note(
                    lambda: (
                        f"amount due {invoice.amount_due} {invoice.currency} is below the policy's "
                        f"minimum balance {minimum} {invoice.currency}: no plan opens"
                    )
                )
                return
            if days_overdue < first.days:
                self._note(
                    lambda: (
                        f"{_days(days_overdue)}; a plan opens at level {first.code!r} on {opens_on}"
                    )
                )
                self.next_level, self.next_level_on = first, opens_on
                self._check_invoice_on(invoice.id, opens_on)
                return
            self.decisions.append(OpenPlan(invoice.due_date, invoice.amount_due, (invoice.id,)))
            self._note(lambda: f"{_days(days_overdue)}: a plan opens")
            state = PlanState(PlanStatus.active, None, invoice.due_date, invoice.amount_due)
            self.climb(policy, state, invoice.currency)
            return
        self.climb(policy, plan, invoice.currency, balance=invoice.amount_due)

    # R1, R4 in customer mode
    def customer_mode(self, policy: Policy, eligible: list[InvoiceFacts]) -> None:
        settings = self.unit.settings
        currency = self.unit.currency
        fallen_due = [inv for inv in eligible if inv.due_date <= self.today]
        plan = self.unit.plan
        balance = customer_balance(
            eligible, settings, self.today, joined=plan.joined if plan else frozenset()
        )
        self.balance = balance
        for invoice in eligible:
            if invoice.due_date > self.today:
                self._check_invoice_on(invoice.id, invoice.due_date)
        first = policy.dunning_levels[0] if policy.dunning_levels else None
        if not fallen_due:
            if plan is None:
                self._note(lambda: "no invoice has fallen due yet")
            return
        anchor = min(inv.due_date for inv in fallen_due)
        if plan is None:
            if first is None:
                return
            days_overdue = (self.today - anchor).days
            self.days_overdue = days_overdue
            minimum = policy.min_balance_for(currency)
            if balance < minimum or balance <= 0:
                self._note(
                    lambda: (
                        f"customer balance {balance} {currency} is below the policy's minimum "
                        f"balance {minimum} {currency}: no plan opens"
                    )
                )
                return
            opens_on = anchor + timedelta(days=first.days)
            if days_overdue < first.days:
                self._note(
                    lambda: (
                        f"{_days(days_overdue)} (oldest due {anchor}); a plan opens at level "
                        f"{first.code!r} on {opens_on}"
                    )
                )
                self.next_level, self.next_level_on = first, opens_on
                for invoice in fallen_due:
                    self._check_invoice_on(invoice.id, opens_on)
                return
            ids = tuple(inv.id for inv in fallen_due)
            self.decisions.append(OpenPlan(anchor, balance, ids))
            self._note(lambda: f"{_days(days_overdue)} (oldest due {anchor}): a plan opens")
            state = PlanState(PlanStatus.active, None, anchor, balance, joined=frozenset(ids))
            self.climb(policy, state, currency)
            return
        joining = tuple(inv.id for inv in fallen_due if inv.id not in plan.joined)
        if joining:
            self.decisions.append(JoinInvoices(joining))
        if anchor != plan.anchor_date or balance != plan.balance:
            self.decisions.append(UpdatePlan(anchor, balance))
            if anchor != plan.anchor_date:
                self._note(lambda: f"the oldest overdue invoice is now due {anchor}")
        moved = PlanState(
            plan.status,
            plan.level,
            anchor,
            balance,
            plan.paused_days,
            plan.paused_on,
            plan.pause_until,
            plan.pause_reason,
            plan.open_tasks,
            plan.unfinished_actions,
            plan.joined | frozenset(joining),
        )
        self.climb(policy, moved, currency, balance=balance)

    # R5, R6, R7, R10 on an open plan
    def climb(
        self, policy: Policy, plan: PlanState, currency: str, *, balance: Decimal | None = None
    ) -> None:
        today = self.today
        balance = plan.balance if balance is None else balance
        self.balance = balance
        paused_days = plan.paused_days
        if plan.status is PlanStatus.paused:
            if plan.pause_until is not None and plan.pause_until <= today:
                extra = max(0, (plan.pause_until - (plan.paused_on or plan.pause_until)).days)
                paused_days += extra
                ended = (
                    f"promise to pay by {plan.pause_until} came due"
                    if plan.pause_reason == PROMISE_PAUSE_REASON
                    else f"pause ended on {plan.pause_until}"
                )
                self.decisions.append(ResumePlan(extra, ended))
                self._note(lambda: f"the pause ended on {plan.pause_until}")
            else:
                until = f" until {plan.pause_until}" if plan.pause_until else ""
                self._note(lambda: f"plan is paused ({plan.pause_reason or 'no reason'}){until}")
                self.plan_next = plan.pause_until
                return
        days_overdue = (today - plan.anchor_date).days - paused_days
        self.days_overdue = days_overdue
        levels = policy.dunning_levels
        codes = [lvl.code for lvl in levels]
        current = codes.index(plan.level) if plan.level in codes else -1
        if current >= 0:
            self._note(lambda: f"current level {plan.level!r}")
        if balance <= 0:
            self.decisions.append(ClosePlan(PlanStatus.recovered, "nothing is due any more"))
            return
        if plan.open_tasks > 0:
            self._note(
                lambda: (
                    f"waiting for {plan.open_tasks} manual task(s) at level {plan.level!r} "
                    "(rule R6 in docs/rules.md)"
                )
            )
            self.plan_next = None  # completing the task schedules the plan again
            return

        due = [i for i in range(current + 1, len(levels)) if levels[i].days <= days_overdue]
        check_balance = policy.transition is Transition.days_overdue_and_balance
        reached: list[int] = []  # levels stepped on, run or skipped
        ran: set[int] = set()  # levels whose actions run
        if due:
            passing = [
                i
                for i in due
                if not check_balance or levels[i].min_balance_for(currency) <= balance
            ]
            if self.unit.settings.catch_up is CatchUp.all:
                for i in due:
                    level = levels[i]
                    if i in passing:
                        self.decisions.append(ReachLevel(level, days_overdue))
                        reached.append(i)
                        ran.add(i)
                        if self._is_blocking(level):
                            break  # R6: a person must act before the next level
                    else:
                        self.decisions.append(
                            SkipLevel(level, self._balance_reason(level, balance, currency))
                        )
                        reached.append(i)
            else:
                target = passing[-1] if passing else None
                for i in due:
                    level = levels[i]
                    if i == target:
                        self.decisions.append(ReachLevel(level, days_overdue))
                        ran.add(i)
                    elif i not in passing:
                        self.decisions.append(
                            SkipLevel(level, self._balance_reason(level, balance, currency))
                        )
                    elif target is not None and i < target:
                        self.decisions.append(
                            SkipLevel(
                                level,
                                f"passed over: catch_up latest runs only {levels[target].code!r}",
                            )
                        )
                    else:
                        continue
                    reached.append(i)
        if reached:
            current = reached[-1]
            self.level = levels[current].code
            last = levels[current]
            self._note(lambda: f"{_days(days_overdue)}: level {last.code!r}")
            if last.end:
                if current not in ran or not self._has_actions(last):
                    self.decisions.append(ClosePlan(PlanStatus.unrecovered, "end level reached"))
                    return
                # the executor closes it when the last action finishes (R7)
                self.plan_next = None
                return
            if current in ran and self._is_blocking(last):
                self._note(
                    lambda: f"level {last.code!r} waits for a person (rule R6 in docs/rules.md)"
                )
                self.plan_next = None
                return
        elif current >= 0 and levels[current].end:
            if plan.unfinished_actions > 0:
                self._note(lambda: "end level: waiting for its actions to finish")
                self.plan_next = None  # the executor closes it (R7)
            else:
                self.decisions.append(ClosePlan(PlanStatus.unrecovered, "end level finished"))
            return
        nxt = current + 1
        if nxt < len(levels):
            level = levels[nxt]
            when = plan.anchor_date + timedelta(days=level.days + paused_days)
            self.next_level, self.next_level_on = level, when
            self.plan_next = when
            self._note(lambda: f"next: level {level.code!r} on {when}")

    def _balance_reason(self, level: Level, balance: Decimal, currency: str) -> str:
        return (
            f"balance {balance} {currency} is below the level's minimum "
            f"{level.min_balance_for(currency)} {currency}"
        )

    def _is_blocking(self, level: Level) -> bool:
        actions = self.unit.actions
        return any(code in actions and actions[code].is_manual for code in level.actions)

    def _has_actions(self, level: Level) -> bool:
        return bool(level.actions)


def _days(days: int) -> str:
    if days < 0:
        return f"{-days} day(s) before the due date"
    return f"{days} day(s) overdue"
