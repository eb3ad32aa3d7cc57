"""Is a configuration sound, and may it replace the one in use? (SPEC §1, §3, R7, R9, R11, R14)

`validate_config` returns every problem as a `ConfigIssue` (path, message), never raising, so
the CLI, the API and the web forms can show them all at once. What the database says is in use
comes in as a `ConfigUsage` value: this module never queries anything. Whether a template's
text is well-formed is the template engine's to say: a `TemplateSyntax` function comes in too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recoup.domain.enums import (
    CANCELLED_ACCOUNT_STATUS,
    ActionType,
    Channel,
    Mode,
    WebhookEvent,
)
from recoup.domain.locales import is_language
from recoup.domain.money import is_currency
from recoup.domain.policy import Action, Condition, Config, Policy, RuleSet, Settings
from recoup.domain.redact import redact_url, url_problem
from recoup.domain.rules import CUSTOMER_FIELDS, OPERATORS


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem of a configuration, at the path of the offending value
    (`policies[0].levels[2].days`). `refusal`: the configuration is well-formed but a rule
    refuses it given what the database holds (R11, R14: a conflict, not a malformed value)."""

    path: str
    message: str
    refusal: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# The problem of a template's source text (`template error on line 2: …`), or None when it is
# well-formed.
TemplateSyntax = Callable[[str], str | None]

SEND_CHANNELS: dict[ActionType, Channel] = {
    ActionType.send_email: Channel.email,
    ActionType.send_letter: Channel.letter,
    ActionType.send_sms: Channel.sms,
}
SERVICE_TYPES = (ActionType.late_fee_fixed, ActionType.late_fee_percent, ActionType.interest)
# Before the due date nothing is late and no plan exists to block: a reminder only tells.
REMINDER_TYPES = (*SEND_CHANNELS, ActionType.webhook)
LIST_OPERATORS = ("in", "not_in")
MAX_LISTED = 5
MAX_LEVELS_LIMIT = 1_000
MAX_LEVEL_DAYS = 36_500  # a hundred years: beyond, date arithmetic overflows


@dataclass(frozen=True)
class Usage:
    """What in the database refers to one configuration object (R14)."""

    plans: int = 0
    plan_ids: tuple[int, ...] = ()  # a few of them, to list in the message
    action_instances: int = 0
    customers: int = 0  # customers naming the policy explicitly (R3)

    def describe(self) -> str:
        parts: list[str] = []
        if self.customers:
            noun = "customer" if self.customers == 1 else "customers"
            parts.append(f"{self.customers} {noun} (as their explicit policy)")
        if self.plans:
            ids = ", ".join(f"#{i}" for i in self.plan_ids[:MAX_LISTED])
            more = ", …" if self.plans > len(self.plan_ids[:MAX_LISTED]) else ""
            noun = "plan" if self.plans == 1 else "plans"
            parts.append(f"{self.plans} {noun} ({ids}{more})" if ids else f"{self.plans} {noun}")
        if self.action_instances:
            noun = "action instance" if self.action_instances == 1 else "action instances"
            parts.append(f"{self.action_instances} {noun}")
        return " and ".join(parts) or "history"


def in_use_message(kind: str, name: str, usage: Usage) -> str:
    """Why a `policy`, `action` or `template` that `usage` refers to cannot be removed (R14)."""
    message = f"{kind} {name!r} cannot be removed: it is used by {usage.describe()}"
    return message + " (set active: false instead)" if kind == "policy" else message


@dataclass(frozen=True)
class ConfigUsage:
    """What the database holds that a new configuration must respect (R11, R14)."""

    current_mode: Mode | None = None
    open_plan_count: int = 0
    # invoice type -> number of open (active/paused) plans covering an invoice of that type
    open_plan_invoice_types: Mapping[str, int] = field(default_factory=dict)
    used_policies: Mapping[str, Usage] = field(default_factory=dict)
    used_levels: Mapping[tuple[str, str], Usage] = field(default_factory=dict)  # (policy, level)
    used_actions: Mapping[str, Usage] = field(default_factory=dict)
    used_templates: Mapping[str, Usage] = field(default_factory=dict)  # template code


def validate_config(
    config: Config,
    usage: ConfigUsage | None = None,
    *,
    broken: frozenset[str] = frozenset(),
    template_syntax: TemplateSyntax | None = None,
) -> list[ConfigIssue]:
    """Every reason `config` cannot be applied. `broken` names items the parser already
    reported (`settings`, `template:<code>`, `action:<code>`, `policy:<name>`); they are not
    checked again and references to them are taken as valid. Without `template_syntax`,
    templates' source text is not checked."""
    checker = _Checker(config, usage or ConfigUsage(), broken, template_syntax)
    checker.settings()
    checker.templates()
    checker.actions()
    checker.policies()
    checker.webhooks()
    checker.removals()
    return checker.issues


def validate_settings(settings: Settings, usage: ConfigUsage | None = None) -> list[ConfigIssue]:
    """The `settings` part of `validate_config`, on its own (the API's settings update)."""
    checker = _Checker(Config(settings=settings), usage or ConfigUsage(), frozenset(), None)
    checker.settings()
    return checker.issues


class _Checker:
    def __init__(
        self,
        config: Config,
        usage: ConfigUsage,
        broken: frozenset[str],
        template_syntax: TemplateSyntax | None,
    ) -> None:
        self.config = config
        self.usage = usage
        self.broken = broken
        self.template_syntax = template_syntax
        self.issues: list[ConfigIssue] = []

    def issue(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message))

    def refuse(self, path: str, message: str) -> None:
        """A rule refuses the change given what the database holds (R11, R14)."""
        self.issues.append(ConfigIssue(path, message, refusal=True))

    def is_broken(self, kind: str, name: str) -> bool:
        return f"{kind}:{name}" in self.broken

    # --- settings ----------------------------------------------------------------------------

    def settings(self) -> None:
        if "settings" in self.broken:
            return
        settings = self.config.settings
        if not settings.invoice_types:
            self.issue("settings.invoice_types", "must list at least one invoice type")
        for type_, count in sorted(self.usage.open_plan_invoice_types.items()):
            if count and type_ not in settings.invoice_types:
                self.refuse(
                    "settings.invoice_types",
                    f"invoice type {type_!r} cannot be removed while {_plans(count)} "
                    "cover invoices of that type (rule R11 in docs/rules.md)",
                )
        if settings.customer_balance is not None:
            if not settings.customer_balance:
                self.issue("settings.customer_balance", "must list at least one invoice type")
            for index, type_ in enumerate(settings.customer_balance):
                if type_ not in settings.invoice_types:
                    self.issue(
                        f"settings.customer_balance[{index}]",
                        f"{type_!r} is not one of settings.invoice_types",
                    )
        if settings.max_levels < 1:
            self.issue("settings.max_levels", "must be at least 1")
        elif settings.max_levels > MAX_LEVELS_LIMIT:
            self.issue(
                "settings.max_levels",
                f"{settings.max_levels} is more than a policy can use (at most {MAX_LEVELS_LIMIT})",
            )
        if not _is_timezone(settings.timezone):
            self.issue("settings.timezone", f"unknown time zone {settings.timezone!r}")
        current = self.usage.current_mode
        if current is not None and settings.mode != current and self.usage.open_plan_count:
            self.refuse(
                "settings.mode",
                f"cannot change from {current.value} to {settings.mode.value} while "
                f"{_plans(self.usage.open_plan_count)} are active or paused "
                "(rule R11 in docs/rules.md)",
            )

    # --- templates ---------------------------------------------------------------------------

    def templates(self) -> None:
        seen: dict[tuple[str, str], int] = {}
        for index, template in enumerate(self.config.templates):
            path = f"templates[{index}]"
            if self.is_broken("template", template.code):
                continue
            key = (template.code, template.language)
            if key in seen:
                self.issue(
                    f"{path}.language",
                    f"template {template.code!r} already exists in language "
                    f"{template.language!r} (templates[{seen[key]}])",
                )
            else:
                seen[key] = index
            if not is_language(template.language):
                self.issue(
                    f"{path}.language",
                    f"{template.language!r} is not a known language code (like en, fr, pt_BR): "
                    "no customer could be written to in it",
                )
            if template.channel is Channel.email and not (template.subject or "").strip():
                self.issue(f"{path}.subject", "an email template needs a subject")
            if not template.body.strip():
                self.issue(f"{path}.body", "must not be empty")
            for part in ("subject", "body"):
                source = template.subject if part == "subject" else template.body
                if not source or self.template_syntax is None:
                    continue
                problem = self.template_syntax(source)
                if problem is not None:
                    self.issue(f"{path}.{part}", problem)

    # --- actions -----------------------------------------------------------------------------

    def actions(self) -> None:
        seen: dict[str, int] = {}
        for index, action in enumerate(self.config.actions):
            path = f"actions[{index}]"
            if self.is_broken("action", action.code):
                continue
            if action.code in seen:
                self.issue(
                    f"{path}.code",
                    f"action {action.code!r} is defined twice (actions[{seen[action.code]}])",
                )
            else:
                seen[action.code] = index
            self.action(action, path)

    def action(self, action: Action, path: str) -> None:
        params = action.params
        if action.is_manual and not (action.role or "").strip():
            self.issue(f"{path}.role", "a manual action needs the role that will do it")
        channel = SEND_CHANNELS.get(action.type)
        if channel is not None:
            self.template_reference(action, channel, path)
        letter = params.get("letter_template") if action.type is ActionType.send_email else None
        if letter:  # an email that generates the letter it attaches
            self.template_code(str(letter), Channel.letter, f"{path}.letter_template")
        if action.type in SERVICE_TYPES and not params.get("service"):
            self.issue(f"{path}.service", f"{action.type.value} needs a service (penalty code)")
        if action.type is ActionType.late_fee_fixed:
            amounts = params.get("amounts") or {}
            if not amounts:
                self.issue(f"{path}.amounts", "needs an amount for at least one currency")
            self.amounts(amounts, f"{path}.amounts", positive=True)
        elif action.type is ActionType.late_fee_percent:
            rate = params.get("rate")
            if rate is None:
                self.issue(f"{path}.rate", "is required (a percent of the remaining balance)")
            elif not Decimal(0) <= rate <= Decimal(100):
                self.issue(f"{path}.rate", f"must be a percent between 0 and 100, not {rate}")
            minimum: Mapping[str, Decimal] = params.get("min") or {}
            maximum: Mapping[str, Decimal] = params.get("max") or {}
            self.amounts(minimum, f"{path}.min", positive=False)
            self.amounts(maximum, f"{path}.max", positive=False)
            for currency, low in minimum.items():
                high = maximum.get(currency)
                if high is not None and low > high:
                    self.issue(f"{path}.min.{currency}", f"{low} is above max {high}")
        elif action.type is ActionType.interest:
            annual = params.get("annual_rate")
            if annual is None:
                self.issue(f"{path}.annual_rate", "is required (a yearly percent)")
            elif annual < 0:
                self.issue(f"{path}.annual_rate", f"must not be negative, not {annual}")
        elif action.type is ActionType.change_account_status:
            status = str(params.get("status") or "").strip()
            if not status:
                self.issue(f"{path}.status", "is required (the account status to set)")
            elif status.lower() == CANCELLED_ACCOUNT_STATUS:
                self.issue(
                    f"{path}.status",
                    f"{CANCELLED_ACCOUNT_STATUS!r} is final and cannot be set by dunning "
                    "(rule R12 in docs/rules.md)",
                )
        elif action.type is ActionType.webhook:
            url = str(params.get("url") or "")
            if not url:
                self.issue(f"{path}.url", "is required")
            elif not url.startswith(("http://", "https://")):
                self.issue(f"{path}.url", f"must be an http(s) URL, not {redact_url(url)!r}")
            elif url_problem(url):
                self.issue(f"{path}.url", str(url_problem(url)))

    def template_reference(self, action: Action, channel: Channel, path: str) -> None:
        code = action.template
        if not code:
            self.issue(f"{path}.template", f"{action.type.value} needs a template")
            return
        self.template_code(code, channel, f"{path}.template")

    def template_code(self, code: str, channel: Channel, where: str) -> None:
        if self.is_broken("template", code):
            return
        candidates = self.config.templates_for(code)
        if any(t.channel is channel and t.active for t in candidates):
            return
        if not candidates:
            message = f"no template {code!r}"
        elif not any(t.channel is channel for t in candidates):
            others = sorted({t.channel.value for t in candidates})
            message = f"template {code!r} is for {', '.join(others)}, not {channel.value}"
        else:
            message = f"template {code!r} has no active {channel.value} version"
        self.issue(where, message)

    def amounts(self, amounts: Mapping[str, Decimal], path: str, *, positive: bool) -> None:
        for currency, amount in amounts.items():
            where = f"{path}.{currency}"
            if not is_currency(currency):
                self.issue(where, f"unknown currency {currency!r} (ISO 4217 code expected)")
            elif positive and amount <= 0:
                self.issue(where, f"must be positive, not {amount}")
            elif amount < 0:
                self.issue(where, f"must not be negative, not {amount}")

    # --- policies ----------------------------------------------------------------------------

    def policies(self) -> None:
        names: dict[str, int] = {}
        priorities: dict[int, int] = {}
        defaults: list[int] = []
        for index, policy in enumerate(self.config.policies):
            path = f"policies[{index}]"
            if self.is_broken("policy", policy.name):
                continue
            if policy.name in names:
                self.issue(
                    f"{path}.name",
                    f"policy {policy.name!r} is defined twice (policies[{names[policy.name]}])",
                )
            else:
                names[policy.name] = index
            if policy.priority in priorities:
                other = self.config.policies[priorities[policy.priority]].name
                self.issue(
                    f"{path}.priority",
                    f"priority {policy.priority} is already policy {other!r}'s (must be unique)",
                )
            else:
                priorities[policy.priority] = index
            if policy.default:
                defaults.append(index)
                if len(defaults) > 1:
                    first = self.config.policies[defaults[0]].name
                    self.issue(
                        f"{path}.default",
                        f"only one policy can be the default (already {first!r})",
                    )
            if policy.currency is not None and not is_currency(policy.currency):
                self.issue(f"{path}.currency", f"unknown currency {policy.currency!r}")
            self.amounts(policy.min_balance, f"{path}.min_balance", positive=False)
            self.levels(policy, path)
            if policy.rules is not None:
                self.rules(policy.rules, f"{path}.rules")

    def levels(self, policy: Policy, path: str) -> None:
        levels = policy.levels
        settings = self.config.settings
        if "settings" not in self.broken and len(levels) > settings.max_levels:
            self.issue(
                f"{path}.levels",
                f"has {len(levels)} levels; settings.max_levels allows {settings.max_levels} "
                "(rule R11 in docs/rules.md)",
            )
        if not any(not level.reminder for level in levels):
            self.issue(f"{path}.levels", "needs at least one level that is not a reminder")
        ends = [j for j, level in enumerate(levels) if level.end]
        if not ends:
            self.issue(f"{path}.levels", "needs exactly one end level (end: true); it has none")
        for j in ends[1:]:
            first = levels[ends[0]].code
            self.issue(f"{path}.levels[{j}].end", f"only one end level allowed (already {first!r})")
        codes: dict[str, int] = {}
        days: dict[int, int] = {}
        for j, level in enumerate(levels):
            where = f"{path}.levels[{j}]"
            if level.code in codes:
                self.issue(
                    f"{where}.code",
                    f"level code {level.code!r} is used twice (levels[{codes[level.code]}])",
                )
            else:
                codes[level.code] = j
            if level.days in days:
                other = levels[days[level.days]].code
                self.issue(
                    f"{where}.days",
                    f"level {other!r} already fires at {level.days} days; each level needs "
                    "its own day",
                )
            else:
                days[level.days] = j
            if abs(level.days) > MAX_LEVEL_DAYS:
                self.issue(
                    f"{where}.days",
                    f"{level.days} is out of range (at most {MAX_LEVEL_DAYS:,} days)",
                )
            if j and level.days < levels[j - 1].days:
                previous = levels[j - 1]
                self.issue(
                    f"{where}.days",
                    f"levels must be listed in ascending days: {level.code!r} ({level.days}) "
                    f"comes after {previous.code!r} ({previous.days})",
                )
            if level.reminder and level.end:
                self.issue(f"{where}.end", "a level cannot be both a reminder and the end")
            if level.reminder and level.days >= 0:
                self.issue(
                    f"{where}.days",
                    f"a reminder fires before the due date: days must be negative, not "
                    f"{level.days}",
                )
            if not level.reminder and level.days < 0:
                self.issue(
                    f"{where}.days",
                    f"{level.days} is before the due date: only reminder levels "
                    "(reminder: true) can have negative days",
                )
            if level.end and not level.reminder:
                later = [other for other in levels if other.days > level.days]
                if later:
                    self.issue(
                        f"{where}.days",
                        f"the end level must have the greatest days; {later[0].code!r} "
                        f"has {later[0].days}",
                    )
            self.amounts(level.min_balance, f"{where}.min_balance", positive=False)
            self.level_actions(level.actions, level.reminder, f"{where}.actions")

    def level_actions(self, codes: tuple[str, ...], reminder: bool, path: str) -> None:
        seen: set[str] = set()
        for k, code in enumerate(codes):
            where = f"{path}[{k}]"
            if code in seen:
                self.issue(where, f"action {code!r} is listed twice on this level")
                continue
            seen.add(code)
            if self.is_broken("action", code):
                continue
            action = self.config.action(code)
            if action is None:
                self.issue(where, f"no action {code!r} (define it under actions)")
            elif reminder and (action.is_manual or action.type not in REMINDER_TYPES):
                kind = "manual" if action.is_manual else action.type.value
                self.issue(
                    where,
                    f"a reminder level can only send messages or call a webhook, "
                    f"not {kind} ({code!r})",
                )

    def rules(self, rules: RuleSet | Condition, path: str) -> None:
        if isinstance(rules, RuleSet):
            for index, item in enumerate(rules.items):
                self.rules(item, f"{path}.{rules.combinator}[{index}]")
            return
        name = rules.field
        if name not in CUSTOMER_FIELDS and not (
            name.startswith("attributes.") and len(name) > len("attributes.")
        ):
            self.issue(
                f"{path}.field",
                f"unknown customer field {name!r} (expected {', '.join(CUSTOMER_FIELDS)} "
                "or attributes.<name>)",
            )
        if rules.op not in OPERATORS:
            self.issue(f"{path}.op", f"unknown operator {rules.op!r} ({' '.join(OPERATORS)})")
        elif rules.op in LIST_OPERATORS and not isinstance(rules.value, list):
            self.issue(f"{path}.value", f"{rules.op} needs a list of values")
        elif rules.op not in LIST_OPERATORS and isinstance(rules.value, list):
            self.issue(f"{path}.value", f"{rules.op} compares with one value, not a list")

    # --- outgoing events ---------------------------------------------------------------------

    def webhooks(self) -> None:
        known = {event.value for event in WebhookEvent}
        seen: dict[str, int] = {}
        for index, webhook in enumerate(self.config.webhooks):
            path = f"webhooks[{index}]"
            if not webhook.url:
                continue  # the parser reported it
            if not webhook.url.startswith(("http://", "https://")):
                self.issue(
                    f"{path}.url", f"must be an http(s) URL, not {redact_url(webhook.url)!r}"
                )
            elif url_problem(webhook.url):
                self.issue(f"{path}.url", str(url_problem(webhook.url)))
            if webhook.url in seen:
                self.issue(
                    f"{path}.url",
                    f"endpoint {redact_url(webhook.url)!r} is listed twice "
                    f"(webhooks[{seen[webhook.url]}])",
                )
            else:
                seen[webhook.url] = index
            if not webhook.events:
                self.issue(f"{path}.events", "must list at least one event")
            for j, event in enumerate(webhook.events):
                if event not in known:
                    self.issue(
                        f"{path}.events[{j}]",
                        f"unknown event {event!r} (expected one of: {', '.join(sorted(known))})",
                    )

    # --- R14: what is in use cannot go -------------------------------------------------------

    def removals(self) -> None:
        config = self.config
        for name, usage in sorted(self.usage.used_policies.items()):
            if config.policy(name) is None and not self.is_broken("policy", name):
                self.refuse("policies", in_use_message("policy", name, usage))
        for (policy_name, code), usage in sorted(self.usage.used_levels.items()):
            policy = config.policy(policy_name)
            if policy is None or self.is_broken("policy", policy_name):
                continue  # the policy's own removal is reported above
            if policy.level(code) is None:
                index = config.policies.index(policy)
                self.refuse(
                    f"policies[{index}].levels",
                    f"level {code!r} of policy {policy_name!r} cannot be removed: it is used "
                    f"by {usage.describe()}",
                )
        for code, usage in sorted(self.usage.used_actions.items()):
            if config.action(code) is None and not self.is_broken("action", code):
                self.refuse("actions", in_use_message("action", code, usage))
        for code, usage in sorted(self.usage.used_templates.items()):
            if not config.templates_for(code) and not self.is_broken("template", code):
                self.refuse("templates", in_use_message("template", code, usage))


def _plans(count: int) -> str:
    return f"{count} plan" if count == 1 else f"{count} plans"


def _is_timezone(name: str) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- warnings: sound, but probably not what was meant (printed, never refusing) --------------


def fee_warnings(
    config: Config, customer_currencies: Mapping[str, int] | None = None
) -> list[ConfigIssue]:
    """A `late_fee_fixed` action with no amount for a currency it will meet: one a policy that
    uses it has a `min_balance` (or its `currency`) for, or one customers' invoices are in
    (`customer_currencies`: currency -> number of customers). Such a fee is skipped."""
    warnings: list[ConfigIssue] = []
    seen: set[tuple[str, str]] = set()
    for index, action in enumerate(config.actions):
        if action.type is not ActionType.late_fee_fixed:
            continue
        amounts = action.params.get("amounts") or {}
        for policy in config.policies:
            if not any(action.code in level.actions for level in policy.levels):
                continue
            reasons: dict[str, str] = {}
            if policy.currency is not None:
                reasons[policy.currency] = f"policy {policy.name!r} is for {policy.currency}"
            else:
                for currency, count in sorted((customer_currencies or {}).items()):
                    noun = "customer has" if count == 1 else "customers have"
                    reasons[currency] = f"{count} {noun} invoices in {currency}"
                for currency in policy.min_balance:
                    reasons[currency] = f"policy {policy.name!r} has a min_balance in {currency}"
            for currency, why in reasons.items():
                if currency in amounts or (action.code, currency) in seen:
                    continue
                seen.add((action.code, currency))
                warnings.append(
                    ConfigIssue(
                        f"actions[{index}].amounts",
                        f"no amount for {currency} ({why}): the fee will be skipped in {currency}",
                    )
                )
    return warnings
