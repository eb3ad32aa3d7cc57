"""Policy resolution (R3): which policy applies to a customer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from recoup.domain.policy import Condition, Policy, RuleSet

OPERATORS = ("=", "!=", "in", "not_in", ">", ">=", "<", "<=")
CUSTOMER_FIELDS = ("category", "country", "currency", "is_company", "payment_method", "language")


@dataclass(frozen=True)
class Resolution:
    policy: Policy | None
    reason: str


def customer_value(customer: Mapping[str, Any], field_name: str) -> Any:
    if field_name.startswith("attributes."):
        attributes = customer.get("attributes") or {}
        return attributes.get(field_name.split(".", 1)[1])
    return customer.get(field_name)


def _normalise(value: Any) -> Any:
    """Compare numbers as numbers and everything else as text, so CSV strings match YAML ints."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        lowered = value.strip()
        if lowered.lower() in ("true", "false"):
            return lowered.lower() == "true"
        try:
            return Decimal(lowered)
        except InvalidOperation:
            return lowered
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("in", "not_in"):
        options = expected if isinstance(expected, list | tuple) else [expected]
        found = _normalise(actual) in [_normalise(o) for o in options]
        return found if op == "in" else not found
    left, right = _normalise(actual), _normalise(expected)
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
    except TypeError:
        return False
    raise ValueError(f"unknown operator {op!r}")


def matches(rules: RuleSet | Condition | None, customer: Mapping[str, Any]) -> bool:
    if rules is None:
        return True
    if isinstance(rules, Condition):
        return _compare(customer_value(customer, rules.field), rules.op, rules.value)
    results = (matches(item, customer) for item in rules.items)
    return all(results) if rules.combinator == "all" else any(results)


def resolve_policy(customer: Mapping[str, Any], policies: Iterable[Policy]) -> Resolution:
    """The customer's explicit policy, else the first active policy by priority whose rules
    match (a policy without rules is only ever chosen explicitly or as the default), else the
    active default policy."""
    policies = list(policies)
    explicit = customer.get("policy")
    if explicit:
        for policy in policies:
            if policy.name == explicit:
                if not policy.active:
                    return Resolution(None, f"explicit policy {explicit!r} is inactive")
                return Resolution(policy, f"customer's explicit policy {explicit!r}")
        return Resolution(None, f"explicit policy {explicit!r} does not exist")
    for policy in sorted(policies, key=lambda p: p.priority):
        if policy.active and policy.rules is not None and matches(policy.rules, customer):
            return Resolution(
                policy, f"first active policy by priority whose rules match ({policy.name!r})"
            )
    for policy in policies:
        if policy.active and policy.default:
            return Resolution(policy, f"no rules matched: default policy {policy.name!r}")
    return Resolution(None, "no explicit policy, no matching rules and no active default policy")
