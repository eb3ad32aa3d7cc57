"""Every query of plans: a plan by id, the listing (whole or in cursor pages), the open plans
of invoices or of a customer's currency, the invoices a plan covers, and a plan with all its
parts (what `plan show` and the plan page show); what closing a plan reads (its unfinished
work, the account statuses it changed, the invoices its balance comes from) and what a
promise reads (what was promised, what was paid toward it). The open-plan condition is
`Plan.is_open`."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    Numeric,
    Row,
    Select,
    Table,
    TypeDecorator,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, defaultload, lazyload
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from recoup.core.db import table_of
from recoup.core.errors import InvalidInput, NotFound
from recoup.core.schemas import (
    DEFAULT_LIMIT,
    Keyset,
    check_limit,
    decode_cursor,
    decode_id_cursor,
)
from recoup.domain.enums import OPEN_PLAN_VALUES, PROMISE_PAUSE_REASON, PlanStatus
from recoup.models import (
    LATE_INVOICE,
    ActionInstance,
    Charge,
    Customer,
    Document,
    Invoice,
    LogEntry,
    Payment,
    PaymentAllocation,
    Plan,
    PlanInvoice,
    PolicyRow,
    StatusChange,
    Task,
)
from recoup.plans.links import plan_links


def find(session: Session, plan_id: int) -> Plan | None:
    return session.get(Plan, plan_id)


# a plan's policy comes joined for its name; its levels (selectin by default, for the run) only
# when asked for: a listing or a plan's page shows none of them
_WITHOUT_LEVELS = defaultload(Plan.policy).lazyload(PolicyRow.levels)


def get_or_not_found(session: Session, plan_id: int) -> Plan:
    plan = session.get(Plan, plan_id, options=[_WITHOUT_LEVELS])
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    return plan


# The plans table's columns: a query written with them alone is plain SQL, which SQLAlchemy
# runs without its ORM steps (a third cheaper for a page of plans: benchmarks/api_bench.py).
_PLANS = table_of(Plan)

# what a listing shows of a plan (PlanRead): read as columns, so a page of plans costs no ORM
# objects and no join of their policies
SUMMARY_COLUMNS = (
    _PLANS.c.id,
    _PLANS.c.customer_id,
    _PLANS.c.invoice_id,
    _PLANS.c.currency,
    _PLANS.c.status,
    _PLANS.c.level,
    _PLANS.c.balance,
    _PLANS.c.opened_on,
    _PLANS.c.closed_on,
)


def _filter_values(
    status: str | None,
    customer_id: str | None,
    *,
    policy: str | None = None,
    level: str | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """The values of a listing's filters that are given (an empty one is no filter), by the
    name `_filters` binds them to."""
    values = {
        "status": status or None,
        "customer_id": customer_id or None,
        "policy": policy or None,
        "level": level or None,
        "currency": currency.upper() if currency else None,
    }
    return {name: value for name, value in values.items() if value is not None}


def _filters(given: Collection[str]) -> list[Any]:
    """The conditions of the filters `given` (`_filter_values`' names), on the plans table's
    columns, their values bound at execution."""
    plans = _PLANS.c
    conditions: list[Any] = [
        column == bindparam(name)
        for name, column in (
            ("status", plans.status),
            ("customer_id", plans.customer_id),
            ("level", plans.level),
            ("currency", plans.currency),
        )
        if name in given
    ]
    if "policy" in given:
        policies = table_of(PolicyRow).c
        named = select(policies.id).where(policies.name == bindparam("policy"))
        conditions.append(plans.policy_id.in_(named))
    return conditions


# --- days overdue in SQL (R1) --------------------------------------------------------------


class _DayNumber(FunctionElement[int]):
    """A date column as a count of days (since 1970-01-01), so that SQL can subtract dates on
    both databases: PostgreSQL subtracts dates into days, SQLite only through julianday."""

    type = Integer()
    inherit_cache = True


@compiles(_DayNumber, "postgresql")
def _day_number_pg(element: _DayNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} - DATE '1970-01-01')"


@compiles(_DayNumber)
def _day_number(element: _DayNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5 AS INTEGER)"


EPOCH = date(1970, 1, 1)


def plan_days_overdue(today: date) -> Any:
    """R1 as SQL for an open plan, as recoup.tasks.repository.days_overdue computes it on a
    row: today − its anchor date, less the days it spent paused (the current pause too)."""
    return _days_overdue((today - EPOCH).days)


def _days_overdue(today_n: Any) -> Any:
    """`plan_days_overdue` on the day number `today_n` (a number or a bound parameter)."""
    paused_since = today_n - _DayNumber(_PLANS.c.paused_on)
    current_pause = case(
        (
            (_PLANS.c.status == PlanStatus.paused.value)
            & _PLANS.c.paused_on.is_not(None)
            & (paused_since > 0),
            paused_since,
        ),
        else_=0,
    )
    return today_n - _DayNumber(_PLANS.c.anchor_date) - _PLANS.c.paused_days - current_pause


def list_plans(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    limit: int = 1000,
) -> list[Plan]:
    """The newest `limit` matching plans, newest first."""
    values = _filter_values(status, customer_id)
    query = select(Plan).where(*_filters(values)).order_by(Plan.id.desc()).limit(limit)
    return list(session.scalars(query, values))


def page(
    session: Session,
    *,
    status: str | None = None,
    customer_id: str | None = None,
    policy: str | None = None,
    level: str | None = None,
    currency: str | None = None,
    min_days_overdue: int | None = None,
    max_days_overdue: int | None = None,
    today: date | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> tuple[list[Row[Any]], str | None]:
    """One page of the matching plans (their SUMMARY_COLUMNS), newest first, and the cursor
    of the next page. With
    `min_days_overdue` / `max_days_overdue` (R1 on `today`), only open plans in that range:
    a closed plan has no days overdue."""
    limit = check_limit(limit)
    given = _filter_values(status, customer_id, policy=policy, level=level, currency=currency)
    extra = {
        "min_days": min_days_overdue,
        "max_days": max_days_overdue,
        "cursor_id": decode_id_cursor(cursor) if cursor is not None else None,
    }
    given.update((name, value) for name, value in extra.items() if value is not None)
    if "min_days" in given or "max_days" in given:
        if today is None:
            raise ValueError("days overdue are counted on a date: pass today")
        given["today_n"] = (today - EPOCH).days
    query = _page_query(frozenset(given), before)
    rows = list(session.execute(query, {**given, "limit": limit + 1}).all())
    return Keyset(descending=True, before=before).page(rows, limit)


@lru_cache(maxsize=256)
def _page_query(given: frozenset[str], before: bool) -> Select[Any]:
    """`page`'s statement for the filters `given` (the names of its bound values), built once
    per such set: building a statement and its cache key cost more than running it."""
    keyset = Keyset(descending=True, before=before)
    plans = _PLANS.c
    query = select(*SUMMARY_COLUMNS).where(*_filters(given)).order_by(*keyset.order(plans.id))
    if "today_n" in given:
        overdue = _days_overdue(bindparam("today_n", type_=Integer))
        query = query.where(plans.status.in_(OPEN_PLAN_VALUES))
        if "min_days" in given:
            query = query.where(overdue >= bindparam("min_days", type_=Integer))
        if "max_days" in given:
            query = query.where(overdue <= bindparam("max_days", type_=Integer))
    if "cursor_id" in given:
        query = query.where(keyset.past(plans.id, bindparam("cursor_id", type_=Integer)))
    return query.limit(bindparam("limit", type_=Integer))


# what closing or settling a plan reads of it: not its policy (a join, and the policy's levels
# selectin-loaded after it); the customer-mode threshold reads the policy alone (policy_of)
_BARE = lazyload(Plan.policy)


def find_bare(session: Session, plan_id: int) -> Plan | None:
    """The plan, without its policy joined (see _BARE)."""
    return session.get(Plan, plan_id, options=[_BARE])


def open_for_invoices(session: Session, invoice_ids: Collection[str]) -> list[Plan]:
    """The open invoice-mode plans of these invoices."""
    if not invoice_ids:
        return []
    return list(
        session.scalars(
            select(Plan).options(_BARE).where(Plan.invoice_id.in_(list(invoice_ids)), Plan.is_open)
        )
    )


def open_for_customers(session: Session, pairs: Iterable[tuple[str, str]]) -> list[Plan]:
    """The open customer-mode plans of these (customer, currency) pairs."""
    plans: list[Plan] = []
    for customer_id, currency in pairs:
        plans.extend(
            session.scalars(
                select(Plan)
                .options(_BARE)
                .where(
                    Plan.customer_id == customer_id,
                    Plan.currency == currency,
                    Plan.invoice_id.is_(None),
                    Plan.is_open,
                )
            )
        )
    return plans


def ended_unrecovered_for_invoices(session: Session, invoice_ids: Collection[str]) -> list[Plan]:
    """The plans covering these invoices that ended `unrecovered` (R8 may still recover them)."""
    links = plan_links()
    return list(
        session.scalars(
            select(Plan)
            .options(_BARE)
            .where(
                Plan.id.in_(
                    select(links.c.plan_id).where(links.c.invoice_id.in_(list(invoice_ids)))
                ),
                Plan.status == PlanStatus.unrecovered.value,
            )
            .order_by(Plan.id)
        )
    )


_PLAN_INVOICES = table_of(PlanInvoice)


def _among(column: Any, values: Iterable[str]) -> Any:
    """`column IN ('a', 'b')` with the statuses written into the SQL, compiled once: a bound
    list is expanded again on every execution."""
    assert all(v.isidentifier() for v in values)
    return column.in_([literal_column(f"'{v}'") for v in values])


_OPEN = tuple(OPEN_PLAN_VALUES)


def _over(invoices: Any) -> Any:
    """The plans open_for_invoices, open_for_customers and ended_unrecovered_for_invoices would
    find for the invoices `invoices` selects (of one customer and currency), in one statement,
    each part led by its index."""
    columns = (_PLANS.c.id, _PLANS.c.invoice_id, _PLANS.c.status, _PLANS.c.balance)
    return union_all(
        select(*columns).where(
            invoices(_PLANS.c.invoice_id),
            _among(_PLANS.c.status, (*_OPEN, PlanStatus.unrecovered.value)),
        ),
        select(*columns).where(
            _PLANS.c.customer_id == bindparam("customer_id"),
            _PLANS.c.currency == bindparam("currency"),
            _PLANS.c.invoice_id.is_(None),
            _among(_PLANS.c.status, _OPEN),
        ),
        select(*columns)
        .join(_PLAN_INVOICES, _PLAN_INVOICES.c.plan_id == _PLANS.c.id)
        .where(
            invoices(_PLAN_INVOICES.c.invoice_id),
            _among(_PLANS.c.status, (PlanStatus.unrecovered.value,)),
        ),
    )


# built once: a payment through the API runs one on every request (one invoice: no IN list)
_OVER_INVOICE = _over(lambda column: column == bindparam("invoice_id"))
_OVER_INVOICES = _over(lambda column: column.in_(bindparam("invoice_ids", expanding=True)))


def over_invoices(
    session: Session, invoice_ids: Sequence[str], customer_id: str, currency: str
) -> Sequence[Row[Any]]:
    """(id, invoice_id, status, balance) of the plans a change of these invoices' debt settles
    (recoup.plans.closing.refresh_plans_after_change), the invoices all of `customer_id` in
    `currency`: their open invoice-mode plans, the open customer-mode plan of the customer and
    currency, and the plans covering them that ended `unrecovered`. A plan may come twice; in
    no order."""
    account = {"customer_id": customer_id, "currency": currency}
    if len(invoice_ids) == 1:
        return session.execute(_OVER_INVOICE, {"invoice_id": invoice_ids[0], **account}).all()
    return session.execute(_OVER_INVOICES, {"invoice_ids": list(invoice_ids), **account}).all()


def is_loaded(session: Session, plan_id: int) -> bool:
    """Whether the session holds this plan as an object (its state is then the one to use)."""
    return session.identity_key(Plan, plan_id) in session.identity_map


def invoice_ids(session: Session, plan_id: int) -> list[str]:
    """The invoices the plan covers, in the order they joined it."""
    links = plan_links()
    return list(
        session.scalars(
            select(links.c.invoice_id)
            .where(links.c.plan_id == plan_id)
            .order_by(links.c.joined_on, links.c.invoice_id)
        )
    )


def invoice_ids_by_plan(session: Session, plan_ids: Iterable[int]) -> dict[int, list[str]]:
    """`invoice_ids` of many plans in one query, by plan id (a plan covering none is absent)."""
    ids = sorted(set(plan_ids))
    result: dict[int, list[str]] = {}
    if not ids:
        return result
    links = plan_links()
    rows = session.execute(
        select(links.c.plan_id, links.c.invoice_id)
        .where(links.c.plan_id.in_(ids))
        .order_by(links.c.plan_id, links.c.joined_on, links.c.invoice_id)
    )
    for plan_id, invoice_id in rows:
        result.setdefault(plan_id, []).append(invoice_id)
    return result


@dataclass(frozen=True)
class PlanParts:
    """A plan and everything attached to it, each list in the order it happened. All are
    read-only rows with their model's column names (the plan, an action instance, a task, a
    charge, a letter, a log entry), not ORM objects: a plan's page reads them on every view."""

    plan: Row[Any]
    policy: str
    invoice_ids: list[str] = field(default_factory=list)
    actions: list[Row[Any]] = field(default_factory=list)
    tasks: list[Row[Any]] = field(default_factory=list)
    charges: list[Row[Any]] = field(default_factory=list)
    documents: list[Row[Any]] = field(default_factory=list)
    log: list[Row[Any]] = field(default_factory=list)


# what a plan shows of its action instances: not their results (JSON) nor their leases
_ACTION_COLUMNS = ("id", "level", "action", "type", "status", "attempts", "error")


def get_parts(session: Session, plan_id: int) -> PlanParts:
    """The plan with its policy's name, its invoices, action instances, tasks, charges,
    letters and log. On PostgreSQL in one statement (`_parts_in_one`), elsewhere one per
    list."""
    if session.get_bind().dialect.name == "postgresql":
        return _parts_in_one(session, plan_id)
    return _parts_one_per_list(session, plan_id)


def _parts_one_per_list(session: Session, plan_id: int) -> PlanParts:
    policies = table_of(PolicyRow)
    plan = session.execute(
        select(_PLANS, policies.c.name.label("policy_name"))
        .join(policies, policies.c.id == _PLANS.c.policy_id)
        .where(_PLANS.c.id == plan_id)
    ).first()
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")

    def rows_of(name: str) -> list[Any]:
        table, columns = _PART_COLUMNS[name]
        query = select(*columns).where(table.c.plan_id == plan.id).order_by(table.c.id)
        return list(session.execute(query).all())

    return PlanParts(
        plan=plan,
        policy=plan.policy_name,
        # an invoice-mode plan covers its own invoice and has no link rows (plans.links)
        invoice_ids=[plan.invoice_id] if plan.invoice_id else invoice_ids(session, plan.id),
        **{name: rows_of(name) for name in _PART_COLUMNS},
    )


# the lists of a plan's parts: their tables and the columns a plan shows of them
_PART_COLUMNS: dict[str, tuple[Table, list[Column[Any]]]] = {
    name: (table, [table.c[column] for column in names] if names else list(table.c))
    for name, table, names in (
        ("actions", table_of(ActionInstance), _ACTION_COLUMNS),
        ("tasks", table_of(Task), None),
        ("charges", table_of(Charge), None),
        ("documents", table_of(Document), None),
        ("log", table_of(LogEntry), None),
    )
}


def _parts_in_one(session: Session, plan_id: int) -> PlanParts:
    """`get_parts` in one round trip: each list comes as a JSON array of arrays (PostgreSQL's
    json_agg), read back into rows with the column types' own conversions (`_reader`).
    Six statements cost the server and the API more than the rows they read (issue 11's
    benchmark)."""
    plan = session.execute(_PARTS_STATEMENT, {"plan_id": plan_id}).first()
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    mapping = plan._mapping
    lists = {
        name: [
            part(*(read(value) for read, value in zip(readers, values, strict=True)))
            for values in mapping[name] or ()
        ]
        for name, (part, readers) in _PART_ROWS.items()
    }
    return PlanParts(
        plan=plan,
        policy=plan.policy_name,
        invoice_ids=[plan.invoice_id] if plan.invoice_id else list(mapping["links"] or ()),
        **lists,
    )


def _parts_statement() -> Select[Any]:
    policies = table_of(PolicyRow)
    links = table_of(PlanInvoice)
    lists = []
    for name, (table, columns) in _PART_COLUMNS.items():
        rows = func.json_agg(aggregate_order_by(func.json_build_array(*columns), table.c.id))
        lists.append(
            select(rows).where(table.c.plan_id == _PLANS.c.id).scalar_subquery().label(name)
        )
    joined = func.json_agg(
        aggregate_order_by(links.c.invoice_id, links.c.joined_on, links.c.invoice_id)
    )
    lists.append(
        select(joined).where(links.c.plan_id == _PLANS.c.id).scalar_subquery().label("links")
    )
    return (
        select(_PLANS, policies.c.name.label("policy_name"), *lists)
        .join(policies, policies.c.id == _PLANS.c.policy_id)
        .where(_PLANS.c.id == bindparam("plan_id", type_=Integer))
    )


def _reader(column: Column[Any]) -> Callable[[Any], Any]:
    """A value of `column` as JSON gave it → as the column's type gives it to Python: JSON has
    no dates nor timestamps (ISO text), and an Amount is still the integer stored."""
    kind = column.type
    impl = kind.impl if isinstance(kind, TypeDecorator) else kind
    if isinstance(impl, DateTime):
        parse: Callable[[Any], Any] = datetime.fromisoformat
    elif isinstance(impl, Date):
        parse = date.fromisoformat
    elif isinstance(impl, Numeric) and not isinstance(impl, Integer):
        raise TypeError(f"{column}: a decimal column read from JSON would lose its digits")
    else:
        parse = _same
    if isinstance(kind, TypeDecorator):
        decorated = kind

        def read(value: Any) -> Any:
            return decorated.process_result_value(
                None if value is None else parse(value), _PG_DIALECT
            )

        return read
    return lambda value: None if value is None else parse(value)


def _same(value: Any) -> Any:
    return value


_PG_DIALECT = postgresql.dialect()
_PARTS_STATEMENT = _parts_statement()
# each list's row (a named tuple of its columns, read as a Row reads: by name and by position)
# and its columns' readers
_PART_ROWS = {
    name: (
        namedtuple(f"{name}_row", [column.name for column in columns]),  # type: ignore[misc]
        [_reader(column) for column in columns],
    )
    for name, (_table, columns) in _PART_COLUMNS.items()
}


# --- the late-invoice list ------------------------------------------------------------------

NOT_IN_PLAN = "none"  # the late-invoice list's status for an invoice no plan ever covered


@dataclass(frozen=True)
class LateFilter:
    """What the late-invoice list is narrowed to. `status`: the dunning status (a plan status,
    or NOT_IN_PLAN); days overdue count from the invoice's due date on `today`."""

    today: date
    status: str | None = None
    level: str | None = None
    policy: str | None = None
    currency: str | None = None
    customer_id: str | None = None
    search: str | None = None
    min_days_overdue: int | None = None
    max_days_overdue: int | None = None


def late_invoices(
    session: Session,
    filters: LateFilter,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> tuple[list[Row[Any]], str | None]:
    """One page of the late-invoice list (`late_query`) and the cursor of the next page
    (`before`: the page before the cursor's invoice, and the cursor of the one before it)."""
    limit = check_limit(limit)
    query = late_query(filters, cursor=cursor, limit=limit, before=before)
    return Keyset(before=before).page(
        list(session.execute(query).all()), limit, lambda row: late_key(row[0])
    )


def late_key(invoice: Invoice) -> list[str]:
    """The late-invoice list's sort key of an invoice, as its cursors hold it."""
    return [invoice.due_date.isoformat(), invoice.id]


def late_query(
    filters: LateFilter,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: bool = False,
) -> Select[Any]:
    """Every late invoice (open or partially paid, amount due left, due before `today`),
    oldest due first, each with its dunning status: the latest plan that covers it (its id,
    status, level, policy, next step date), or none. One query, led by the partial index
    ix_invoices_late (0009_ops): the page is read in due-date order without touching the paid
    invoices, and each row finds its plan through the plans' invoice index and
    plan_invoices. Rows: (invoice, customer_name, plan_id, plan_status, level, policy,
    next_step_on). `before`: the rows before the cursor's, nearest first (`Keyset`)."""
    keyset = Keyset(before=before)
    today = filters.today
    # the latest plan covering the invoice: its own (invoice mode) or one it was linked to
    # (customer mode); one correlated subquery, two index lookups per invoice
    links = plan_links()
    latest = (
        select(func.max(links.c.plan_id)).where(links.c.invoice_id == Invoice.id).scalar_subquery()
    )
    late = select(
        Invoice.id.label("invoice_id"),
        Invoice.due_date.label("due_date"),
        latest.label("plan_id"),
    ).where(
        # ix_invoices_late's predicate, as literals: a bound parameter would keep a prepared
        # statement's generic plan from proving that the partial index covers the rows
        text(f"invoices.{LATE_INVOICE.replace(' AND ', ' AND invoices.')}"),
        Invoice.due_date < today,
    )
    if filters.status == NOT_IN_PLAN:  # an anti-join, not the subquery on every late invoice
        late = late.where(
            ~select(Plan.id).where(Plan.invoice_id == Invoice.id).exists(),
            ~select(PlanInvoice.id).where(PlanInvoice.invoice_id == Invoice.id).exists(),
        )
    if filters.currency:
        late = late.where(Invoice.currency == filters.currency.upper())
    if filters.customer_id:
        late = late.where(Invoice.customer_id == filters.customer_id)
    if filters.min_days_overdue is not None:
        late = late.where(Invoice.due_date <= today - timedelta(days=filters.min_days_overdue))
    if filters.max_days_overdue is not None:
        late = late.where(Invoice.due_date >= today - timedelta(days=filters.max_days_overdue))
    if filters.search:
        words = filters.search.strip().lower()
        # the customers whose name matches, found once (a hashed subplan), rather than each
        # late invoice's customer looked up to test its name
        named = select(Customer.id).where(
            func.lower(Customer.name).contains(words, autoescape=True)
        )
        late = late.where(
            or_(
                func.lower(Invoice.id).contains(words, autoescape=True),
                func.lower(Invoice.number).contains(words, autoescape=True),
                Invoice.customer_id.in_(named),
            )
        )
    if cursor is not None:
        key = decode_cursor(cursor, "starting_after")
        try:
            due, last_id = date.fromisoformat(key[0]), str(key[1])
        except (IndexError, TypeError, ValueError):
            raise InvalidInput(
                "{field}: not a cursor this list gave out", field="starting_after"
            ) from None
        late = late.where(keyset.past(tuple_(Invoice.due_date, Invoice.id), tuple_(due, last_id)))
    plan_filtered = bool((filters.status and filters.status != NOT_IN_PLAN) or filters.level)
    if not (plan_filtered or filters.policy):
        # the page is known before any plan is looked up: sorted and cut here, so the plans of
        # 26 invoices are joined, not of every match (a search's matches are misestimated)
        late = late.order_by(*keyset.order(Invoice.due_date, Invoice.id)).limit(limit + 1)
    sub = late.subquery("late")
    query = (
        select(
            Invoice,
            Customer.name,
            sub.c.plan_id,
            Plan.status,
            Plan.level,
            PolicyRow.name,
            Plan.next_step_on,
        )
        .join(Invoice, Invoice.id == sub.c.invoice_id)
        .join(Customer, Customer.id == Invoice.customer_id)
        .outerjoin(Plan, Plan.id == sub.c.plan_id)
        .outerjoin(PolicyRow, PolicyRow.id == Plan.policy_id)
        .options(lazyload(Invoice.customer))  # the name comes with the row, not a join more
        .order_by(*keyset.order(sub.c.due_date, sub.c.invoice_id))
        .limit(limit + 1)
    )
    if filters.status and filters.status != NOT_IN_PLAN:  # none: filtered in `late` above
        query = query.where(Plan.status == filters.status)
    if filters.level:
        query = query.where(Plan.level == filters.level)
    if filters.policy:
        query = query.where(PolicyRow.name == filters.policy)
    return query


def late_cursor(session: Session, invoice_id: str) -> list[str]:
    """The late-invoice list's sort key of an invoice (for `starting_after=<invoice id>`)."""
    found = session.get(Invoice, invoice_id)
    if found is None:
        raise NotFound(f"invoice {invoice_id} not found")
    return late_key(found)


# --- what closing a plan reads -------------------------------------------------------------


def unfinished_instances_locked(session: Session, plan_id: int) -> Sequence[ActionInstance]:
    """The plan's unfinished action instances, locked FOR UPDATE: one a worker is executing is
    waited for, and its status read again once it is done."""
    return session.scalars(
        select(ActionInstance)
        .where(ActionInstance.plan_id == plan_id, ActionInstance.is_unfinished)
        .with_for_update()
    ).all()


def has_unfinished_instance(session: Session, plan_id: int) -> bool:
    unfinished = session.scalar(
        select(ActionInstance.id)
        .where(ActionInstance.plan_id == plan_id, ActionInstance.is_unfinished)
        .limit(1)
    )
    return unfinished is not None


def unrestored_status_changes(session: Session, plan_id: int) -> Sequence[StatusChange]:
    """The account status changes this plan made and did not give back yet, oldest first."""
    return session.scalars(
        select(StatusChange)
        .where(StatusChange.plan_id == plan_id, StatusChange.restored_at.is_(None))
        .order_by(StatusChange.id)
    ).all()


def other_open_status_change(session: Session, plan: Plan) -> int | None:
    """The id of a status change of the plan's customer still held by another open plan."""
    return session.scalar(
        select(StatusChange.id)
        .join(Plan, Plan.id == StatusChange.plan_id)
        .where(
            StatusChange.customer_id == plan.customer_id,
            StatusChange.plan_id != plan.id,
            StatusChange.restored_at.is_(None),
            Plan.is_open,
        )
        .limit(1)
    )


def customer_of(session: Session, plan: Plan) -> Customer | None:
    return session.get(Customer, plan.customer_id)


def policy_of(session: Session, plan: Plan) -> PolicyRow | None:
    """The plan's policy; its levels are read when asked for (the threshold of R8 needs none)."""
    return session.get(PolicyRow, plan.policy_id, options=[lazyload(PolicyRow.levels)])


def invoice(session: Session, invoice_id: str) -> Invoice | None:
    return session.get(Invoice, invoice_id, options=[lazyload(Invoice.customer)])


def invoices(session: Session, invoice_ids: Collection[str]) -> Sequence[Invoice]:
    """The invoices (their customers are not joined: closing reads none)."""
    return session.scalars(
        select(Invoice).options(lazyload(Invoice.customer)).where(Invoice.id.in_(invoice_ids))
    ).all()


def open_invoices_of_account(
    session: Session, customer_id: str, currency: str
) -> Sequence[Row[Any]]:
    """The open invoices of a customer in a currency, each with the plan covering it (or None):
    (id, due_date, currency, amount_due, type, status, disputed, plan_id)."""
    links = plan_links()
    return session.execute(
        select(
            Invoice.id,
            Invoice.due_date,
            Invoice.currency,
            Invoice.amount_due,
            Invoice.type,
            Invoice.status,
            Invoice.disputed,
            links.c.plan_id,
        )
        .outerjoin(links, links.c.invoice_id == Invoice.id)
        .where(
            Invoice.customer_id == customer_id,
            Invoice.currency == currency,
            Invoice.is_open,
        )
    ).all()


# --- what a promise reads ------------------------------------------------------------------


def promised(session: Session, plan_ids: Collection[int]) -> Sequence[Row[Any]]:
    """The plans among these paused on a promise: (id, promise_made_on, pause_until,
    promise_amount, balance, currency)."""
    return session.execute(
        select(
            Plan.id,
            Plan.promise_made_on,
            Plan.pause_until,
            Plan.promise_amount,
            Plan.balance,
            Plan.currency,
        ).where(Plan.id.in_(plan_ids), Plan.pause_reason == PROMISE_PAUSE_REASON)
    ).all()


def paid_toward_promises(session: Session, plan_ids: Collection[int]) -> dict[int, Decimal]:
    """By plan paused on a promise: the payments on its invoices dated from the day the
    promise was made to its date."""
    links = plan_links()
    paid: dict[int, Decimal] = {}
    for plan_id, total in session.execute(
        select(links.c.plan_id, func.sum(PaymentAllocation.amount))
        .join(PaymentAllocation, PaymentAllocation.invoice_id == links.c.invoice_id)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .join(Plan, Plan.id == links.c.plan_id)
        .where(
            links.c.plan_id.in_(plan_ids),
            Plan.pause_reason == PROMISE_PAUSE_REASON,
            Payment.date >= Plan.promise_made_on,
            Payment.date <= Plan.pause_until,
        )
        .group_by(links.c.plan_id)
    ):
        paid[plan_id] = Decimal(total or 0)
    return paid


__all__ = [
    "NOT_IN_PLAN",
    "LateFilter",
    "PlanParts",
    "customer_of",
    "ended_unrecovered_for_invoices",
    "find",
    "find_bare",
    "get_or_not_found",
    "get_parts",
    "has_unfinished_instance",
    "invoice",
    "invoice_ids",
    "invoices",
    "is_loaded",
    "late_cursor",
    "late_invoices",
    "late_query",
    "list_plans",
    "open_for_customers",
    "open_for_invoices",
    "open_invoices_of_account",
    "other_open_status_change",
    "over_invoices",
    "page",
    "paid_toward_promises",
    "plan_days_overdue",
    "policy_of",
    "promised",
    "unfinished_instances_locked",
    "unrestored_status_changes",
]
