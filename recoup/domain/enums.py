"""Closed vocabularies of the product (SPEC §1, §3). Values are the public contract."""

from enum import StrEnum


class Mode(StrEnum):
    invoice = "invoice"
    customer = "customer"


class CatchUp(StrEnum):
    latest = "latest"
    all = "all"


class Transition(StrEnum):
    days_overdue = "days_overdue"
    days_overdue_and_balance = "days_overdue_and_balance"


class Channel(StrEnum):
    email = "email"
    letter = "letter"
    sms = "sms"


class ActionType(StrEnum):
    send_email = "send_email"
    send_letter = "send_letter"
    send_sms = "send_sms"
    late_fee_fixed = "late_fee_fixed"
    late_fee_percent = "late_fee_percent"
    interest = "interest"
    change_account_status = "change_account_status"
    retry_payment = "retry_payment"
    webhook = "webhook"
    manual = "manual"


class ActionMode(StrEnum):
    automatic = "automatic"
    manual = "manual"


class InvoiceStatus(StrEnum):
    open = "open"
    partially_paid = "partially_paid"
    paid = "paid"
    cancelled = "cancelled"


# an invoice the customer still owes something on (R2); paid and cancelled ones are settled
OPEN_INVOICE_STATUSES = frozenset({InvoiceStatus.open, InvoiceStatus.partially_paid})
OPEN_INVOICE_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in OPEN_INVOICE_STATUSES))


class PlanStatus(StrEnum):
    active = "active"
    paused = "paused"
    recovered = "recovered"
    unrecovered = "unrecovered"
    stopped = "stopped"

    @property
    def is_final(self) -> bool:
        return self in FINAL_PLAN_STATUSES


FINAL_PLAN_STATUSES = frozenset({PlanStatus.recovered, PlanStatus.unrecovered, PlanStatus.stopped})
# the pause reason of a plan paused because its invoice is disputed (R9)
DISPUTE_REASON = "dispute"
OPEN_PLAN_STATUSES = frozenset({PlanStatus.active, PlanStatus.paused})
# the stored texts, for SQL (`Plan.is_open` and `Invoice.is_open` in recoup/models.py use them)
OPEN_PLAN_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in OPEN_PLAN_STATUSES))


class InstanceStatus(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


UNFINISHED_INSTANCE_STATUSES = frozenset({InstanceStatus.pending, InstanceStatus.running})
UNFINISHED_INSTANCE_VALUES: tuple[str, ...] = tuple(
    sorted(s.value for s in UNFINISHED_INSTANCE_STATUSES)
)


class TaskStatus(StrEnum):
    open = "open"
    claimed = "claimed"
    completed = "completed"
    cancelled = "cancelled"


OPEN_TASK_STATUSES = frozenset({TaskStatus.open, TaskStatus.claimed})
OPEN_TASK_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in OPEN_TASK_STATUSES))


class ChargeStatus(StrEnum):
    open = "open"  # owed, not yet handed to the billing system
    exported = "exported"  # acknowledged by the billing system
    waived = "waived"  # forgiven by a person, with a reason: no longer owed


class Event(StrEnum):
    reminder_sent = "reminder_sent"
    plan_opened = "plan_opened"
    level_reached = "level_reached"
    level_skipped = "level_skipped"
    action_queued = "action_queued"
    action_done = "action_done"
    action_failed = "action_failed"
    action_skipped = "action_skipped"
    action_cancelled = "action_cancelled"
    action_retry = "action_retry"
    task_created = "task_created"
    task_claimed = "task_claimed"
    task_completed = "task_completed"
    task_cancelled = "task_cancelled"
    task_released = "task_released"  # claimed back to open, for someone else to take
    payment_recorded = "payment_recorded"
    plan_paused = "plan_paused"
    promise_made = "promise_made"  # a promise to pay pauses the plan until its date (R10)
    promise_broken = "promise_broken"  # not paid by then: the plan resumes and escalates
    plan_resumed = "plan_resumed"
    plan_stopped = "plan_stopped"
    plan_recovered = "plan_recovered"
    plan_unrecovered = "plan_unrecovered"
    status_changed = "status_changed"
    status_restored = "status_restored"
    charge_created = "charge_created"
    charge_waived = "charge_waived"
    charge_exported = "charge_exported"
    config_changed = "config_changed"
    invoice_joined = "invoice_joined"
    # the book written over the API (an import logs its rows' effects, not the rows)
    customer_created = "customer_created"
    customer_changed = "customer_changed"
    invoice_created = "invoice_created"
    invoice_changed = "invoice_changed"
    invoice_pdf_stored = "invoice_pdf_stored"
    book_imported = "book_imported"  # a batch: its kind and counts
    invoice_disputed = "invoice_disputed"
    invoice_undisputed = "invoice_undisputed"
    run_started = "run_started"
    run_finished = "run_finished"
    payment_retry_failed = "payment_retry_failed"  # the billing system could not collect
    webhook_failed = "webhook_failed"  # an outgoing event delivery attempt failed
    webhook_redelivered = "webhook_redelivered"  # a person queued a delivery again
    # a channel's server could not be reached: its due actions wait (details: channel,
    # reason, error, retry_at, instances); logged once per batch, not per action
    channel_down = "channel_down"


class WebhookEvent(StrEnum):
    """Events configured endpoints can subscribe to (SPEC §5 "webhooks out")."""

    plan_opened = "plan_opened"
    plan_closed = "plan_closed"  # recovered, unrecovered or stopped: the final status is sent
    level_reached = "level_reached"
    charge_created = "charge_created"
    charge_waived = "charge_waived"
    status_changed = "status_changed"
    task_created = "task_created"


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


SYSTEM_ACTOR = "system"
PROMISE_PAUSE_REASON = "promise"  # the pause reason of a promise to pay (R10)
CANCELLED_ACCOUNT_STATUS = "cancelled"
