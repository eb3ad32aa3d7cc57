"""The failure a channel reports when its server cannot be reached (recoup.domain.retry).

A module of its own, importing nothing of Recoup's, so every channel (email here, SMS and
webhooks in recoup.actions) can raise it and the action runner can tell an outage from a
refusal without the channels importing the runner."""

from __future__ import annotations


class TransportError(Exception):
    """The channel's server could not be reached or was busy: connection refused, a
    timeout, an SMTP 4xx, an HTTP 5xx or 429. An outage, not a verdict on the message: it is
    retried over hours, does not use up attempts, and pauses the channel for the batch.
    `reason` is the short form for summaries ("server unreachable")."""

    def __init__(self, message: str, *, reason: str = "server unreachable") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


__all__ = ["TransportError"]
