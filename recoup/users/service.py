"""Create and disable users, check a password, open and close a browser session. Services
flush, never commit.

Passwords are hashed with argon2id (argon2-cffi's PasswordHasher, its default parameters); a
hash made with older parameters is replaced at the next successful login. A session is a random
token (256 bits from `secrets`) kept by the browser in a cookie; the database keeps its SHA-256
only, as for API keys: a high-entropy token needs no slow hash.

Logging in through the form is throttled per email typed, a user's or not (`attempt_login`):
after LOGIN_FAILURES failures within LOGIN_WINDOW, further attempts are refused unchecked
until the oldest of them is older than the window; a success forgets the failures."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from recoup.core.clock import utc_now
from recoup.core.errors import Conflict, InvalidInput
from recoup.core.roles import Role
from recoup.models import User, WebSession
from recoup.users import repository

MIN_PASSWORD = 10
SESSION_LIFETIME = timedelta(hours=12)
LOGIN_FAILURES = 5
LOGIN_WINDOW = timedelta(minutes=15)
MAX_EMAIL = 320  # the column's length: what is typed beyond it is not kept
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_hasher = PasswordHasher()
# verified when the email is unknown, so that a wrong email takes as long as a wrong password
_DUMMY_HASH = _hasher.hash("recoup: no such user")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"{{field}} must have at least {MIN_PASSWORD} characters", field="password"
        )


def create_user(
    session: Session,
    *,
    name: str,
    email: str,
    role: str,
    password: str,
    task_roles: list[str] | None = None,
) -> User:
    """A new user. `task_roles`: the roles of the tasks they work (default: the role's own
    name, so a collector works the tasks of `role: collector`)."""
    name, email = name.strip(), email.strip().lower()
    if not name:
        raise InvalidInput("{field} must not be empty", field="name")
    if not _EMAIL.match(email):
        raise InvalidInput(f"{{field}} {email!r} is not an email address", field="email")
    try:
        checked = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"{{field}} {role!r}: a role is {known}", field="role") from None
    check_password(password)
    if repository.by_name(session, name) is not None:
        raise Conflict(f"a user named {name!r} exists already", field="name")
    if repository.by_email(session, email) is not None:
        raise Conflict(f"a user with the email {email!r} exists already", field="email")
    roles = [r.strip() for r in (task_roles or [checked.value]) if r.strip()]
    user = User(
        name=name,
        email=email,
        role=checked.value,
        task_roles=sorted(set(roles)),
        password_hash=_hasher.hash(password),
        created_at=utc_now(),
    )
    session.add(user)
    session.flush()
    return user


def disable_user(session: Session, who: str) -> User:
    """Disable a user (by email or name): they can no longer log in, and their open sessions
    end now."""
    user = repository.get_by_email_or_name_or_not_found(session, who)
    if user.disabled_at is not None:
        raise Conflict(f"user {user.name!r} was disabled already")
    now = utc_now()
    user.disabled_at = now
    for row in repository.live_sessions_of(session, user.id):
        row.revoked_at = now
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str, *, now: datetime) -> User | None:
    """The live user with this email and password, or None. The stored hash is upgraded when
    argon2's parameters have changed since it was made. Not throttled: `attempt_login` is."""
    user = repository.by_email(session, email)
    if user is None or user.disabled_at is not None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    session.flush()
    return user


@dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt came to. `user` None: refused, and the person is told the same
    whatever the reason; `throttled`: refused without checking the password; `failures`: the
    email's failures within the window, this one included (0 after a success)."""

    user: User | None
    failures: int
    throttled: bool = False


def attempt_login(session: Session, email: str, password: str, *, now: datetime) -> LoginOutcome:
    """`authenticate`, throttled per email typed, known or not (nothing tells them apart, and
    no user is made for an unknown one). The failures older than the window are deleted
    first, as idempotency keys are: lazily, here."""
    typed = email.strip().lower()[:MAX_EMAIL]
    since = now - LOGIN_WINDOW
    repository.purge_failed_logins_by(session, since)
    failures = repository.failed_logins_since(session, typed, since)
    if failures >= LOGIN_FAILURES:
        # no password check: a guess is worth nothing now, and refusing costs no argon2 time
        return LoginOutcome(None, failures, throttled=True)
    user = authenticate(session, email, password, now=now)
    if user is None:
        repository.add_failed_login(session, typed, now)
        session.flush()
        return LoginOutcome(None, failures + 1)
    repository.forget_failed_logins(session, typed)
    return LoginOutcome(user, 0)


@dataclass(frozen=True)
class Opened:
    """A new browser session: the token for the cookie (not kept) and its row."""

    token: str
    row: WebSession


def open_session(
    session: Session, user: User, *, now: datetime, lifetime: timedelta = SESSION_LIFETIME
) -> Opened:
    """A new session for `user`. The sessions expired by `now` are deleted first (lazily, at
    each login, as idempotency keys are: a login is what adds rows, so the table keeps only
    the last `lifetime` of them)."""
    repository.purge_sessions_expired_by(session, now)
    token = secrets.token_urlsafe(32)
    row = WebSession(
        user_id=user.id,
        token_hash=_hash_token(token),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    return Opened(token, row)


def session_of(session: Session, token: str) -> tuple[WebSession, User] | None:
    """The live session this cookie token opens, with its user; None when unknown, expired,
    revoked, or the user is disabled."""
    digest = _hash_token(token)
    found = repository.session_by_hash(session, digest)
    if found is None:
        return None
    row, user = found
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None or row.expires_at <= utc_now() or user.disabled_at is not None:
        return None
    return row, user


def close_session(session: Session, session_id: int) -> None:
    """Log out: the session is revoked (its cookie opens nothing any more)."""
    row = session.get(WebSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utc_now()
        session.flush()


__all__ = [
    "LOGIN_FAILURES",
    "LOGIN_WINDOW",
    "MIN_PASSWORD",
    "SESSION_LIFETIME",
    "LoginOutcome",
    "Opened",
    "attempt_login",
    "authenticate",
    "check_password",
    "close_session",
    "create_user",
    "disable_user",
    "open_session",
    "session_of",
]
