"""The units of work of a run and their loaders, shared by the run and `recoup explain`.

A unit is what the evaluator decides on at once: one invoice (invoice mode) or a customer's
debt in one currency (customer mode), with its plan, the reminders already done and the
policy that applies. The run loads the units of a chunk in a few queries (Core, not ORM: these
are its hot path) into plain records; `explain` loads one unit through the same functions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, String, any_, bindparam, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from recoup.domain.enums import InvoiceStatus, Mode, PlanStatus
from recoup.domain.evaluator import (
    CustomerFacts,
    InvoiceFacts,
    Outcome,
    PlanState,
    Unit,
    evaluate,
)
from recoup.domain.policy import Action, Config
from recoup.domain.rules import Resolution, resolve_policy
from recoup.models import ActionInstance, Customer, Invoice, InvoiceCheck, Plan, Task
from recoup.plans.links import plan_links
from recoup.policies.service import load_config

# stored value -> member by dict lookup (calling the Enum class costs more, per row)
INVOICE_STATUSES = {s.value: s for s in InvoiceStatus}
PLAN_STATUSES = {s.value: s for s in PlanStatus}
NOTHING_DONE: frozenset[tuple[str, str]] = frozenset()
PAIR_NONE = ""  # the second half of an invoice-mode unit's key (invoice id, "")


def load_domain_config(session: Session) -> Config:
    return load_config(session)


def customer_fields(customer: Any) -> dict[str, Any]:
    """What policy resolution matches on (R1), from a customer row or record."""
    return {
        "id": customer.id,
        "category": customer.category,
        "country": customer.country,
        "currency": customer.currency,
        "is_company": customer.is_company,
        "payment_method": customer.payment_method,
        "language": customer.language,
        "policy": customer.policy,
        "attributes": customer.attributes or {},
    }


@dataclass(kw_only=True)
class Deciding:
    """What deciding units needs: the date, the configuration, and per-customer values that
    repeat per invoice (cached for the whole run)."""

    as_of: date
    config: Config
    actions: dict[str, Action]
    explain: bool = False
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    customers: dict[str, Any] = field(default_factory=dict)
    customer_facts: dict[str, CustomerFacts] = field(default_factory=dict)

    def facts(self, customer: Any) -> CustomerFacts:
        """The evaluator's view of a customer, built once per run (they repeat per invoice)."""
        facts = self.customer_facts.get(customer.id)
        if facts is None:
            facts = CustomerFacts(customer.id, customer.excluded, customer.status)
            self.customer_facts[customer.id] = facts
        return facts

    def resolve(self, customer: Any) -> Resolution:
        cached = self.resolutions.get(customer.id)
        if cached is None:
            cached = resolve_policy(customer_fields(customer), self.config.policies)
            self.resolutions[customer.id] = cached
        return cached


# --- finding the day's work ----------------------------------------------------------------


def find_units(session: Session, as_of: date, mode: Mode) -> list[tuple[str, str]]:
    """R15: only invoices whose check date has come and plans whose step date has come.
    Invoice mode: (invoice id, ""); customer mode: (customer id, currency); sorted."""
    # Core on the session's connection: ORM result processing doubled the time of a first
    # run's 100,000 ids
    connection = session.connection()
    if mode is Mode.invoice:
        ids = set(
            connection.execute(
                select(InvoiceCheck.invoice_id).where(InvoiceCheck.check_on <= as_of)
            ).scalars()
        )
        ids.update(
            connection.execute(
                select(Plan.invoice_id).where(
                    Plan.next_step_on <= as_of,
                    Plan.is_open,
                    Plan.invoice_id.is_not(None),
                )
            ).scalars()
        )
        return [(i, PAIR_NONE) for i in sorted(ids)]
    pairs: set[tuple[str, str]] = set(
        connection.execute(
            select(Invoice.customer_id, Invoice.currency)
            .join(InvoiceCheck, InvoiceCheck.invoice_id == Invoice.id)
            .where(InvoiceCheck.check_on <= as_of)
        )
    )
    pairs.update(
        connection.execute(
            select(Plan.customer_id, Plan.currency).where(Plan.next_step_on <= as_of, Plan.is_open)
        )
    )
    return sorted(pairs)


# --- records: the columns the run reads, without ORM bookkeeping ---------------------------


@dataclass(slots=True)
class CustomerRec:
    id: str
    excluded: bool
    status: str
    category: str | None
    country: str | None
    currency: str | None
    is_company: bool
    payment_method: str | None
    language: str | None
    policy: str | None
    attributes: dict[str, Any] | None


@dataclass(slots=True)
class InvoiceRec:
    id: str
    customer_id: str
    number: str
    type: str
    due_date: date
    currency: str
    amount_due: Decimal
    status: str
    disputed: bool
    next_check_on: date | None
    stamp: str  # FACT_STAMP


@dataclass(slots=True)
class PlanRec:
    """The columns of a plan the run reads and writes, without ORM bookkeeping."""

    id: int
    customer_id: str
    invoice_id: str | None
    currency: str
    status: str
    level: str | None
    balance: Decimal
    anchor_date: date
    paused_days: int
    paused_on: date | None
    pause_until: date | None
    pause_reason: str | None
    next_step_on: date | None


CUSTOMER_COLUMNS = (
    Customer.id,
    Customer.excluded,
    Customer.status,
    Customer.category,
    Customer.country,
    Customer.currency,
    Customer.is_company,
    Customer.payment_method,
    Customer.language,
    Customer.policy,
    Customer.attributes,
)
# What a chunk's decisions rest on, per invoice, as one string the database builds: the
# chunk's write compares it with what the decider read (two short strings per invoice to
# send and compare, no conversions).
FACT_STAMP = (
    cast(Invoice.amount_due, String)
    + "|"
    + Invoice.status
    + "|"
    + cast(Invoice.disputed, String)
    + "|"
    + cast(Invoice.due_date, String)
    + "|"
    + Invoice.customer_id
    + "|"
    + Invoice.currency
    + "|"
    + Invoice.type
).label("stamp")
INVOICE_COLUMNS = (
    Invoice.id,
    Invoice.customer_id,
    Invoice.number,
    Invoice.type,
    Invoice.due_date,
    Invoice.currency,
    Invoice.amount_due,
    Invoice.status,
    Invoice.disputed,
    # one index probe per invoice: an outer join let PostgreSQL hash the whole check table
    # for every chunk
    select(InvoiceCheck.check_on)
    .where(InvoiceCheck.invoice_id == Invoice.id)
    .correlate(Invoice)
    .scalar_subquery()
    .label("check_on"),
    FACT_STAMP,
)
PLAN_COLUMNS = (
    Plan.id,
    Plan.customer_id,
    Plan.invoice_id,
    Plan.currency,
    Plan.status,
    Plan.level,
    Plan.balance,
    Plan.anchor_date,
    Plan.paused_days,
    Plan.paused_on,
    Plan.pause_until,
    Plan.pause_reason,
    Plan.next_step_on,
)


# --- loaders -------------------------------------------------------------------------------


def among(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """`column IN values` for a chunk of ids. On PostgreSQL one array parameter
    (`= ANY(%s)`): a statement psycopg parses once, not one with thousands of placeholders."""
    if session.get_bind().dialect.name == "postgresql":
        item = Integer() if isinstance(column.type, Integer) else String()
        return column == any_(bindparam(None, list(values), type_=ARRAY(item)))
    return column.in_(values)


def invoice_facts(row: InvoiceRec) -> InvoiceFacts:
    return InvoiceFacts(
        id=row.id,
        due_date=row.due_date,
        currency=row.currency,
        amount_due=row.amount_due,
        type=row.type,
        status=INVOICE_STATUSES[row.status],
        disputed=row.disputed,
        number=row.number,
    )


def plan_counts(session: Session, plan_ids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Per plan: open tasks (R6 holds the plan) and unfinished action instances (R7)."""
    if not plan_ids:
        return {}, {}

    def count(model: Any, condition: Any) -> dict[int, int]:
        query = (
            select(model.plan_id, func.count())
            .where(among(session, model.plan_id, plan_ids), condition)
            .group_by(model.plan_id)
        )
        return {plan_id: n for plan_id, n in session.connection().execute(query)}

    return count(Task, Task.is_open), count(ActionInstance, ActionInstance.is_unfinished)


def plan_state(
    plan: PlanRec, tasks: dict[int, int], unfinished: dict[int, int], joined: frozenset[str]
) -> PlanState:
    return PlanState(
        status=PLAN_STATUSES[plan.status],
        level=plan.level,
        anchor_date=plan.anchor_date,
        balance=plan.balance,
        paused_days=plan.paused_days,
        paused_on=plan.paused_on,
        pause_until=plan.pause_until,
        pause_reason=plan.pause_reason,
        open_tasks=tasks.get(plan.id, 0),
        unfinished_actions=unfinished.get(plan.id, 0),
        joined=joined,
    )


def reminders_done(session: Session, invoice_ids: Sequence[str]) -> dict[str, set[tuple[str, str]]]:
    """Per invoice: the (invoice, level) reminders already queued or recorded as skipped."""
    done: dict[str, set[tuple[str, str]]] = defaultdict(set)
    if invoice_ids:
        rows = session.connection().execute(
            select(ActionInstance.invoice_id, ActionInstance.level).where(
                among(session, ActionInstance.invoice_id, invoice_ids),
                ActionInstance.plan_id.is_(None),
            )
        )
        for invoice_id, level in rows:
            if invoice_id is not None:
                done[invoice_id].add((invoice_id, level))
    return done


def load_customers(session: Session, ctx: Deciding, ids: Iterable[str]) -> dict[str, CustomerRec]:
    """Customers by id, read once per run (a customer has several invoices)."""
    cache = ctx.customers
    missing = [i for i in set(ids) if i not in cache]
    for start in range(0, len(missing), 5000):
        rows = session.connection().execute(
            select(*CUSTOMER_COLUMNS).where(
                among(session, Customer.id, missing[start : start + 5000])
            )
        )
        for row in rows:
            cache[row[0]] = CustomerRec(*row)
    return cache


def load_invoices(session: Session, invoice_ids: Sequence[str]) -> list[InvoiceRec]:
    return [
        InvoiceRec(*row)
        for row in session.connection().execute(
            select(*INVOICE_COLUMNS).where(among(session, Invoice.id, invoice_ids))
        )
    ]


def latest_plans(session: Session, invoice_ids: Sequence[str]) -> dict[str, PlanRec]:
    """Invoice mode: each invoice's latest plan (of any status)."""
    plans: dict[str, PlanRec] = {}
    for row in session.connection().execute(
        select(*PLAN_COLUMNS).where(among(session, Plan.invoice_id, invoice_ids)).order_by(Plan.id)
    ):
        plan = PlanRec(*row)
        if plan.invoice_id is not None:
            plans[plan.invoice_id] = plan  # the latest plan of the invoice wins
    return plans


def pair_invoices(
    session: Session, customer_ids: Sequence[str], pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[InvoiceRec]]:
    """Customer mode: per (customer, currency), the invoices that are open or still have a
    check to make."""
    wanted = set(pairs)
    by_pair: dict[tuple[str, str], list[InvoiceRec]] = defaultdict(list)
    for row in session.connection().execute(
        select(*INVOICE_COLUMNS).where(
            among(session, Invoice.customer_id, customer_ids),
            or_(Invoice.is_open, exists().where(InvoiceCheck.invoice_id == Invoice.id)),
        )
    ):
        invoice = InvoiceRec(*row)
        if (invoice.customer_id, invoice.currency) in wanted:
            by_pair[(invoice.customer_id, invoice.currency)].append(invoice)
    return by_pair


def open_plans(session: Session, customer_ids: Sequence[str]) -> dict[tuple[str, str], PlanRec]:
    """Customer mode: the open plan of each (customer, currency)."""
    plans: dict[tuple[str, str], PlanRec] = {}
    for row in session.connection().execute(
        select(*PLAN_COLUMNS).where(among(session, Plan.customer_id, customer_ids), Plan.is_open)
    ):
        plan = PlanRec(*row)
        plans[(plan.customer_id, plan.currency)] = plan
    return plans


def load_plan(session: Session, plan_id: int) -> PlanRec | None:
    row = session.connection().execute(select(*PLAN_COLUMNS).where(Plan.id == plan_id)).first()
    return PlanRec(*row) if row is not None else None


def coverage(session: Session, invoice_ids: Sequence[str]) -> dict[str, int]:
    """The plan that dunned each invoice (an invoice is covered by one plan, ever)."""
    covered: dict[str, int] = {}
    if invoice_ids:
        links = plan_links()
        for invoice_id, plan_id in session.connection().execute(
            select(links.c.invoice_id, links.c.plan_id).where(
                among(session, links.c.invoice_id, invoice_ids)
            )
        ):
            covered[invoice_id] = plan_id
    return covered


# --- units ---------------------------------------------------------------------------------

# an evaluated unit and what applying it needs: unit, outcome, plan, customer id, its
# invoices, and invoices that need no further checks (customer mode)
Item = tuple[Unit, Outcome, PlanRec | None, str, Sequence[InvoiceRec], Iterable[InvoiceRec]]


def invoice_unit(
    ctx: Deciding,
    customer: CustomerRec,
    invoice: InvoiceRec,
    plan: PlanRec | None,
    tasks: dict[int, int],
    unfinished: dict[int, int],
    done: dict[str, set[tuple[str, str]]],
) -> Unit:
    """Invoice mode: the unit of one invoice and its latest plan."""
    resolution = ctx.resolve(customer)
    reminders = done.get(invoice.id)
    return Unit(
        today=ctx.as_of,
        settings=ctx.config.settings,
        customer=ctx.facts(customer),
        currency=invoice.currency,
        invoices=(invoice_facts(invoice),),
        policy=resolution.policy,
        policy_reason=resolution.reason,
        plan=plan_state(plan, tasks, unfinished, frozenset({invoice.id})) if plan else None,
        reminders_done=frozenset(reminders) if reminders else NOTHING_DONE,
        actions=ctx.actions,
        explain=ctx.explain,
    )


def unit_invoices(
    candidates: Sequence[InvoiceRec], plan: PlanRec | None, covered: dict[str, int]
) -> list[InvoiceRec]:
    """Customer mode: a pair's invoices that its plan may dun: those no plan covers, and
    those `plan` covers."""
    return [
        inv
        for inv in candidates
        if inv.id not in covered or (plan is not None and covered[inv.id] == plan.id)
    ]


def customer_unit(
    ctx: Deciding,
    customer: CustomerRec,
    currency: str,
    invoices: Sequence[InvoiceRec],
    plan: PlanRec | None,
    covered: dict[str, int],
    tasks: dict[int, int],
    unfinished: dict[int, int],
    done: dict[str, set[tuple[str, str]]],
) -> Unit:
    """Customer mode: the unit of a customer's debt in one currency under `plan`."""
    resolution = ctx.resolve(customer)
    joined = frozenset(
        inv.id for inv in invoices if plan is not None and covered.get(inv.id) == plan.id
    )
    reminders: set[tuple[str, str]] = set()
    for inv in invoices:
        reminders |= done.get(inv.id, set())
    return Unit(
        today=ctx.as_of,
        settings=ctx.config.settings,
        customer=ctx.facts(customer),
        currency=currency,
        invoices=tuple(invoice_facts(inv) for inv in invoices),
        policy=resolution.policy,
        policy_reason=resolution.reason,
        plan=plan_state(plan, tasks, unfinished, joined) if plan else None,
        reminders_done=frozenset(reminders),
        actions=ctx.actions,
        explain=ctx.explain,
    )


def decide_invoice_chunk(session: Session, ctx: Deciding, invoice_ids: list[str]) -> list[Item]:
    """Invoice mode: load and evaluate a chunk's invoices."""
    invoices = load_invoices(session, invoice_ids)
    customers = load_customers(session, ctx, {inv.customer_id for inv in invoices})
    plans = latest_plans(session, invoice_ids)
    tasks, unfinished = plan_counts(session, [p.id for p in plans.values()])
    done = reminders_done(session, invoice_ids)
    items: list[Item] = []
    for invoice in invoices:
        customer = customers[invoice.customer_id]
        plan = plans.get(invoice.id)
        unit = invoice_unit(ctx, customer, invoice, plan, tasks, unfinished, done)
        items.append((unit, evaluate(unit), plan, customer.id, (invoice,), ()))
    return items


def decide_customer_chunk(
    session: Session, ctx: Deciding, pairs: list[tuple[str, str]]
) -> list[Item]:
    """Customer mode: load and evaluate a chunk's (customer, currency) pairs."""
    customer_ids = sorted({c for c, _ in pairs})
    customers = load_customers(session, ctx, customer_ids)
    by_pair = pair_invoices(session, customer_ids, pairs)
    plans = open_plans(session, customer_ids)
    all_invoice_ids = [inv.id for invs in by_pair.values() for inv in invs]
    covered = coverage(session, all_invoice_ids)
    tasks, unfinished = plan_counts(session, [p.id for p in plans.values()])
    done = reminders_done(session, all_invoice_ids)
    items: list[Item] = []
    for pair in pairs:
        customer = customers.get(pair[0])
        if customer is None:
            continue
        plan = plans.get(pair)
        candidates = by_pair.get(pair, [])
        invoices = unit_invoices(candidates, plan, covered)
        unit = customer_unit(
            ctx, customer, pair[1], invoices, plan, covered, tasks, unfinished, done
        )
        # invoices no longer open (or covered by another plan) need no further checks
        kept = {inv.id for inv in invoices}
        stale = [inv for inv in candidates if inv.id not in kept]
        items.append((unit, evaluate(unit), plan, customer.id, invoices, stale))
    return items
