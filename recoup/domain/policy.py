"""The dunning configuration as plain values: settings, templates, actions, levels, policies.

The policy file (SPEC §4, read by `recoup.policies.document`), the database and the web forms
all convert to and from these; the validator and the evaluator work only on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

from recoup.domain.defaults import (
    DEFAULT_CATCH_UP,
    DEFAULT_INVOICE_TYPES,
    DEFAULT_MAX_LEVELS,
    DEFAULT_MODE,
    DEFAULT_TIMEZONE,
)
from recoup.domain.enums import (
    ActionMode,
    ActionType,
    CatchUp,
    Channel,
    Mode,
    Transition,
)
from recoup.domain.money import ZERO


@dataclass(frozen=True)
class Settings:
    mode: Mode = DEFAULT_MODE
    invoice_types: tuple[str, ...] = DEFAULT_INVOICE_TYPES
    customer_balance: tuple[str, ...] | None = None  # None: all of invoice_types
    max_levels: int = DEFAULT_MAX_LEVELS
    timezone: str = DEFAULT_TIMEZONE
    catch_up: CatchUp = DEFAULT_CATCH_UP
    company: Mapping[str, str] = field(default_factory=dict)

    @property
    def balance_types(self) -> tuple[str, ...]:
        return self.customer_balance if self.customer_balance is not None else self.invoice_types


@dataclass(frozen=True)
class Template:
    code: str
    channel: Channel
    language: str
    body: str
    subject: str | None = None
    active: bool = True


@dataclass(frozen=True)
class Action:
    code: str
    type: ActionType
    mode: ActionMode = ActionMode.automatic
    role: str | None = None
    instructions: str | None = None
    # Type-specific fields (template, amounts, rate, min, max, service, annual_rate, status, url,
    # attach_invoice, ...), kept as given so export writes back what was applied.
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_manual(self) -> bool:
        return self.mode is ActionMode.manual or self.type is ActionType.manual

    @property
    def template(self) -> str | None:
        value = self.params.get("template")
        return str(value) if value is not None else None

    @property
    def without_notice(self) -> bool:
        """A fee or interest charged even when its level's notices were not delivered."""
        return self.params.get("without_notice") is True


@dataclass(frozen=True)
class Level:
    code: str
    days: int
    actions: tuple[str, ...] = ()
    reminder: bool = False
    end: bool = False
    min_balance: Mapping[str, Decimal] = field(default_factory=dict)
    deadline_days: int | None = None  # templates' `deadline`: today + these days

    def min_balance_for(self, currency: str) -> Decimal:
        return self.min_balance.get(currency, ZERO)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class RuleSet:
    """`all` or `any` of conditions and nested rule sets."""

    combinator: str  # "all" | "any"
    items: tuple[Condition | RuleSet, ...]


@dataclass(frozen=True)
class Policy:
    name: str
    priority: int
    levels: tuple[Level, ...]
    description: str = ""
    active: bool = True
    default: bool = False
    min_balance: Mapping[str, Decimal] = field(default_factory=dict)
    currency: str | None = None
    attach_invoice: bool = False
    transition: Transition = Transition.days_overdue
    rules: RuleSet | None = None

    def min_balance_for(self, currency: str) -> Decimal:
        return self.min_balance.get(currency, ZERO)

    @cached_property
    def ordered_levels(self) -> tuple[Level, ...]:
        return tuple(sorted(self.levels, key=lambda level: level.days))

    @cached_property
    def reminder_levels(self) -> tuple[Level, ...]:
        return tuple(level for level in self.ordered_levels if level.reminder)

    @cached_property
    def dunning_levels(self) -> tuple[Level, ...]:
        """Levels a plan climbs, in order of days (reminders excluded)."""
        return tuple(level for level in self.ordered_levels if not level.reminder)

    def level(self, code: str) -> Level | None:
        for level in self.levels:
            if level.code == code:
                return level
        return None


@dataclass(frozen=True)
class Webhook:
    """An endpoint that receives outgoing events (SPEC §5 "webhooks out"), signed."""

    url: str
    events: tuple[str, ...] = ()  # WebhookEvent values; the validator checks the names
    active: bool = True


@dataclass(frozen=True)
class Config:
    settings: Settings = field(default_factory=Settings)
    templates: tuple[Template, ...] = ()
    actions: tuple[Action, ...] = ()
    policies: tuple[Policy, ...] = ()
    webhooks: tuple[Webhook, ...] = ()

    def action(self, code: str) -> Action | None:
        for action in self.actions:
            if action.code == code:
                return action
        return None

    def policy(self, name: str) -> Policy | None:
        for policy in self.policies:
            if policy.name == name:
                return policy
        return None

    def templates_for(self, code: str) -> tuple[Template, ...]:
        return tuple(t for t in self.templates if t.code == code)
