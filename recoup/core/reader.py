"""Reading a loaded document (YAML or JSON turned into dicts and lists) into typed values.

`DocumentReader` checks one value at a time and, instead of stopping at the first problem,
collects every one as a `ConfigIssue` with the path of the offending value
(`policies[0].levels[2].days`). The policy file's sections (`recoup.settings.document`,
`recoup.policies.document`) and the API's write schemas read through it, so a value is refused
with the same words wherever it comes from.

Amounts are decimal strings (ints accepted). Floats are refused: by the time YAML has turned
`15.10` into a float the written digits are gone, so the user is asked to quote the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from recoup.core.errors import FieldError, InvalidInput
from recoup.domain.validation import ConfigIssue

E = TypeVar("E", bound=StrEnum)

# Integers are stored in 32-bit columns (PostgreSQL INTEGER); larger ones cannot be applied.
MAX_INTEGER = 2**31 - 1


def type_name(value: object) -> str:
    if value is None:
        return "nothing"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


class DocumentReader:
    """Reads one file, appending an issue for every problem instead of stopping."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def issue(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message))

    def mapping(self, value: object, path: str) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.issue(path, f"must be a mapping, not {type_name(value)}")
            return None
        return value

    def sequence(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.issue(path, f"must be a list, not {type_name(value)}")
            return []
        return value

    def unknown_keys(self, obj: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in obj:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.issue(where, f"unknown field (expected one of: {', '.join(allowed)})")

    def text(
        self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.issue(f"{path}.{key}", "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.issue(f"{path}.{key}", f"must be text, not {type_name(value)}")
            return None
        text = str(value).strip()
        if required and not text:
            self.issue(f"{path}.{key}", "must not be empty")
            return None
        return text

    def raw_text(self, obj: Mapping[str, Any], key: str, path: str) -> str | None:
        """Like text() but keeps whitespace: template bodies are written as they are."""
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.issue(f"{path}.{key}", f"must be text, not {type_name(value)}")
            return None
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.issue(f"{path}.{key}", f"must be true or false, not {type_name(value)}")
            return default
        return value

    def integer(
        self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> int | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.issue(f"{path}.{key}", "is required (an integer)")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.issue(f"{path}.{key}", f"must be an integer, not {type_name(value)}")
            return None
        if abs(value) > MAX_INTEGER:
            self.issue(f"{path}.{key}", f"{value} is out of range (at most {MAX_INTEGER:,})")
            return None
        return value

    def choice(
        self, obj: Mapping[str, Any], key: str, path: str, enum: type[E], default: E | None
    ) -> E | None:
        value = obj.get(key)
        if value is None:
            if default is None:
                self.issue(f"{path}.{key}", f"is required (one of: {choices(enum)})")
            return default
        try:
            return enum(value)
        except ValueError:
            expected = choices(enum)
            self.issue(f"{path}.{key}", f"unknown value {value!r} (expected one of: {expected})")
            return None

    def decimal(self, value: object, path: str) -> Decimal | None:
        if isinstance(value, float):
            self.issue(
                path,
                f'write amounts and rates as quoted decimal strings, e.g. "{value}" '
                "(an unquoted number with a decimal point is read as a float)",
            )
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.issue(path, f"must be a decimal string, not {type_name(value)}")
            return None
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            self.issue(path, f"not a decimal number: {value!r}")
            return None
        if not number.is_finite():
            self.issue(path, f"not a finite number: {value!r}")
            return None
        return number

    def amounts(self, value: object, path: str) -> dict[str, Decimal]:
        """Amounts per currency: {EUR: "15.00"}; currency codes are checked by the validator."""
        if value is None:
            return {}
        obj = self.mapping(value, path)
        if obj is None:
            return {}
        result: dict[str, Decimal] = {}
        for currency, amount in obj.items():
            number = self.decimal(amount, f"{path}.{currency}")
            if number is not None:
                result[str(currency)] = number
        return result

    def text_list(self, value: object, path: str) -> tuple[str, ...]:
        items = self.sequence(value, path)
        result: list[str] = []
        for index, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, str | int) or not str(item).strip():
                self.issue(f"{path}[{index}]", f"must be non-empty text, not {type_name(item)}")
                continue
            result.append(str(item).strip())
        return tuple(result)


def choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def relative_path(path: str, root: str) -> str | None:
    """`path` without its `root` (`settings.max_levels` → `max_levels`): how a request's body
    names the field; None for the body itself."""
    if path == root:
        return None
    if root and path.startswith(root + "."):
        return path[len(root) + 1 :]
    if root and path.startswith(root + "["):
        return path[len(root) :]
    return path


def issues_error(what: str, issues: list[ConfigIssue], root: str = "") -> InvalidInput:
    """The problems of a request's body read like the policy file, in the file's words, at
    their path within the body: in `details` (`path: message`) and in `errors`."""
    noun = "problem" if len(issues) == 1 else "problems"
    errors = [FieldError(relative_path(i.path, root), i.message) for i in issues]
    return InvalidInput(
        f"{what}: {len(issues)} {noun}",
        details=[f"{e.field}: {e.message}" if e.field else e.message for e in errors],
        errors=errors,
    )
