"""Idempotency keys (SPEC §6, Stripe's semantics): the first answer to a POST sent with an
`Idempotency-Key` is kept and replayed for 24 hours; the same key with another request is
refused (422); while the first is still running, so is a second (409).

The face calls `reserve` in a transaction of its own, committed before the request runs (so a
concurrent request finds the reservation), then `complete` with the answer, or `release` when
there is nothing to replay (a server error: trying again must run it again). Services flush,
never commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from recoup.core.errors import Conflict, InvalidInput
from recoup.idempotency import repository

TTL = timedelta(hours=24)
# A reservation whose request never answered (its server died) is taken over after this long:
# far longer than any request runs, so a live one is never run twice.
IN_FLIGHT_TIMEOUT = timedelta(minutes=10)
MAX_KEY_LENGTH = 255
FIELD = "Idempotency-Key"


@dataclass(frozen=True)
class Reserved:
    """This request runs; its answer is to be stored on reservation `id`."""

    id: int


@dataclass(frozen=True)
class Replay:
    """The stored answer of the first request with this key."""

    status_code: int
    content_type: str | None
    body: bytes


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """What makes two requests the same request: method, path and query, body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidInput(
            f"{{field}} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            "(a UUID is a good key)",
            field=FIELD,
        )
    return key


# how often a server purges the expired keys, at most, while no backlog is left
PURGE_EVERY = timedelta(minutes=1)


@dataclass
class PurgeSchedule:
    """When a server purges expired keys before a reservation (`reserve(purge=...)`): at most
    every PURGE_EVERY, and at each reservation while the last purge found a full batch (a
    backlog). The purge is a statement of its own; most reservations have nothing to purge."""

    last: datetime | None = None
    backlog: bool = False

    def claim(self, now: datetime) -> bool:
        """Whether the reservation at `now` purges; if so, the next ones wait (no herd)."""
        if self.backlog or self.last is None or now - self.last >= PURGE_EVERY:
            self.last = now
            return True
        return False

    def done(self, removed: int) -> None:
        self.backlog = removed >= repository.PURGE_BATCH


def reserve(
    session: Session,
    *,
    api_key_id: int,
    key: str,
    fingerprint: str,
    now: datetime,
    purges: PurgeSchedule | None = None,
) -> Reserved | Replay:
    """Reserve `key` for this request, or the stored answer to replay. Expired keys are purged
    first (lazily: here, not by a job; a batch at a time, and one still there is not
    replayed: it goes, and the key is reserved anew), every time, or when `purges` says."""
    check_key(key)
    cutoff = now - TTL
    if purges is None:
        repository.purge_created_before(session, cutoff)
    elif purges.claim(now):
        purges.done(repository.purge_created_before(session, cutoff))
    row = None
    # a second time: the one found was released in between, or had expired
    for _attempt in (1, 2):
        row_id = repository.add_unless_taken(
            session, api_key_id=api_key_id, key=key, fingerprint=fingerprint, now=now
        )
        if row_id is not None:
            return Reserved(row_id)
        row = repository.find(session, api_key_id, key)
        if row is not None and row.created_at < cutoff:
            repository.remove_expired(session, row.id, cutoff)
            row = None
        if row is not None:
            break
    if row is None:
        raise Conflict(
            "{field}: another request with this key came and went at the same moment; try again",
            field=FIELD,
        )
    if row.fingerprint != fingerprint:
        raise InvalidInput(
            "{field} was used with another request (another path or body) in the last 24 "
            "hours: use a new key for a new request",
            field=FIELD,
        )
    if row.status_code is None:
        if now - row.locked_at >= IN_FLIGHT_TIMEOUT and repository.take_over(
            session, row.id, row.locked_at, now
        ):
            return Reserved(row.id)
        raise Conflict(
            "{field}: the first request with this key is still being answered; try again in "
            "a moment to get its answer",
            field=FIELD,
        )
    return Replay(row.status_code, row.content_type, row.body or b"")


def complete(
    session: Session,
    reservation: Reserved,
    *,
    status_code: int,
    content_type: str | None,
    body: bytes,
) -> None:
    """Keep the answer to replay (purged meanwhile, a request of more than a day: nothing to
    keep)."""
    repository.keep_answer(
        session, reservation.id, status_code=status_code, content_type=content_type, body=body
    )


def release(session: Session, reservation: Reserved) -> None:
    """Forget the reservation: the request is to run again when sent again."""
    repository.remove(session, reservation.id)


__all__ = [
    "FIELD",
    "IN_FLIGHT_TIMEOUT",
    "MAX_KEY_LENGTH",
    "TTL",
    "Replay",
    "Reserved",
    "check_key",
    "complete",
    "fingerprint",
    "release",
    "reserve",
]
