"""The policy file's document (SPEC §4): a loaded mapping (from YAML, JSON or the database's
rows) to `Config` and back.

Words, one meaning each: the *policy file* is the text (`recoup.policies.yaml_text` reads and
writes it); its *document* is the mapping it holds, parsed here; the *configuration* (`Config`)
is the domain's values. The parser checks shapes and vocabularies and collects every problem as
a `ConfigIssue` with the path of the offending value (`policies[0].levels[2].days`); the
meaning of the whole (ends, references, locks) is `recoup.domain.validation`'s job.
`config_to_dict` writes the same shape, so an exported file applies unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from recoup.core.reader import MAX_INTEGER, DocumentReader
from recoup.domain.enums import (
    ActionMode,
    ActionType,
    Channel,
    Transition,
    WebhookEvent,
)
from recoup.domain.policy import (
    Action,
    Condition,
    Config,
    Level,
    Policy,
    RuleSet,
    Template,
    Webhook,
)
from recoup.domain.validation import ConfigIssue
from recoup.settings.document import SETTINGS_KEYS, parse_settings, settings_to_dict

__all__ = [
    "ACTION_COMMON_KEYS",
    "ACTION_FIELDS",
    "COMBINATORS",
    "LEVEL_KEYS",
    "MAX_INTEGER",
    "POLICY_KEYS",
    "RULE_KEYS",
    "SETTINGS_KEYS",
    "TEMPLATE_KEYS",
    "TOP_LEVEL_KEYS",
    "WEBHOOK_KEYS",
    "ConfigIssue",
    "ParsedConfig",
    "action_params_to_dict",
    "action_to_dict",
    "amounts_to_dict",
    "config_to_dict",
    "item_key",
    "level_to_dict",
    "parse_config",
    "read_item",
    "policy_to_dict",
    "rules_to_dict",
    "settings_to_dict",
    "template_to_dict",
    "webhook_to_dict",
]


@dataclass(frozen=True)
class ParsedConfig:
    """The parsed configuration and what was wrong with the file.

    Items with a problem are still present (with defaults in place of bad values) so that
    positions match the file; their keys are in `broken` (`settings`, `template:<code>`,
    `action:<code>`, `policy:<name>`) so the validator neither checks them nor reports
    references to them, which would only repeat the same mistake.
    """

    config: Config
    issues: tuple[ConfigIssue, ...] = ()
    broken: frozenset[str] = field(default_factory=frozenset)

    @property
    def ok(self) -> bool:
        return not self.issues


TOP_LEVEL_KEYS = ("settings", "templates", "actions", "policies", "webhooks")
TEMPLATE_KEYS = ("code", "channel", "language", "subject", "body", "active")
ACTION_COMMON_KEYS = ("code", "type", "mode", "role", "instructions")
LEVEL_KEYS = ("code", "days", "reminder", "end", "min_balance", "deadline_days", "actions")
POLICY_KEYS = (
    "name",
    "description",
    "active",
    "default",
    "priority",
    "min_balance",
    "currency",
    "attach_invoice",
    "transition",
    "levels",
    "rules",
)

# The kinds of type-specific action fields (SPEC §3); each is stored in Action.params.
STR, BOOL, DECIMAL, AMOUNTS = "str", "bool", "decimal", "amounts"
ACTION_FIELDS: dict[ActionType, dict[str, str]] = {
    ActionType.send_email: {
        "template": STR,
        "attach_invoice": BOOL,
        "attach_letter": BOOL,
        "letter_template": STR,
    },
    ActionType.send_letter: {"template": STR},
    ActionType.send_sms: {"template": STR},
    # without_notice: charged even when no notice of the level was delivered (SPEC §3)
    ActionType.late_fee_fixed: {"amounts": AMOUNTS, "service": STR, "without_notice": BOOL},
    ActionType.late_fee_percent: {
        "rate": DECIMAL,
        "min": AMOUNTS,
        "max": AMOUNTS,
        "service": STR,
        "without_notice": BOOL,
    },
    ActionType.interest: {"annual_rate": DECIMAL, "service": STR, "without_notice": BOOL},
    ActionType.change_account_status: {"status": STR},
    ActionType.retry_payment: {},
    ActionType.webhook: {"url": STR},
    ActionType.manual: {},
}
RULE_KEYS = ("field", "op", "value")
WEBHOOK_KEYS = ("url", "events", "active")
COMBINATORS = ("all", "any")
Item = Template | Action | Level | Policy

# Rule values are compared with customer fields: short flat lists of short scalars (issue 8.3).
MAX_RULE_VALUES = 1_000
MAX_RULE_TEXT = 1_000


def parse_config(raw: object) -> ParsedConfig:
    """Parse a YAML-loaded document (SPEC §4) into a Config, collecting every issue."""
    reader = DocumentReader()
    broken: set[str] = set()
    if raw is None:
        raw = {}
    document = reader.mapping(raw, "(file)")
    if document is None:
        return ParsedConfig(Config(), tuple(reader.issues), frozenset({"settings"}))
    reader.unknown_keys(document, TOP_LEVEL_KEYS, "")

    settings = parse_settings(reader, document.get("settings"), broken)
    templates: list[Template] = []
    for index, item in enumerate(reader.sequence(document.get("templates"), "templates")):
        before = len(reader.issues)
        templates.append(_parse_template(reader, item, f"templates[{index}]"))
        _mark(reader, before, broken, templates[-1])
    actions: list[Action] = []
    for index, item in enumerate(reader.sequence(document.get("actions"), "actions")):
        before = len(reader.issues)
        actions.append(_parse_action(reader, item, f"actions[{index}]"))
        _mark(reader, before, broken, actions[-1])
    policies: list[Policy] = []
    for index, item in enumerate(reader.sequence(document.get("policies"), "policies")):
        before = len(reader.issues)
        policies.append(_parse_policy(reader, item, f"policies[{index}]"))
        _mark(reader, before, broken, policies[-1])
    webhooks = [
        _parse_webhook(reader, item, f"webhooks[{index}]")
        for index, item in enumerate(reader.sequence(document.get("webhooks"), "webhooks"))
    ]
    config = Config(
        settings=settings,
        templates=tuple(templates),
        actions=tuple(actions),
        policies=tuple(policies),
        webhooks=tuple(webhooks),
    )
    return ParsedConfig(config, tuple(reader.issues), frozenset(broken))


def _mark(
    reader: DocumentReader, before: int, broken: set[str], item: Template | Action | Policy
) -> None:
    """An item whose parsing added issues is broken: the validator leaves it alone."""
    if len(reader.issues) > before:
        broken.add(item_key(item))


def item_key(item: Template | Action | Policy) -> str:
    if isinstance(item, Template):
        return f"template:{item.code}"
    if isinstance(item, Action):
        return f"action:{item.code}"
    return f"policy:{item.name}"


def _parse_template(reader: DocumentReader, value: object, path: str) -> Template:
    obj = reader.mapping(value, path)
    if obj is None:
        return Template(code="", channel=Channel.email, language="", body="")
    reader.unknown_keys(obj, TEMPLATE_KEYS, path)
    code = reader.text(obj, "code", path, required=True) or ""
    channel = reader.choice(obj, "channel", path, Channel, None) or Channel.email
    language = reader.text(obj, "language", path, required=True) or ""
    subject = reader.raw_text(obj, "subject", path)
    body = reader.raw_text(obj, "body", path)
    if body is None:
        reader.issue(f"{path}.body", "is required")
        body = ""
    active = reader.boolean(obj, "active", path, True)
    return Template(
        code=code, channel=channel, language=language, body=body, subject=subject, active=active
    )


def _parse_action(reader: DocumentReader, value: object, path: str) -> Action:
    obj = reader.mapping(value, path)
    if obj is None:
        return Action(code="", type=ActionType.manual)
    code = reader.text(obj, "code", path, required=True) or ""
    action_type = reader.choice(obj, "type", path, ActionType, None)
    mode = reader.choice(obj, "mode", path, ActionMode, ActionMode.automatic)
    role = reader.text(obj, "role", path)
    instructions = reader.raw_text(obj, "instructions", path)
    params: dict[str, Any] = {}
    if action_type is None:
        # Without a type the other fields cannot be judged; one issue is enough.
        return Action(code=code, type=ActionType.manual, role=role, instructions=instructions)
    fields = ACTION_FIELDS[action_type]
    for key, item in obj.items():
        if key in ACTION_COMMON_KEYS:
            continue
        where = f"{path}.{key}"
        kind = fields.get(key)
        if kind is None:
            allowed = ", ".join((*ACTION_COMMON_KEYS, *fields))
            reader.issue(where, f"unknown field for type {action_type.value} (expected: {allowed})")
        elif item is None:
            continue
        elif kind == STR:
            text = reader.text(obj, key, path)
            if text is not None:
                params[key] = text
        elif kind == BOOL:
            params[key] = reader.boolean(obj, key, path, False)
        elif kind == DECIMAL:
            number = reader.decimal(item, where)
            if number is not None:
                params[key] = number
        else:
            params[key] = reader.amounts(item, where)
    return Action(
        code=code,
        type=action_type,
        mode=mode or ActionMode.automatic,
        role=role,
        instructions=instructions,
        params=params,
    )


def _parse_level(reader: DocumentReader, value: object, path: str) -> Level:
    obj = reader.mapping(value, path)
    if obj is None:
        return Level(code="", days=0)
    reader.unknown_keys(obj, LEVEL_KEYS, path)
    code = reader.text(obj, "code", path, required=True) or ""
    days = reader.integer(obj, "days", path, required=True)
    deadline_days = reader.integer(obj, "deadline_days", path)
    if deadline_days is not None and deadline_days < 0:
        reader.issue(f"{path}.deadline_days", f"must be 0 or more days, not {deadline_days}")
        deadline_days = None
    return Level(
        code=code,
        days=days if days is not None else 0,
        actions=reader.text_list(obj.get("actions"), f"{path}.actions"),
        reminder=reader.boolean(obj, "reminder", path, False),
        end=reader.boolean(obj, "end", path, False),
        min_balance=reader.amounts(obj.get("min_balance"), f"{path}.min_balance"),
        deadline_days=deadline_days,
    )


def _parse_policy(reader: DocumentReader, value: object, path: str) -> Policy:
    obj = reader.mapping(value, path)
    if obj is None:
        return Policy(name="", priority=0, levels=())
    reader.unknown_keys(obj, POLICY_KEYS, path)
    name = reader.text(obj, "name", path, required=True) or ""
    priority = reader.integer(obj, "priority", path, required=True)
    levels = tuple(
        _parse_level(reader, item, f"{path}.levels[{j}]")
        for j, item in enumerate(reader.sequence(obj.get("levels"), f"{path}.levels"))
    )
    rules = _parse_rules(reader, obj["rules"], f"{path}.rules") if obj.get("rules") else None
    return Policy(
        name=name,
        priority=priority if priority is not None else 0,
        levels=levels,
        description=reader.raw_text(obj, "description", path) or "",
        active=reader.boolean(obj, "active", path, True),
        default=reader.boolean(obj, "default", path, False),
        min_balance=reader.amounts(obj.get("min_balance"), f"{path}.min_balance"),
        currency=reader.text(obj, "currency", path) or None,
        attach_invoice=reader.boolean(obj, "attach_invoice", path, False),
        transition=reader.choice(obj, "transition", path, Transition, Transition.days_overdue)
        or Transition.days_overdue,
        rules=rules,
    )


def _parse_webhook(reader: DocumentReader, value: object, path: str) -> Webhook:
    """`{url, events, active}`; without `events` the endpoint receives every event."""
    obj = reader.mapping(value, path)
    if obj is None:
        return Webhook(url="")
    reader.unknown_keys(obj, WEBHOOK_KEYS, path)
    url = reader.text(obj, "url", path, required=True) or ""
    events = (
        reader.text_list(obj["events"], f"{path}.events")
        if obj.get("events") is not None
        else tuple(event.value for event in WebhookEvent)
    )
    return Webhook(url=url, events=events, active=reader.boolean(obj, "active", path, True))


def _parse_rules(reader: DocumentReader, value: object, path: str) -> RuleSet | None:
    """`{all: [...]}` or `{any: [...]}`; a bare condition means `{all: [condition]}`."""
    obj = reader.mapping(value, path)
    if obj is None:
        return None
    if "field" in obj:
        condition = _parse_condition(reader, obj, path)
        return RuleSet("all", (condition,)) if condition is not None else None
    return _parse_rule_set(reader, obj, path)


def _parse_rule_set(reader: DocumentReader, obj: Mapping[str, Any], path: str) -> RuleSet | None:
    keys = list(obj)
    if len(keys) != 1 or keys[0] not in COMBINATORS:
        reader.issue(path, "must be {all: [...]} or {any: [...]} (or one {field, op, value})")
        return None
    combinator = str(keys[0])
    items: list[Condition | RuleSet] = []
    for index, item in enumerate(reader.sequence(obj[combinator], f"{path}.{combinator}")):
        where = f"{path}.{combinator}[{index}]"
        item_obj = reader.mapping(item, where)
        if item_obj is None:
            continue
        parsed: Condition | RuleSet | None
        if "field" in item_obj or "op" in item_obj:
            parsed = _parse_condition(reader, item_obj, where)
        else:
            parsed = _parse_rule_set(reader, item_obj, where)
        if parsed is not None:
            items.append(parsed)
    if not items:
        reader.issue(f"{path}.{combinator}", "must list at least one condition")
    return RuleSet(combinator, tuple(items))


def _parse_condition(reader: DocumentReader, obj: Mapping[str, Any], path: str) -> Condition | None:
    reader.unknown_keys(obj, RULE_KEYS, path)
    field_name = reader.text(obj, "field", path, required=True)
    op = reader.text(obj, "op", path, required=True)
    if "value" not in obj:
        reader.issue(f"{path}.value", "is required")
        return None
    value = _rule_value(reader, obj["value"], f"{path}.value")
    if field_name is None or op is None:
        return None
    return Condition(field=field_name, op=op, value=value)


def _rule_value(reader: DocumentReader, value: object, path: str, *, in_list: bool = False) -> Any:
    """One scalar, or (for `in`/`not_in`) a flat list of at most MAX_RULE_VALUES scalars."""
    if isinstance(value, float):
        reader.issue(path, f'write decimal numbers quoted, e.g. "{value}" (floats are inexact)')
        return str(value)
    if isinstance(value, list):
        if in_list:
            reader.issue(path, "must be a single value: a rule's list cannot hold lists")
            return None
        if len(value) > MAX_RULE_VALUES:
            reader.issue(
                path, f"lists {len(value):,} values; a rule may list at most {MAX_RULE_VALUES:,}"
            )
            return []
        return [
            _rule_value(reader, item, f"{path}[{i}]", in_list=True) for i, item in enumerate(value)
        ]
    if isinstance(value, Mapping):
        reader.issue(path, "must be a value or a list of values, not a mapping")
        return None
    if isinstance(value, str) and len(value) > MAX_RULE_TEXT:
        reader.issue(path, f"is {len(value):,} characters long; at most {MAX_RULE_TEXT:,}")
        return value[:MAX_RULE_TEXT]
    if value is None or isinstance(value, str | int | bool):
        return value
    # Dates and the like compare as their ISO text.
    return str(value)


def read_item(kind: str, raw: object, path: str) -> tuple[Item, list[ConfigIssue]]:
    """One `template`, `action`, `level` or `policy` read on its own (a request's body), with
    the same checks and words as in a file, at `path` (`policies[0]`, `levels[2]`…)."""
    reader = DocumentReader()
    parsers: dict[str, Callable[[DocumentReader, object, str], Item]] = {
        "template": _parse_template,
        "action": _parse_action,
        "level": _parse_level,
        "policy": _parse_policy,
    }
    item = parsers[kind](reader, raw, path)
    return item, list(reader.issues)


# --- back to the file's shape ---------------------------------------------------------------


def _decimal_text(value: Decimal) -> str:
    return str(value)


def _jsonable_param(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable_param(v) for k, v in value.items()}
    return value


def amounts_to_dict(amounts: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: _decimal_text(amount) for currency, amount in amounts.items()}


def template_to_dict(template: Template) -> dict[str, Any]:
    result: dict[str, Any] = {
        "code": template.code,
        "channel": template.channel.value,
        "language": template.language,
    }
    if template.subject is not None:
        result["subject"] = template.subject
    result["body"] = template.body
    result["active"] = template.active
    return result


def action_params_to_dict(action: Action) -> dict[str, Any]:
    """The type-specific fields as JSON-ready values (decimals as strings), in SPEC order."""
    order = list(ACTION_FIELDS.get(action.type, {}))
    keys = sorted(action.params, key=lambda k: order.index(k) if k in order else len(order))
    return {key: _jsonable_param(action.params[key]) for key in keys}


def action_to_dict(action: Action) -> dict[str, Any]:
    result: dict[str, Any] = {"code": action.code, "type": action.type.value}
    if action.mode is not ActionMode.automatic:
        result["mode"] = action.mode.value
    if action.role is not None:
        result["role"] = action.role
    if action.instructions is not None:
        result["instructions"] = action.instructions
    result.update(action_params_to_dict(action))
    return result


def level_to_dict(level: Level) -> dict[str, Any]:
    result: dict[str, Any] = {"code": level.code, "days": level.days}
    if level.reminder:
        result["reminder"] = True
    if level.end:
        result["end"] = True
    if level.min_balance:
        result["min_balance"] = amounts_to_dict(level.min_balance)
    if level.deadline_days is not None:
        result["deadline_days"] = level.deadline_days
    result["actions"] = list(level.actions)
    return result


def rules_to_dict(rules: RuleSet | Condition) -> dict[str, Any]:
    if isinstance(rules, Condition):
        return {"field": rules.field, "op": rules.op, "value": rules.value}
    return {rules.combinator: [rules_to_dict(item) for item in rules.items]}


def policy_to_dict(policy: Policy, *, with_levels: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"name": policy.name}
    if policy.description:
        result["description"] = policy.description
    result.update(active=policy.active, default=policy.default, priority=policy.priority)
    if policy.min_balance:
        result["min_balance"] = amounts_to_dict(policy.min_balance)
    if policy.currency is not None:
        result["currency"] = policy.currency
    result["attach_invoice"] = policy.attach_invoice
    result["transition"] = policy.transition.value
    if with_levels:
        result["levels"] = [level_to_dict(level) for level in policy.levels]
    if policy.rules is not None:
        result["rules"] = rules_to_dict(policy.rules)
    return result


def webhook_to_dict(webhook: Webhook) -> dict[str, Any]:
    return {"url": webhook.url, "events": list(webhook.events), "active": webhook.active}


def config_to_dict(config: Config) -> dict[str, Any]:
    """The SPEC §4 shape; `parse_config(config_to_dict(c)).config == c`."""
    result: dict[str, Any] = {
        "settings": settings_to_dict(config.settings),
        "templates": [template_to_dict(t) for t in config.templates],
        "actions": [action_to_dict(a) for a in config.actions],
        "policies": [policy_to_dict(p) for p in config.policies],
    }
    if config.webhooks:
        result["webhooks"] = [webhook_to_dict(w) for w in config.webhooks]
    return result
