"""SQLAlchemy models for everything in SPEC §1. Tables plural; statuses stored as their values."""

from __future__ import annotations

import base64
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from recoup.core.clock import utc_now
from recoup.core.db import Amount, Base, UTCDateTime
from recoup.domain.defaults import (
    DEFAULT_CATCH_UP,
    DEFAULT_INVOICE_TYPES,
    DEFAULT_MAX_LEVELS,
    DEFAULT_MODE,
    DEFAULT_TIMEZONE,
    SETTINGS_ID,
)
from recoup.domain.enums import (
    OPEN_INVOICE_VALUES,
    OPEN_PLAN_VALUES,
    OPEN_TASK_VALUES,
    UNFINISHED_INSTANCE_VALUES,
)


def _is_in(values: tuple[str, ...]) -> Any:
    """A status test written once for Python and SQL: `plan.is_open` on a loaded row,
    `select(Plan).where(Plan.is_open)` in a query."""

    def python(self: Any) -> bool:
        return self.status in values

    def sql(cls: Any) -> Any:
        return cls.status.in_(values)

    prop = hybrid_property(python)
    return prop.expression(sql)


# --- configuration -------------------------------------------------------------------------


class SettingsRow(Base):
    __tablename__ = "settings"

    # One row (id 1), created with the SPEC's defaults by the migrations (0007_settings_row).
    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=SETTINGS_ID)
    mode: Mapped[str] = mapped_column(String(16), default=DEFAULT_MODE.value)
    invoice_types: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(DEFAULT_INVOICE_TYPES)
    )
    customer_balance: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    max_levels: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_LEVELS)
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    catch_up: Mapped[str] = mapped_column(String(16), default=DEFAULT_CATCH_UP.value)
    company: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)


class TemplateRow(Base):
    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("code", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ActionRow(Base):
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16), default="automatic")
    role: Mapped[str | None] = mapped_column(String(100), nullable=True)
    instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)


class PolicyRow(Base):
    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, unique=True)
    min_balance: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    attach_invoice: Mapped[bool] = mapped_column(Boolean, default=False)
    transition: Mapped[str] = mapped_column(String(32), default="days_overdue")
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    levels: Mapped[list[LevelRow]] = relationship(
        back_populates="policy",
        order_by="LevelRow.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class LevelRow(Base):
    __tablename__ = "levels"
    __table_args__ = (UniqueConstraint("policy_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(100))
    days: Mapped[int] = mapped_column(Integer)
    reminder: Mapped[bool] = mapped_column(Boolean, default=False)
    end: Mapped[bool] = mapped_column(Boolean, default=False)
    min_balance: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    deadline_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # `deadline`
    # Action codes in order; actions are referenced by code like in the YAML file.
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)

    policy: Mapped[PolicyRow] = relationship(back_populates="levels")


# --- the book ------------------------------------------------------------------------------


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(50), nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    category: Mapped[str | None] = mapped_column(String(100), nullable=True)
    is_company: Mapped[bool] = mapped_column(Boolean, default=False)
    payment_method: Mapped[str | None] = mapped_column(String(50), nullable=True)
    policy: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(50), default="active")
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)


# an invoice still owed (ix_invoices_late's predicate; recoup.plans.repository.late_query)
LATE_INVOICE = "status IN ('open', 'partially_paid') AND amount_due > 0"


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_customer_currency", "customer_id", "currency"),
        # the late-invoice list (0009_ops): invoices still owed, in due-date order; the paid
        # majority of an old book is not in it
        Index(
            "ix_invoices_late",
            "due_date",
            "id",
            postgresql_where=text(LATE_INVOICE),
            sqlite_where=text(LATE_INVOICE),
        ),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    number: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(50), default="commercial")
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Amount)
    amount_due: Mapped[Decimal] = mapped_column(Amount)
    status: Mapped[str] = mapped_column(String(20), default="open")
    is_open = _is_in(OPEN_INVOICE_VALUES)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    pdf_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)

    customer: Mapped[Customer] = relationship(lazy="joined")


class InvoiceCheck(Base):
    """R15: the next business date the run must look at an invoice outside a plan (a
    reminder, the opening of a plan); no row when nothing can happen until it changes.
    Its own narrow table: the run moves or clears 100,000 of these dates on a first run,
    and on PostgreSQL changing an indexed column of `invoices` would rewrite every index
    of that wide table, where deleting a row here writes none."""

    __tablename__ = "invoice_checks"

    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    check_on: Mapped[date] = mapped_column(Date, index=True)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), nullable=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class PaymentAllocation(Base):
    """How a payment was spread over invoices (R8: oldest due first when it names none)."""

    __tablename__ = "payment_allocations"
    __table_args__ = (UniqueConstraint("payment_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)


# --- dunning -------------------------------------------------------------------------------


class Plan(Base):
    """A collection plan: one per invoice (invoice mode) or per (customer, currency)."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The run writes plans in bulk from the customer and invoice rows it has just read, and
    # customers and invoices are never deleted: foreign keys here would only cost (each is a
    # lookup and a row lock per plan on PostgreSQL). The policy keeps its foreign key: a
    # policy can be deleted, and the database refuses it while plans follow it (R14).
    customer_id: Mapped[str] = mapped_column(String(100), index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    mode: Mapped[str] = mapped_column(String(16))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    is_open = _is_in(OPEN_PLAN_VALUES)
    level: Mapped[str | None] = mapped_column(String(100), nullable=True)
    balance: Mapped[Decimal] = mapped_column(Amount)
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    anchor_date: Mapped[date] = mapped_column(Date)  # due date (customer mode: oldest overdue)
    paused_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    pause_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pause_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    paused_days: Mapped[int] = mapped_column(Integer, default=0)
    # a promise to pay (R10, pause reason `promise`): the amount promised (the balance when
    # none was named) and the business date it was made; payments from then count toward it
    promise_amount: Mapped[Decimal | None] = mapped_column(Amount, nullable=True)
    promise_made_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # R15: the next business date the run must look at this plan; NULL: waiting on people.
    next_step_on: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    # "inv:<id>" or "cust:<id>:<currency>" while the plan is open, NULL once final: the
    # database refuses a second open plan for the same debt.
    open_key: Mapped[str | None] = mapped_column(String(250), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)

    policy: Mapped[PolicyRow] = relationship(lazy="joined")


class PlanInvoice(Base):
    """Invoices covered by a plan (one in invoice mode; those joining in customer mode)."""

    __tablename__ = "plan_invoices"
    __table_args__ = (UniqueConstraint("plan_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))  # led by the unique index
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    joined_on: Mapped[date] = mapped_column(Date)


class ActionInstance(Base):
    """An action due on a plan (or, for reminders, on an invoice). `key` is the idempotency
    key: unique per (plan or invoice, level, action), so no step can ever be queued twice."""

    __tablename__ = "action_instances"
    __table_args__ = (
        Index("ix_action_instances_status_next", "status", "next_attempt_at"),
        # only reminders (no plan) are looked up by invoice: the run's R9 bookkeeping
        Index(
            "ix_action_instances_reminders",
            "invoice_id",
            sqlite_where=text("plan_id IS NULL"),
            postgresql_where=text("plan_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    # The plan (none for a reminder) and copies of its references, written by the run in bulk
    # from rows it has just read and never changed (R14). No foreign keys: checking four per
    # row doubled what PostgreSQL spends on a first run (R15); plans, customers and invoices
    # are never deleted, and a policy in use cannot be (R14).
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    customer_id: Mapped[str] = mapped_column(String(100))
    policy_id: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    is_unfinished = _is_in(UNFINISHED_INSTANCE_VALUES)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # the process executing it died (or hung past its lease) before recording an outcome
    crashes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # its channel's server unreachable, in a row: these do not use up attempts
    transport_failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_on: Mapped[date] = mapped_column(Date)  # the business date it was queued for
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), nullable=True, index=True)
    action_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_instances.id"), nullable=True, unique=True
    )
    level: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action: Mapped[str | None] = mapped_column(String(100), nullable=True)
    role: Mapped[str] = mapped_column(String(100))
    instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    is_open = _is_in(OPEN_TASK_VALUES)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Charge(Base):
    """A late fee or interest owed; unique per action instance so a fee is charged once."""

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_instance_id: Mapped[int] = mapped_column(ForeignKey("action_instances.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), nullable=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), nullable=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    service: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))  # the action type that created it
    created_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # open (owed), exported (acknowledged by the billing system), waived (by a person)
    status: Mapped[str] = mapped_column(String(20), default="open", server_default="open")
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    waived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    waived_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    waived_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class StatusChange(Base):
    """An account status set by a plan, remembered so it can be restored (R12)."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_instances.id"), nullable=True, unique=True
    )
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    previous_status: Mapped[str] = mapped_column(String(50))
    new_status: Mapped[str] = mapped_column(String(50))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Document(Base):
    """A generated letter; one per action instance (a retry finds it instead of adding one)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), nullable=True, index=True)
    action_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("action_instances.id"), nullable=True, unique=True
    )
    kind: Mapped[str] = mapped_column(String(32), default="letter")
    path: Mapped[str] = mapped_column(Text)
    invoice_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    execute: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="running")
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(200), default="system")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # progress while it works (0009_ops): the phase, and its units done of its total
    phase: Mapped[str | None] = mapped_column(String(40), nullable=True)
    units_done: Mapped[int | None] = mapped_column(Integer, nullable=True)
    units_total: Mapped[int | None] = mapped_column(Integer, nullable=True)


class LogEntry(Base):
    """Append-only history (R14)."""

    __tablename__ = "log_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    on: Mapped[date | None] = mapped_column(Date, nullable=True)
    event: Mapped[str] = mapped_column(String(40))  # filtered while scanning by id: no index
    actor: Mapped[str] = mapped_column(String(200), default="system")
    customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    level: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action: Mapped[str | None] = mapped_column(String(100), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- outgoing events (SPEC §5 "webhooks out") ----------------------------------------------


class WebhookEndpoint(Base):
    """A configured endpoint (the policies file's `webhooks:`). It receives the subscribed
    events logged after `start_log_id` (the log's end when it was added); `cursor_log_id` is
    how far the log has been scanned for it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(1000), unique=True)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    start_log_id: Mapped[int] = mapped_column(Integer, default=0)
    cursor_log_id: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    # issue 11: the endpoint's own signing secret (Standard Webhooks `whsec_…`), kept as is
    # because HMAC signing needs it; after a rotation the previous one also signs until
    # `previous_secret_expires_at`
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    secret: Mapped[str] = mapped_column(String(100), default=lambda: new_webhook_secret())
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes (the default of
    every endpoint, however it is created: the policies file or the API)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class WebhookDelivery(Base):
    """One event for one endpoint, and how its delivery went: the delivery log. Unique per
    (endpoint url, log entry) so an event is delivered once per endpoint."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("url", "log_entry_id"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(1000))
    event: Mapped[str] = mapped_column(String(40))
    log_entry_id: Mapped[int] = mapped_column(ForeignKey("log_entries.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the endpoint it is for (issue 11); no foreign key: the delivery log outlives its endpoint
    endpoint_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


# --- API keys (issue 11) -------------------------------------------------------------------------


class ApiKey(Base):
    """A key of the REST API: its name (the actor its writes are logged as), its role, and the
    SHA-256 of the key (the key itself is shown once and never stored); `prefix` is what the
    listing shows to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- idempotency (issue 11, SPEC §6) -------------------------------------------------------------


class IdempotencyKey(Base):
    """A POST sent with an `Idempotency-Key`: reserved (in flight: no `status_code` yet) in its
    own committed transaction before the request runs, then its answer, replayed for 24 hours.
    The database keeps one per (API key, idempotency key), so two requests at once cannot both
    run. `fingerprint` is the SHA-256 of the method, path and body: the same key with another
    request is refused."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


# --- people of the back office (issue 12) --------------------------------------------------------


class User(Base):
    """A person who logs in to the back office: the name is the actor of what they write in the
    log, the email what they log in with, the role one of recoup.core.roles.Role (the API's),
    and `task_roles` the roles of tasks (a policy action's `role:`) whose work they take."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    task_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebSession(Base):
    """A logged-in browser: the cookie holds a random token, this row its SHA-256 (a stolen
    table opens no session); `csrf_token` goes in every form of the session's pages."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginAttempt(Base):
    """A failed login, by the email typed (a user's or not: unknown emails are throttled too,
    and no user is made for them). The failures of the last minutes refuse the next attempts;
    older rows are deleted as logins come (recoup.users.service.attempt_login)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_email_attempted_at", "email", "attempted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
