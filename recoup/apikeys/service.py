"""Create, revoke and check API keys. A key is a random token (`rk_` and 256 bits from
`secrets`), shown once; the database keeps its SHA-256 only: a high-entropy token needs no slow
password hash, and a stolen table gives no key. Services flush, never commit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from recoup.apikeys import repository
from recoup.apikeys.schemas import ApiKeyCreated, ApiKeyRead, Role
from recoup.core.clock import utc_now
from recoup.core.errors import Conflict, InvalidInput
from recoup.models import ApiKey

KEY_PREFIX = "rk_"
PREFIX_SHOWN = len(KEY_PREFIX) + 6  # `rk_` and the key's first six characters
LAST_USED_EVERY = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str, role: str) -> ApiKeyCreated:
    """A new key named `name` with `role`; the answer holds the key, which is not kept."""
    name = name.strip()
    if not name:
        raise InvalidInput("{field} must not be empty", field="name")
    try:
        checked = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"{{field}} {role!r}: a role is {known}", field="role") from None
    if repository.name_taken(session, name):
        raise Conflict(f"an API key named {name!r} exists already", field="name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        role=checked.value,
        key_hash=hash_key(key),
        prefix=key[:PREFIX_SHOWN],
        created_at=utc_now(),
    )
    session.add(row)
    session.flush()
    return ApiKeyCreated(**ApiKeyRead.model_validate(row).model_dump(), key=key)


def revoke_key(session: Session, name: str) -> ApiKey:
    row = repository.get_by_name_or_not_found(session, name)
    if row.revoked_at is not None:
        raise Conflict(f"API key {name!r} was revoked already")
    row.revoked_at = utc_now()
    session.flush()
    return row


@dataclass(frozen=True)
class Caller:
    """A live key that called: its id, its name (the actor in the log) and its role."""

    id: int
    name: str
    role: str


def authenticate(session: Session, key: str) -> Caller | None:
    """The live key `key` is, or None (unknown or revoked). The lookup is by the hash (a unique
    index), and the stored hash is then compared in constant time."""
    digest = hash_key(key)
    row = repository.credentials_by_hash(session, digest)
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        return None
    now = utc_now()
    # at most one write a minute per key: a read-only request should not write every time
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        repository.set_last_used(session, row.id, now)
    return Caller(id=row.id, name=row.name, role=row.role)


class KeyCache:
    """The keys a server checked in the last `ttl` seconds, by their hash, so that a request
    need not read its key again: a key revoked meanwhile is refused `ttl` seconds later at
    most (RECOUP_API_KEY_CACHE_SECONDS; 0 reads the key on every request). Unknown and revoked
    keys are not kept: each such request looks again."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._callers: dict[str, tuple[float, Caller]] = {}

    def get(self, key: str) -> Caller | None:
        if self.ttl <= 0:
            return None
        digest = hash_key(key)
        found = self._callers.get(digest)
        if found is None:
            return None
        checked_at, caller = found
        if self._clock() - checked_at >= self.ttl:
            self._callers.pop(digest, None)
            return None
        return caller

    def put(self, key: str, caller: Caller) -> None:
        if self.ttl <= 0:
            return
        if len(self._callers) >= MAX_CACHED_KEYS:
            self._callers.clear()  # bounded: a flood of keys only costs their lookups
        self._callers[hash_key(key)] = (self._clock(), caller)


MAX_CACHED_KEYS = 10_000


def check_key(session: Session, cache: KeyCache, key: str) -> Caller | None:
    """The live key `key` is: from `cache` while it trusts it, else read (`authenticate`) and
    kept there from now. A key found in the cache is not put back: that would renew its time to
    live, and a revoked key in steady use would never be read again."""
    caller = cache.get(key)
    if caller is None:
        caller = authenticate(session, key)
        if caller is not None:
            cache.put(key, caller)
    return caller


__all__ = [
    "Caller",
    "KEY_PREFIX",
    "KeyCache",
    "authenticate",
    "check_key",
    "create_key",
    "hash_key",
    "revoke_key",
]
