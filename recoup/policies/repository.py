"""Every query of the policies feature: settings, templates, actions, policies and their levels,
webhook endpoints, and what in the database refers to them (R14).

Rows come back as they are stored; `recoup.policies.document` turns them into domain values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from recoup.core.db import hold_write_lock
from recoup.core.errors import NotFound
from recoup.domain.defaults import SETTINGS_ID
from recoup.domain.enums import Mode
from recoup.domain.validation import ConfigUsage, Usage
from recoup.models import (
    ActionInstance,
    ActionRow,
    Customer,
    Invoice,
    LevelRow,
    Plan,
    PlanInvoice,
    PolicyRow,
    SettingsRow,
    TemplateRow,
    WebhookEndpoint,
)

# A usage lists the first few plans by id, to name them in a refusal.
LISTED_PLAN_IDS = 5


# --- lists ---------------------------------------------------------------------------------


def settings_row(session: Session) -> SettingsRow | None:
    """The settings row as it is (None on a database not migrated yet); never writes."""
    return session.get(SettingsRow, SETTINGS_ID)


def list_templates(session: Session) -> Sequence[TemplateRow]:
    """In the file's order."""
    return session.scalars(select(TemplateRow).order_by(TemplateRow.position, TemplateRow.id)).all()


def list_actions(session: Session) -> Sequence[ActionRow]:
    """In the file's order."""
    return session.scalars(select(ActionRow).order_by(ActionRow.position, ActionRow.id)).all()


def list_policies(session: Session) -> Sequence[PolicyRow]:
    """By priority (their levels come along, in order)."""
    return session.scalars(select(PolicyRow).order_by(PolicyRow.priority)).all()


def list_webhooks(session: Session) -> Sequence[WebhookEndpoint]:
    """In the file's order."""
    return session.scalars(
        select(WebhookEndpoint).order_by(WebhookEndpoint.position, WebhookEndpoint.id)
    ).all()


# --- every row, keyed by the caller (applying a configuration) --------------------------


def template_rows(session: Session) -> Sequence[TemplateRow]:
    return session.scalars(select(TemplateRow)).all()


def action_rows(session: Session) -> Sequence[ActionRow]:
    return session.scalars(select(ActionRow)).all()


def policy_rows(session: Session) -> Sequence[PolicyRow]:
    return session.scalars(select(PolicyRow)).all()


def webhook_rows(session: Session) -> Sequence[WebhookEndpoint]:
    return session.scalars(select(WebhookEndpoint)).all()


# --- one row -------------------------------------------------------------------------------


def get_policy_or_not_found(session: Session, policy_id: int) -> PolicyRow:
    row = session.get(PolicyRow, policy_id)
    if row is None:
        raise NotFound(f"no policy #{policy_id}", field="policy_id")
    return row


def policy_by_name_or_not_found(session: Session, name: str) -> PolicyRow:
    row = session.scalar(select(PolicyRow).where(PolicyRow.name == name))
    if row is None:
        raise NotFound(f"no policy {name!r}", field="policy")
    return row


def action_by_code_or_not_found(session: Session, code: str) -> ActionRow:
    row = session.scalar(select(ActionRow).where(ActionRow.code == code))
    if row is None:
        raise NotFound(f"no action {code!r}", field="action")
    return row


def get_template_or_not_found(session: Session, template_id: int) -> TemplateRow:
    row = session.get(TemplateRow, template_id)
    if row is None:
        raise NotFound(f"no template #{template_id}", field="template_id")
    return row


def template_or_not_found(session: Session, code: str, language: str) -> TemplateRow:
    row = session.scalar(
        select(TemplateRow).where(TemplateRow.code == code, TemplateRow.language == language)
    )
    if row is None:
        raise NotFound(f"no template {code!r} in language {language!r}", field="template")
    return row


def level_or_not_found(session: Session, policy: str, code: str) -> LevelRow:
    row = session.scalar(
        select(LevelRow).join(PolicyRow).where(PolicyRow.name == policy, LevelRow.code == code)
    )
    if row is None:
        raise NotFound(f"policy {policy!r} has no level {code!r}", field="level")
    return row


def lock_configuration(session: Session) -> None:
    """Take the configuration's write lock before reading what a change is checked against,
    so two writers cannot both check the same configuration and each apply their own change
    over it: SQLite's write lock, PostgreSQL's lock on the settings row."""
    hold_write_lock(session)
    session.execute(select(SettingsRow.id).where(SettingsRow.id == SETTINGS_ID).with_for_update())


def templates_by_code(session: Session, code: str) -> Sequence[TemplateRow]:
    """Every language version of template `code`."""
    return session.scalars(
        select(TemplateRow).where(TemplateRow.code == code).order_by(TemplateRow.language)
    ).all()


# --- references (R14): what uses a policy, a level, an action, a template -----------------


def policy_references(session: Session, name: str) -> Usage:
    """Plans following policy `name`, its action instances and the customers naming it."""
    policy_id = session.scalar(select(PolicyRow.id).where(PolicyRow.name == name))
    customers = int(
        session.scalar(select(func.count()).select_from(Customer).where(Customer.policy == name))
        or 0
    )
    if policy_id is None:
        return Usage()
    plans = int(
        session.scalar(select(func.count()).select_from(Plan).where(Plan.policy_id == policy_id))
        or 0
    )
    plan_ids = tuple(
        session.scalars(
            select(Plan.id)
            .where(Plan.policy_id == policy_id)
            .order_by(Plan.id)
            .limit(LISTED_PLAN_IDS)
        )
    )
    instances = int(
        session.scalar(
            select(func.count())
            .select_from(ActionInstance)
            .where(ActionInstance.policy_id == policy_id)
        )
        or 0
    )
    return Usage(plans=plans, plan_ids=plan_ids, action_instances=instances, customers=customers)


def action_references(session: Session, code: str) -> Usage:
    """The action instances of action `code` (its history)."""
    count = session.scalar(
        select(func.count()).select_from(ActionInstance).where(ActionInstance.action == code)
    )
    return Usage(action_instances=int(count or 0))


def template_references(session: Session, code: str) -> Usage:
    """A template is used through the actions that sent it (as `template` or, for an email
    that generates its letter, `letter_template`)."""
    senders = [
        row.code
        for row in session.scalars(select(ActionRow))
        if code in {(row.params or {}).get("template"), (row.params or {}).get("letter_template")}
    ]
    if not senders:
        return Usage()
    count = session.scalar(
        select(func.count()).select_from(ActionInstance).where(ActionInstance.action.in_(senders))
    )
    return Usage(action_instances=int(count or 0))


def level_references(session: Session, policy: str, code: str) -> Usage:
    """The plans standing at level `code` of policy `policy` and its action instances."""
    policy_id = session.scalar(select(PolicyRow.id).where(PolicyRow.name == policy))
    if policy_id is None:
        return Usage()
    at_level = (Plan.policy_id == policy_id) & (Plan.level == code)
    plans = int(session.scalar(select(func.count()).select_from(Plan).where(at_level)) or 0)
    plan_ids = tuple(
        session.scalars(select(Plan.id).where(at_level).order_by(Plan.id).limit(LISTED_PLAN_IDS))
    )
    instances = int(
        session.scalar(
            select(func.count())
            .select_from(ActionInstance)
            .where(ActionInstance.policy_id == policy_id, ActionInstance.level == code)
        )
        or 0
    )
    return Usage(plans=plans, plan_ids=plan_ids, action_instances=instances)


def config_usage(session: Session) -> ConfigUsage:
    """What the database holds that a new configuration must respect (R11, R14)."""
    settings = settings_row(session)
    open_count = session.scalar(select(func.count()).select_from(Plan).where(Plan.is_open))

    # An open plan covers its own invoice (invoice mode) and those that joined it.
    direct = (
        select(Invoice.type.label("type"), Plan.id.label("plan_id"))
        .join(Invoice, Invoice.id == Plan.invoice_id)
        .where(Plan.is_open)
    )
    joined = (
        select(Invoice.type.label("type"), Plan.id.label("plan_id"))
        .join(PlanInvoice, PlanInvoice.plan_id == Plan.id)
        .join(Invoice, Invoice.id == PlanInvoice.invoice_id)
        .where(Plan.is_open)
    )
    covered = union(direct, joined).subquery()
    invoice_types = {
        str(type_): int(count)
        for type_, count in session.execute(
            select(covered.c.type, func.count(func.distinct(covered.c.plan_id))).group_by(
                covered.c.type
            )
        )
    }

    policy_names = dict(session.execute(select(PolicyRow.id, PolicyRow.name)).all())

    plans_by_policy: dict[str, int] = {}
    for policy_id, count in session.execute(
        select(Plan.policy_id, func.count()).group_by(Plan.policy_id)
    ):
        plans_by_policy[policy_names.get(policy_id, str(policy_id))] = int(count)
    instances_by_policy: dict[str, int] = {}
    for policy_id, count in session.execute(
        select(ActionInstance.policy_id, func.count()).group_by(ActionInstance.policy_id)
    ):
        instances_by_policy[policy_names.get(policy_id, str(policy_id))] = int(count)
    # Only names of policies that exist: a customer naming none (imported before imports
    # checked it) does not make a policy that is not there "in use" (R14).
    customers_by_policy = {
        str(name): int(count)
        for name, count in session.execute(
            select(Customer.policy, func.count())
            .where(Customer.policy.in_(select(PolicyRow.name)))
            .group_by(Customer.policy)
        )
    }
    policy_ids = {name: id_ for id_, name in policy_names.items()}
    used_policies: dict[str, Usage] = {}
    for name in sorted(set(plans_by_policy) | set(instances_by_policy) | set(customers_by_policy)):
        ids: tuple[int, ...] = ()
        if name in policy_ids and plans_by_policy.get(name):
            ids = tuple(
                session.scalars(
                    select(Plan.id)
                    .where(Plan.policy_id == policy_ids[name])
                    .order_by(Plan.id)
                    .limit(LISTED_PLAN_IDS)
                )
            )
        used_policies[name] = Usage(
            plans=plans_by_policy.get(name, 0),
            plan_ids=ids,
            action_instances=instances_by_policy.get(name, 0),
            customers=customers_by_policy.get(name, 0),
        )

    level_plans: dict[tuple[str, str], list[int]] = defaultdict(list)
    level_plan_counts: dict[tuple[str, str], int] = {}
    for policy_id, level, count, first_id in session.execute(
        select(Plan.policy_id, Plan.level, func.count(), func.min(Plan.id))
        .where(Plan.level.is_not(None))
        .group_by(Plan.policy_id, Plan.level)
    ):
        key = (policy_names.get(policy_id, str(policy_id)), str(level))
        level_plan_counts[key] = int(count)
        level_plans[key].append(int(first_id))
    level_instances: dict[tuple[str, str], int] = {}
    for policy_id, level, count in session.execute(
        select(ActionInstance.policy_id, ActionInstance.level, func.count()).group_by(
            ActionInstance.policy_id, ActionInstance.level
        )
    ):
        level_instances[(policy_names.get(policy_id, str(policy_id)), str(level))] = int(count)
    used_levels = {
        key: Usage(
            plans=level_plan_counts.get(key, 0),
            plan_ids=tuple(level_plans.get(key, [])),
            action_instances=level_instances.get(key, 0),
        )
        for key in set(level_plan_counts) | set(level_instances)
    }

    used_actions = {
        str(code): Usage(action_instances=int(count))
        for code, count in session.execute(
            select(ActionInstance.action, func.count()).group_by(ActionInstance.action)
        )
    }
    # A template is used through the actions that sent it.
    template_instances: dict[str, int] = defaultdict(int)
    for action_row in session.scalars(select(ActionRow)):
        params = action_row.params or {}
        for template in {params.get("template"), params.get("letter_template")}:  # email letters
            if template and action_row.code in used_actions:
                template_instances[str(template)] += used_actions[action_row.code].action_instances
    used_templates = {code: Usage(action_instances=n) for code, n in template_instances.items()}

    return ConfigUsage(
        current_mode=Mode(settings.mode) if settings is not None else None,
        open_plan_count=int(open_count or 0),
        open_plan_invoice_types=invoice_types,
        used_policies=used_policies,
        used_levels=used_levels,
        used_actions=used_actions,
        used_templates=used_templates,
    )


# --- what the book holds that a configuration should fit (its warnings) --------------------


def open_customers_by_currency(session: Session) -> dict[str, int]:
    """How many customers owe open invoices, by currency."""
    return {
        str(currency): int(count)
        for currency, count in session.execute(
            select(Invoice.currency, func.count(func.distinct(Invoice.customer_id)))
            .where(Invoice.is_open)
            .group_by(Invoice.currency)
        )
    }


def customers_by_language(session: Session) -> list[tuple[str | None, int]]:
    """How many customers speak each language, as stored."""
    return [
        (language, int(count))
        for language, count in session.execute(
            select(Customer.language, func.count()).group_by(Customer.language)
        )
    ]


def open_invoices_without_pdf(session: Session) -> tuple[int, int]:
    """How many invoices are open, and how many of them have no PDF."""
    total, missing = session.execute(
        select(
            func.count(),
            func.count().filter(Invoice.pdf_path.is_(None) | (Invoice.pdf_path == "")),
        ).where(Invoice.is_open)
    ).one()
    return int(total or 0), int(missing or 0)
