"""Customers: importing them (SPEC §5, R2, R3, R12), and their accounts as a finance team looks
them up: the list with what each owes and how many plans dun it, and one account with its status
(and which plan changed it, from what), plans, open invoices, charges and recent log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from recoup.book import repository
from recoup.book.imports import (
    ImportReport,
    Progress,
    Rows,
    as_table,
    did_you_mean,
    parse,
    recheck,
)
from recoup.book.repository import chunks
from recoup.book.rows import CUSTOMER_COLUMNS, CustomerIn, RowError, parse_customer
from recoup.domain.enums import CANCELLED_ACCOUNT_STATUS
from recoup.domain.money import round_money
from recoup.models import Charge, Customer, Invoice, LogEntry, Plan, StatusChange

# Customer fields that decide eligibility and policy (R2, R3).
CUSTOMER_FIELDS_THAT_MATTER = frozenset(
    {
        "excluded",
        "status",
        "policy",
        "category",
        "country",
        "currency",
        "is_company",
        "payment_method",
        "attributes",
    }
)

CUSTOMER_DEFAULTS: dict[str, Any] = {
    "email": None,
    "phone": None,
    "language": None,
    "country": None,
    "currency": None,
    "category": None,
    "is_company": False,
    "payment_method": None,
    "policy": None,
    "status": "active",
    "excluded": False,
    "address": None,
}


# --- accounts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerSummary:
    customer: Customer
    balances: dict[str, Decimal]  # open invoices' amount due, per currency
    open_plans: int

    # What recoup.book.schemas.CustomerRead shows: the customer's own fields, and
    @property
    def id(self) -> str:
        return self.customer.id

    @property
    def name(self) -> str:
        return self.customer.name

    @property
    def status(self) -> str:
        return self.customer.status

    @property
    def email(self) -> str | None:
        return self.customer.email

    @property
    def phone(self) -> str | None:
        return self.customer.phone

    @property
    def excluded(self) -> bool:
        return self.customer.excluded

    # ... what is owed: `balance` in the customer's currency (or the one currency it owes in);
    # `balances` has every currency.
    @property
    def currency(self) -> str | None:
        if self.customer.currency:
            return self.customer.currency
        return next(iter(self.balances)) if len(self.balances) == 1 else None

    @property
    def balance(self) -> Decimal | None:
        currency = self.currency
        if not currency:
            return None
        return round_money(self.balances.get(currency, Decimal(0)), currency)


@dataclass(frozen=True)
class CustomerDetail:
    summary: CustomerSummary
    status_changes: list[StatusChange] = field(default_factory=list)  # newest first
    # the business date the status still held was set (its `status_changed` log entry)
    status_set_on: date | None = None
    plans: list[Plan] = field(default_factory=list)
    open_invoices: list[Invoice] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)  # the latest entries, oldest first


def summaries(session: Session, customers: Sequence[Customer]) -> list[CustomerSummary]:
    ids = [c.id for c in customers]
    balances = repository.balances(session, ids)
    plans = repository.open_plan_counts(session, ids)
    return [CustomerSummary(c, dict(balances.get(c.id, {})), plans.get(c.id, 0)) for c in customers]


def list_customers(
    session: Session,
    *,
    status: str | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 1000,
    before: bool = False,
) -> tuple[list[CustomerSummary], str | None]:
    """Customers by id, with what they owe; `search` looks in the id, name, email and phone;
    `before`: the page before the cursor's customer."""
    customers, next_cursor = repository.list_customers(
        session, status=status, search=search, cursor=cursor, limit=limit, before=before
    )
    return summaries(session, customers), next_cursor


def customer_detail(session: Session, customer_id: str, *, log_limit: int = 20) -> CustomerDetail:
    customer = repository.get_customer_or_not_found(session, customer_id)
    (summary,) = summaries(session, [customer])
    changes = repository.status_changes(session, customer_id)
    held = [c for c in changes if c.restored_at is None]
    set_on = repository.status_set_on(session, customer_id, held[-1].plan_id) if held else None
    return CustomerDetail(
        summary,
        changes,
        set_on,
        repository.plans_of_customer(session, customer_id),
        repository.open_invoices_of_customer(session, customer_id),
        repository.charges_of_customer(session, customer_id),
        repository.latest_log_of_customer(session, customer_id, log_limit),
    )


# --- import --------------------------------------------------------------------------------------


def import_customers(
    session: Session,
    rows: Rows,
    *,
    actor: str | None = None,
    on: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Create or update customers by id. Columns left out of the file keep their stored value;
    extra columns become `attributes` (an empty cell removes that attribute). A `policy` must
    name a policy that exists, a `status` be one dunning knows (or the one the customer has)."""
    table = as_table(rows)
    batch = parse("customers", table, parse_customer, progress)
    values: list[CustomerIn] = batch.values
    batch.errors.extend(_check_customer_refs(session, values))
    if batch.errors:
        raise batch.refused()
    report = ImportReport("customers", rows=batch.total)
    extra = [c for c in table.header if c and c not in CUSTOMER_COLUMNS]
    if extra:
        report.warnings.append(
            "kept as attributes: " + ", ".join(c + did_you_mean(c, CUSTOMER_COLUMNS) for c in extra)
        )
    if progress:
        progress("writing", 0, len(values))
    done = 0
    matter: set[str] = set()
    for chunk in chunks(values):
        existing = repository.customers_by_id(session, (v.id for v in chunk))
        creates: list[dict[str, Any]] = []
        for value in chunk:
            current = existing.get(value.id)
            if current is None:
                creates.append(_new_customer(value))
            elif _update_customer(current, value, matter):
                report.updated += 1
            else:
                report.unchanged += 1
        if creates:
            session.execute(insert(Customer), creates)
            report.created += len(creates)
        session.flush()
        done += len(chunk)
        if progress:
            progress("writing", done, len(values))
    if matter:
        report.rechecked = recheck(session, repository.open_invoice_ids(session, matter))
    session.flush()
    return report


def known_statuses(session: Session) -> list[str]:
    """Account statuses a customer may have: `active`, `cancelled` and those some
    change_account_status action sets (R12)."""
    return sorted(
        {"active", CANCELLED_ACCOUNT_STATUS} | repository.statuses_set_by_actions(session)
    )


def _check_customer_refs(session: Session, values: Sequence[CustomerIn]) -> list[RowError]:
    """A policy that does not exist would leave the customer undunned without a word (R3);
    a status nothing sets is a typo of one that would have mattered (R2, R12)."""
    errors: list[RowError] = []
    wanted = {v.fields["policy"] for v in values if v.fields.get("policy")}
    if wanted:
        policies = repository.policy_names(session)
        listed = (
            f"the policies are {', '.join(policies)}" if policies else "no policy is configured yet"
        )
        for value in values:
            name = value.fields.get("policy")
            if name and name not in policies:
                errors.append(
                    RowError(
                        value.line,
                        "policy",
                        f"{name!r} is not a policy{did_you_mean(name, policies)}; {listed}",
                    )
                )
    statuses = known_statuses(session)
    unknown = {v.id: v for v in values if v.fields.get("status") not in (None, *statuses)}
    if unknown:
        current = repository.customer_statuses(session, unknown)
        for customer_id, value in unknown.items():
            status = value.fields["status"]
            if current.get(customer_id) == status:
                continue  # stored before statuses were checked: left as it is
            errors.append(
                RowError(
                    value.line,
                    "status",
                    f"{status!r} is not a known account status{did_you_mean(status, statuses)}; "
                    f"known: {', '.join(statuses)} (a status is known once a "
                    "change_account_status action sets it)",
                )
            )
    return errors


def _new_customer(value: CustomerIn) -> dict[str, Any]:
    row = {"id": value.id, **CUSTOMER_DEFAULTS, **value.fields}
    row["attributes"] = {k: v for k, v in value.attributes.items() if v is not None}
    return row


def _update_customer(current: Customer, value: CustomerIn, matter: set[str]) -> bool:
    changed: set[str] = set()
    for name, new in value.fields.items():
        if getattr(current, name) != new:
            setattr(current, name, new)
            changed.add(name)
    if value.attributes:
        attributes = dict(current.attributes or {})
        for key, new in value.attributes.items():
            if new is None:
                attributes.pop(key, None)
            else:
                attributes[key] = new
        if attributes != (current.attributes or {}):
            current.attributes = attributes
            changed.add("attributes")
    if changed & CUSTOMER_FIELDS_THAT_MATTER:
        matter.add(current.id)
    return bool(changed)


__all__ = [
    "CustomerDetail",
    "CustomerSummary",
    "customer_detail",
    "import_customers",
    "known_statuses",
    "list_customers",
    "summaries",
]
