"""Policies as code (SPEC §4): load, check, apply and export the configuration in the database.

The database rows go through the same parser as the YAML file (`parse_config`), so the engine,
the exporter and the change detection all see one shape. Services flush, never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.orm import Session

from recoup.core.errors import Conflict, FieldError, InvalidInput, NotFound, RecoupError
from recoup.core.reader import relative_path
from recoup.domain.enums import Event
from recoup.domain.locales import normalize_language
from recoup.domain.policy import Config, Policy
from recoup.domain.redact import redact_url
from recoup.domain.validation import (
    ConfigIssue,
    ConfigUsage,
    Usage,
    fee_warnings,
    in_use_message,
    validate_config,
)
from recoup.log.service import log
from recoup.models import (
    ActionRow,
    LevelRow,
    PolicyRow,
    TemplateRow,
    WebhookEndpoint,
)
from recoup.policies import repository
from recoup.policies.document import (
    ParsedConfig,
    action_params_to_dict,
    action_to_dict,
    amounts_to_dict,
    config_to_dict,
    level_to_dict,
    parse_config,
    policy_to_dict,
    rules_to_dict,
    settings_to_dict,
    template_to_dict,
    webhook_to_dict,
)
from recoup.policies.repository import config_usage
from recoup.policies.templates import check_templates, template_syntax
from recoup.schedule.service import recheck_everything
from recoup.settings.schemas import SettingsUpdate
from recoup.settings.service import get_settings
from recoup.webhooks.repository import max_log_id

# Kept policies whose priority changes park here first: priorities are unique in the database
# and a swap between two policies would otherwise collide half-way through the flush.
_PARKED_PRIORITY = -1_000_000_000


@dataclass
class ChangeReport:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)  # printed, not logged

    @property
    def any(self) -> bool:
        return bool(self.created or self.changed or self.removed)

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "changed": self.changed, "removed": self.removed}


# --- reading -------------------------------------------------------------------------------


def stored_document(session: Session) -> dict[str, Any]:
    """The database's configuration in the file's shape (before parsing)."""
    settings_row = repository.settings_row(session)
    settings: dict[str, Any] = {}
    if settings_row is not None:
        settings = {
            "mode": settings_row.mode,
            "invoice_types": list(settings_row.invoice_types or []),
            "customer_balance": settings_row.customer_balance,
            "max_levels": settings_row.max_levels,
            "timezone": settings_row.timezone,
            "catch_up": settings_row.catch_up,
            "company": dict(settings_row.company or {}) or None,
        }
    templates = repository.list_templates(session)
    actions = repository.list_actions(session)
    policies = repository.list_policies(session)
    endpoints = repository.list_webhooks(session)
    document: dict[str, Any] = {
        "settings": settings,
        "templates": [
            {
                "code": t.code,
                "channel": t.channel,
                "language": t.language,
                "subject": t.subject,
                "body": t.body,
                "active": t.active,
            }
            for t in templates
        ],
        "actions": [
            {
                **(a.params or {}),
                "code": a.code,
                "type": a.type,
                "mode": a.mode,
                "role": a.role,
                "instructions": a.instructions,
            }
            for a in actions
        ],
        "policies": [
            {
                "name": p.name,
                "description": p.description,
                "active": p.active,
                "default": p.is_default,
                "priority": p.priority,
                "min_balance": p.min_balance or None,
                "currency": p.currency,
                "attach_invoice": p.attach_invoice,
                "transition": p.transition,
                "rules": p.rules or None,
                "levels": [
                    {
                        "code": level.code,
                        "days": level.days,
                        "reminder": level.reminder,
                        "end": level.end,
                        "min_balance": level.min_balance or None,
                        "deadline_days": level.deadline_days,
                        "actions": list(level.actions or []),
                    }
                    for level in sorted(p.levels, key=lambda row: (row.position, row.id))
                ],
            }
            for p in policies
        ],
    }
    if endpoints:
        document["webhooks"] = [
            {"url": e.url, "events": list(e.events or []), "active": e.active} for e in endpoints
        ]
    return document


def load_config(session: Session) -> Config:
    """The configuration in the database as domain values.

    Lenient on purpose: rows written by other means (the web forms, a demo seed) that would not
    pass the parser still load as well as they can, so a run or an export never dies on them.
    """
    return parse_config(stored_document(session)).config


def export_config(session: Session) -> dict[str, Any]:
    """The database's configuration as a SPEC §4 document; `apply` takes it back unchanged."""
    return config_to_dict(load_config(session))


# --- checking ------------------------------------------------------------------------------


def _parse_and_validate(
    document: object, usage: ConfigUsage | None
) -> tuple[ParsedConfig, list[ConfigIssue]]:
    parsed = parse_config(document)
    issues = list(parsed.issues)
    issues += validate_config(
        parsed.config, usage, broken=parsed.broken, template_syntax=template_syntax
    )
    return parsed, issues


def check_config(raw: object, usage: ConfigUsage | None = None) -> tuple[Config, list[ConfigIssue]]:
    """Parse and validate a loaded document: the config and every issue, file order (without
    rendering the templates: `check_templates` does that)."""
    parsed, issues = _parse_and_validate(raw, usage)
    return parsed.config, issues


def check_document(session: Session, document: object) -> tuple[Config, list[ConfigIssue]]:
    """Parse a loaded document and validate it against the database's usage."""
    parsed, issues = _parse_and_validate(document, config_usage(session))
    return parsed.config, issues + check_templates(parsed.config, parsed.broken)


def check_file(document: object) -> tuple[Config, list[ConfigIssue]]:
    """`check_document` without a database: the file on its own (nothing in use)."""
    parsed, issues = _parse_and_validate(document, None)
    return parsed.config, issues + check_templates(parsed.config, parsed.broken)


class ConfigProblems(RecoupError):
    """A configuration that cannot be applied: every problem in `details` (`path: message`)
    and in `errors` (field = the path)."""


class ConfigInvalid(ConfigProblems, InvalidInput):
    """At least one problem is a malformed value (422)."""


class ConfigRefused(ConfigProblems, Conflict):
    """Well-formed, but rules refuse it given what the database holds (R11, R14: 409)."""


def _refuse(issues: list[ConfigIssue]) -> ConfigProblems:
    """Malformed (422) unless every problem is a rule refusing the change given what the
    database holds (R11, R14: a conflict, 409); the message is the same either way."""
    noun = "problem" if len(issues) == 1 else "problems"
    error = ConfigRefused if all(issue.refusal for issue in issues) else ConfigInvalid
    return error(
        f"the configuration has {len(issues)} {noun}; nothing was changed",
        details=[str(issue) for issue in issues],
        errors=[FieldError(issue.path, issue.message) for issue in issues],
    )


_REFERENCES = {
    "policy": repository.policy_references,
    "action": repository.action_references,
    "template": repository.template_references,
}


def ensure_removable(session: Session, kind: str, name: str) -> None:
    """Refuse (Conflict, 409) removing a `policy`, `action` or `template` that plans, action
    instances or customers refer to (R14), in the words `config apply` uses."""
    usage = _REFERENCES[kind](session, name)
    if usage != Usage():
        raise Conflict(in_use_message(kind, name, usage), field=kind)


def apply_document(
    session: Session, document: object, actor: str | None, *, reason: str | None = None
) -> ChangeReport:
    repository.lock_configuration(session)
    config, issues = check_document(session, document)
    if issues:
        raise _refuse(issues)
    warnings = config_warnings(session, config)
    report = _apply(session, config, actor, reason)
    report.warnings = warnings
    return report


def config_warnings(session: Session | None, config: Config) -> list[ConfigIssue]:
    """What is sound but probably not meant, given the book (issue 9.7): fixed fees with no
    amount for a currency they will meet, template codes with no version in a language
    customers speak, attach_invoice while invoices have no PDF. Without a database, only
    what the file itself shows."""
    if session is None:
        return fee_warnings(config)
    currencies = repository.open_customers_by_currency(session)
    warnings = fee_warnings(config, currencies)
    warnings += _language_warnings(session, config)
    warnings += _pdf_warnings(session, config)
    return warnings


def _language_warnings(session: Session, config: Config) -> list[ConfigIssue]:
    speakers: dict[str, int] = defaultdict(int)
    shown: dict[str, str] = {}
    for language, count in repository.customers_by_language(session):
        normal = normalize_language(language) or ""
        if normal:
            speakers[normal.lower()] += count
            shown[normal.lower()] = normal
    warnings: list[ConfigIssue] = []
    first: dict[str, int] = {}
    for index, template in enumerate(config.templates):
        first.setdefault(template.code, index)
    for code, index in first.items():
        versions = [t for t in config.templates_for(code) if t.active]
        if not versions:
            continue
        have = {(normalize_language(t.language) or "").lower() for t in versions}
        fallback = versions[0].language
        for lang, count in sorted(speakers.items()):
            if lang in have or lang.split("_", 1)[0] in have:
                continue
            noun = "customer speaks" if count == 1 else "customers speak"
            warnings.append(
                ConfigIssue(
                    f"templates[{index}].language",
                    f"template {code!r} has no version in {shown[lang]} ({count} {noun} it): "
                    f"they get the {fallback} version",
                )
            )
    return warnings


def _pdf_warnings(session: Session, config: Config) -> list[ConfigIssue]:
    places = [
        f"policies[{i}].attach_invoice" for i, p in enumerate(config.policies) if p.attach_invoice
    ] + [
        f"actions[{i}].attach_invoice"
        for i, a in enumerate(config.actions)
        if a.params.get("attach_invoice")
    ]
    if not places:
        return []
    total, missing = repository.open_invoices_without_pdf(session)
    if not missing:
        return []
    message = (
        f"{missing} of {total} outstanding invoices have no PDF: "
        "their emails go without the invoice attached"
    )
    return [ConfigIssue(place, message) for place in places]


def apply_config(
    session: Session, config: Config, actor: str | None, *, reason: str | None = None
) -> ChangeReport:
    """Make the database's configuration equal `config`, after validating it.

    Rows are matched by natural key (template code+language, action code, policy name, level
    code within its policy), updated in place, created, or removed when the config no longer
    has them (the validator refuses removing anything in use, R14).
    """
    repository.lock_configuration(session)
    issues = validate_config(
        config, config_usage(session), template_syntax=template_syntax
    ) + check_templates(config)
    if issues:
        raise _refuse(issues)
    return _apply(session, config, actor, reason)


def update_settings(
    session: Session, update: SettingsUpdate, actor: str | None, *, reason: str | None = None
) -> ChangeReport:
    """The settings with `update`'s fields replaced, checked and applied like a policy file
    that changes only its `settings` (R11 refusals are conflicts), the problems at their
    field in the body (`mode`, not `settings.mode`)."""
    repository.lock_configuration(session)
    current = load_config(session)
    config = replace(current, settings=update.applied_to(current.settings))
    return _apply_at(session, config, actor, reason, "settings")


def _apply_at(
    session: Session, config: Config, actor: str | None, reason: str | None, root: str | None
) -> ChangeReport:
    """`apply_config`, with the problems of the item at `root` (`policies[1]`) at their path
    within that item's body (`levels[0].days`), as a request names them; the others keep the
    file's paths."""
    try:
        return apply_config(session, config, actor, reason=reason)
    except ConfigProblems as exc:
        if root is None:
            raise
        errors = [
            FieldError(_within(error.field, root), error.message, error.index)
            for error in exc.errors
        ]
        details = [f"{e.field}: {e.message}" if e.field else e.message for e in errors]
        raise type(exc)(exc.template, details=details, errors=errors) from None


def _within(path: str | None, root: str) -> str | None:
    if path is None or not (path.startswith(root + ".") or path.startswith(root + "[")):
        return path
    return relative_path(path, root)


# --- one item at a time (the API) --------------------------------------------------------
#
# A template, action, policy or level is created, replaced or removed by applying the stored
# configuration with that one change: the validator that judges a file judges it, and the
# change is reported and logged as `config apply` does. Items are named as in the file: a
# template by code and language, an action by code, a policy by name, a level by its code
# within its policy.

TEMPLATE, ACTION, LEVEL, POLICY = "template", "action", "level", "policy"
_LISTS = {TEMPLATE: "templates", ACTION: "actions", POLICY: "policies"}
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    TEMPLATE: ("code", "language"),
    ACTION: ("code",),
    LEVEL: ("code",),
    POLICY: ("name",),
}
Key = tuple[str, ...]


def item_label(kind: str, key: Key, policy: str | None = None) -> str:
    """`template reminder/en`, `action fee_15`, `level Standard/final`: the report's words."""
    return f"{kind} {'/'.join((policy, *key) if kind == LEVEL and policy else key)}"


def _key(kind: str, item: Any) -> Key:
    return tuple(str(getattr(item, name)) for name in KEY_FIELDS[kind])


def _owner(config: Config, policy: str | None) -> Policy:
    found = config.policy(policy or "")
    if found is None:
        raise NotFound(f"no policy {policy!r}", field="policy")
    return found


def _items(config: Config, kind: str, policy: str | None) -> tuple[Any, ...]:
    if kind == LEVEL:
        return _owner(config, policy).levels
    items: tuple[Any, ...] = getattr(config, _LISTS[kind])
    return items


def _with_items(config: Config, kind: str, policy: str | None, items: tuple[Any, ...]) -> Config:
    if kind == LEVEL:
        # a policy lists its levels by days (the validator insists): a new or moved level
        # goes to its place
        items = tuple(sorted(items, key=lambda level: level.days))
        owner = _owner(config, policy)
        policies = tuple(replace(p, levels=items) if p is owner else p for p in config.policies)
        return replace(config, policies=policies)
    if kind == TEMPLATE:
        return replace(config, templates=items)
    if kind == ACTION:
        return replace(config, actions=items)
    return replace(config, policies=items)


def _root(config: Config, kind: str, policy: str | None, key: Key) -> str:
    """Where the item `key` is in `config`: `templates[3]`, `policies[0].levels[2]`."""
    index, _ = _find(config, kind, key, policy)
    if kind == LEVEL:
        at = next(i for i, p in enumerate(config.policies) if p.name == policy)
        return f"policies[{at}].levels[{index}]"
    return f"{_LISTS[kind]}[{index}]"


def _find(config: Config, kind: str, key: Key, policy: str | None) -> tuple[int, Any]:
    for index, item in enumerate(_items(config, kind, policy)):
        if _key(kind, item) == key:
            return index, item
    raise NotFound(f"no {item_label(kind, key, policy)}", field=kind)


def find_item(session: Session, kind: str, key: Key, policy: str | None = None) -> Any:
    """The stored item (domain value) or NotFound."""
    return _find(load_config(session), kind, key, policy)[1]


def create_item(
    session: Session,
    kind: str,
    item: Any,
    *,
    policy: str | None = None,
    actor: str | None,
    reason: str | None = None,
) -> ChangeReport:
    """Add `item` to the configuration, last (a level: to `policy`'s, in its place by days)."""
    repository.lock_configuration(session)
    config = load_config(session)
    items = _items(config, kind, policy)
    key = _key(kind, item)
    if any(_key(kind, other) == key for other in items):
        raise Conflict(f"{item_label(kind, key, policy)} already exists", field=KEY_FIELDS[kind][0])
    changed = _with_items(config, kind, policy, (*items, item))
    return _apply_at(session, changed, actor, reason, _root(changed, kind, policy, key))


def replace_item(
    session: Session,
    kind: str,
    key: Key,
    change: Callable[[Any], Any],
    *,
    policy: str | None = None,
    actor: str | None,
    reason: str | None = None,
) -> ChangeReport:
    """Replace the item `key` by `change(item)`, in its place (a level: by its days); its
    identifier stays."""
    repository.lock_configuration(session)
    config = load_config(session)
    index, current = _find(config, kind, key, policy)
    item = change(current)
    for name in KEY_FIELDS[kind]:
        if getattr(item, name) != getattr(current, name):
            raise InvalidInput(
                f"{{field}} names the {kind}: it cannot change (create a new {kind} and "
                f"remove this one)",
                field=name,
            )
    items = _items(config, kind, policy)
    changed = _with_items(config, kind, policy, (*items[:index], item, *items[index + 1 :]))
    return _apply_at(session, changed, actor, reason, _root(changed, kind, policy, key))


def remove_item(
    session: Session,
    kind: str,
    key: Key,
    *,
    policy: str | None = None,
    actor: str | None,
    reason: str | None = None,
) -> ChangeReport:
    """Remove the item `key`; refused (Conflict, 409, listing them) while anything refers to
    it (R14)."""
    repository.lock_configuration(session)
    config = load_config(session)
    index, _ = _find(config, kind, key, policy)
    found = _references(session, config, kind, key, policy)
    if found.in_use:
        raise Conflict(
            found.message(),
            field=kind,
            details=found.lines(),
            errors=[FieldError(kind, f"used by {line}") for line in found.lines()],
        )
    items = _items(config, kind, policy)
    changed = _with_items(config, kind, policy, (*items[:index], *items[index + 1 :]))
    return _apply_at(session, changed, actor, reason, None)


@dataclass(frozen=True)
class References:
    """What refers to one item (R14): the configuration's items that name it (`action
    email_notice` sends a template, `level Standard/final` runs an action) and the history
    (plans, action instances, customers naming a policy). `in_use`: removing it is refused;
    a template's version is only in use while it is the last one of its code."""

    kind: str
    name: str
    configuration: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    in_use: bool = False

    def lines(self) -> list[str]:
        history = [self.usage.describe()] if self.usage != Usage() else []
        return [*self.configuration, *history]

    def message(self) -> str:
        text = f"{self.kind} {self.name!r} cannot be removed: it is used by "
        text += " and ".join(self.lines())
        return text + " (set active: false instead)" if self.kind == POLICY else text


def references(session: Session, kind: str, key: Key, policy: str | None = None) -> References:
    """What refers to the item `key` (NotFound if there is none)."""
    config = load_config(session)
    _find(config, kind, key, policy)
    return _references(session, config, kind, key, policy)


def _references(
    session: Session, config: Config, kind: str, key: Key, policy: str | None
) -> References:
    name = "/".join((policy, *key) if kind == LEVEL and policy else key)
    code = key[0]
    named: list[str] = []
    if kind == TEMPLATE:
        named = [
            f"action {action.code}"
            for action in config.actions
            if code in (action.params.get("template"), action.params.get("letter_template"))
        ]
        usage = repository.template_references(session, code)
    elif kind == ACTION:
        named = [
            f"level {p.name}/{level.code}"
            for p in config.policies
            for level in p.levels
            if code in level.actions
        ]
        usage = repository.action_references(session, code)
    elif kind == POLICY:
        usage = repository.policy_references(session, code)
    else:
        usage = repository.level_references(session, policy or "", code)
    used = bool(named) or usage != Usage()
    if kind == TEMPLATE and len(config.templates_for(code)) > 1:
        used = False  # another language version stays for what names the code
    return References(kind, name, tuple(named), usage, used)


def _apply(
    session: Session, config: Config, actor: str | None, reason: str | None = None
) -> ChangeReport:
    report = ChangeReport()
    before = load_config(session)
    _apply_settings(session, before, config, report)
    _apply_templates(session, before, config, report)
    _apply_actions(session, before, config, report)
    _apply_policies(session, before, config, report)
    _apply_webhooks(session, config, report)
    session.flush()
    if report.any:
        why = {"reason": reason} if reason else {}
        log(session, Event.config_changed, actor=actor, **report.as_dict(), **why)
        recheck_everything(session)
        session.flush()
    return report


def _apply_settings(
    session: Session, current: Config, config: Config, report: ChangeReport
) -> None:
    row = get_settings(session)
    before = settings_to_dict(current.settings)
    after = settings_to_dict(config.settings)
    for key in dict.fromkeys([*before, *after]):
        if before.get(key) != after.get(key):
            report.changed.append(f"settings.{key}")
    settings = config.settings
    row.mode = settings.mode.value
    row.invoice_types = list(settings.invoice_types)
    row.customer_balance = (
        list(settings.customer_balance) if settings.customer_balance is not None else None
    )
    row.max_levels = settings.max_levels
    row.timezone = settings.timezone
    row.catch_up = settings.catch_up.value
    row.company = dict(settings.company)


def _sync(
    report: ChangeReport,
    label: Callable[[Any], str],
    existing: dict[Any, Any],
    wanted: dict[Any, tuple[dict[str, Any], Any]],
    stored: Callable[[Any], dict[str, Any]],
    create: Callable[[], Any],
    write: Callable[[Any, Any], None],
    session: Session,
) -> None:
    """Upsert rows by natural key and delete those no longer wanted, reporting each change.

    `wanted` maps key → (comparable dict, item); `stored(row)` gives the row's comparable dict.
    """
    for key, row in existing.items():
        if key not in wanted:
            session.delete(row)
            report.removed.append(label(key))
    session.flush()
    for key, (shape, item) in wanted.items():
        row = existing.get(key)
        if row is None:
            row = create()
            write(row, item)
            session.add(row)
            report.created.append(label(key))
        else:
            if stored(row) != shape:
                report.changed.append(label(key))
            write(row, item)


def _apply_templates(
    session: Session, before: Config, config: Config, report: ChangeReport
) -> None:
    current = {(t.code, t.language): template_to_dict(t) for t in before.templates}
    rows = repository.template_rows(session)
    positions = {(row.code, row.language): row.position for row in rows}
    existing = {(row.code, row.language): row for row in rows}
    wanted = {
        (t.code, t.language): ({**template_to_dict(t), "position": index}, (index, t))
        for index, t in enumerate(config.templates)
    }

    def stored(row: TemplateRow) -> dict[str, Any]:
        key = (row.code, row.language)
        return {**current.get(key, {}), "position": positions[key]}

    def write(row: TemplateRow, item: Any) -> None:
        index, template = item
        row.code = template.code
        row.language = template.language
        row.channel = template.channel.value
        row.subject = template.subject
        row.body = template.body
        row.active = template.active
        row.position = index

    _sync(
        report,
        lambda key: f"template {key[0]}/{key[1]}",
        existing,
        wanted,
        stored,
        TemplateRow,
        write,
        session,
    )


def _apply_actions(session: Session, before: Config, config: Config, report: ChangeReport) -> None:
    current = {a.code: action_to_dict(a) for a in before.actions}
    existing = {row.code: row for row in repository.action_rows(session)}
    wanted = {
        a.code: ({**action_to_dict(a), "position": index}, (index, a))
        for index, a in enumerate(config.actions)
    }

    def stored(row: ActionRow) -> dict[str, Any]:
        return {**current.get(row.code, {}), "position": row.position}

    def write(row: ActionRow, item: Any) -> None:
        index, action = item
        row.code = action.code
        row.type = action.type.value
        row.mode = action.mode.value
        row.role = action.role
        row.instructions = action.instructions
        row.params = action_params_to_dict(action)
        row.position = index

    _sync(report, lambda key: f"action {key}", existing, wanted, stored, ActionRow, write, session)


def _apply_policies(session: Session, before: Config, config: Config, report: ChangeReport) -> None:
    current = {p.name: p for p in before.policies}
    existing = {row.name: row for row in repository.policy_rows(session)}
    wanted_by_name = {p.name: p for p in config.policies}

    for name, row in existing.items():
        if name not in wanted_by_name:
            session.delete(row)
            report.removed.append(f"policy {name}")
    session.flush()
    parked = False
    for name, kept in existing.items():
        wanted = wanted_by_name.get(name)
        if wanted is not None and wanted.priority != kept.priority:
            kept.priority = _PARKED_PRIORITY - kept.id
            parked = True
    if parked:
        session.flush()

    for policy in config.policies:
        found = existing.get(policy.name)
        row = found if found is not None else PolicyRow(name=policy.name)
        if found is None:
            report.created.append(f"policy {policy.name}")
        elif policy.name not in current or policy_to_dict(
            current[policy.name], with_levels=False
        ) != policy_to_dict(policy, with_levels=False):
            report.changed.append(f"policy {policy.name}")
        _write_policy(row, policy)
        if found is None:
            session.add(row)
        _write_levels(row, policy, current.get(policy.name), report)


def _write_policy(row: PolicyRow, policy: Policy) -> None:
    row.name = policy.name
    row.description = policy.description
    row.active = policy.active
    row.is_default = policy.default
    row.priority = policy.priority
    row.min_balance = amounts_to_dict(policy.min_balance)
    row.currency = policy.currency
    row.attach_invoice = policy.attach_invoice
    row.transition = policy.transition.value
    row.rules = rules_to_dict(policy.rules) if policy.rules is not None else None


def _write_levels(
    row: PolicyRow, policy: Policy, before: Policy | None, report: ChangeReport
) -> None:
    existing = {level.code: level for level in row.levels}
    positions = {level.code: level.position for level in row.levels}
    previous = {level.code: level for level in before.levels} if before is not None else {}
    wanted_codes = {level.code for level in policy.levels}
    for code in existing:
        if code not in wanted_codes:
            report.removed.append(f"level {policy.name}/{code}")
    levels: list[LevelRow] = []
    for index, level in enumerate(policy.levels):
        level_row = existing.get(level.code)
        if level_row is None:
            level_row = LevelRow(code=level.code)
            if before is not None:  # a new policy's levels come with it
                report.created.append(f"level {policy.name}/{level.code}")
        elif (
            level.code not in previous
            or level_to_dict(previous[level.code]) != level_to_dict(level)
            or positions[level.code] != index
        ):
            report.changed.append(f"level {policy.name}/{level.code}")
        level_row.days = level.days
        level_row.reminder = level.reminder
        level_row.end = level.end
        level_row.min_balance = amounts_to_dict(level.min_balance)
        level_row.deadline_days = level.deadline_days
        level_row.actions = list(level.actions)
        level_row.position = index
        levels.append(level_row)
    # Levels dropped from the list are deleted by the relationship's delete-orphan cascade.
    row.levels = levels


def _apply_webhooks(session: Session, config: Config, report: ChangeReport) -> None:
    """Endpoints by URL. A new one receives the events logged from now on, not the history;
    removing one stops its deliveries (its delivery log stays)."""
    existing = {row.url: row for row in repository.webhook_rows(session)}
    wanted = {
        w.url: ({**webhook_to_dict(w), "position": index}, (index, w))
        for index, w in enumerate(config.webhooks)
    }
    log_end = max_log_id(session)

    def stored(row: WebhookEndpoint) -> dict[str, Any]:
        return {
            "url": row.url,
            "events": list(row.events or []),
            "active": row.active,
            "position": row.position,
        }

    def create() -> WebhookEndpoint:
        return WebhookEndpoint(start_log_id=log_end, cursor_log_id=log_end)

    def write(row: WebhookEndpoint, item: Any) -> None:
        index, webhook = item
        if row.id is not None and webhook.active and not row.active:
            # re-activated: events logged while it was inactive are not sent
            row.start_log_id = log_end
            row.cursor_log_id = log_end
        row.url = webhook.url
        row.events = list(webhook.events)
        row.active = webhook.active
        row.position = index

    _sync(
        report,
        lambda key: f"webhook {redact_url(key)}",  # the log keeps no endpoint token
        existing,
        wanted,
        stored,
        create,
        write,
        session,
    )
