"""One error hierarchy for every face: a message, the field it is about, an HTTP status.

Services raise these and never name a face's spelling of a field: the message may hold
`{field}`, which the CLI renders as its option (`--until`), the API as the JSON name (`until`).
`str()` renders the field as it is named in the services (the API's spelling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request or a row: where (`field`, `index` in a batch) and why."""

    field: str | None
    message: str
    index: int | None = None


class RecoupError(Exception):
    status_code = 400
    title = "Request refused"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: list[str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message)
        self.template = message
        self.field = field
        self.details = details or []
        self.errors = errors or []

    @property
    def message(self) -> str:
        return self.render()

    def render(self, label: Callable[[str], str] | None = None) -> str:
        """The message with its field spelled by `label` (default: the field's own name)."""
        if self.field is None or "{field}" not in self.template:
            return self.template
        return self.template.replace("{field}", label(self.field) if label else self.field)

    def text(self, label: Callable[[str], str] | None = None) -> str:
        """The message and its details, one per indented line (how the CLI prints it)."""
        if not self.details:
            return self.render(label)
        return self.render(label) + "\n" + "\n".join(f"  {line}" for line in self.details)

    def __str__(self) -> str:
        return self.text()


class InvalidInput(RecoupError):
    """Malformed input: a value that is not a date, an unknown key, a row that breaks a rule of
    the format. The API answers 422."""

    status_code = 422
    title = "Invalid input"


class NotFound(RecoupError):
    status_code = 404
    title = "Not found"


class Conflict(RecoupError):
    """Well-formed, but a rule refuses it now: in use (R14), a plan's status (R11), a run in
    progress, the same rows changed at the same time. The API answers 409."""

    status_code = 409
    title = "Conflict"


class RunInProgress(Conflict):
    pass


def cli_flag(field: str) -> str:
    """How the CLI spells a service's field: `until` → `--until`, `as_of` → `--as-of`."""
    return "--" + field.replace("_", "-")
