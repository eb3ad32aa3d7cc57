"""One base error with a message and an HTTP status; the CLI prints the message, exits 1."""

from __future__ import annotations


class RecoupError(Exception):
    status_code = 400

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  {line}" for line in self.details)


class NotFound(RecoupError):
    status_code = 404


class Conflict(RecoupError):
    status_code = 409


class InvalidInput(RecoupError):
    status_code = 422


class RunInProgress(Conflict):
    pass
