"""Every query of users and their browser sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from recoup.core.errors import NotFound
from recoup.models import LoginAttempt, User, WebSession


def get_by_email_or_name_or_not_found(session: Session, who: str) -> User:
    user = by_email(session, who) or by_name(session, who)
    if user is None:
        raise NotFound(f"no user with the email or name {who!r}")
    return user


def by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def by_name(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def list_users(session: Session) -> list[User]:
    """Every user, disabled ones too, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def session_by_hash(session: Session, token_hash: str) -> tuple[WebSession, User] | None:
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == token_hash)
    ).first()
    return (row[0], row[1]) if row is not None else None


def live_sessions_of(session: Session, user_id: int) -> list[WebSession]:
    return list(
        session.scalars(
            select(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        )
    )


def purge_sessions_expired_by(session: Session, now: datetime) -> int:
    """Delete the sessions expired by `now`, revoked or not: they open nothing any more (the
    same bound as `service.session_of`)."""
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- failed logins ---------------------------------------------------------------------------


def add_failed_login(session: Session, email: str, at: datetime) -> None:
    session.add(LoginAttempt(email=email, attempted_at=at))


def failed_logins_since(session: Session, email: str, since: datetime) -> int:
    """How many logins failed for `email` after `since`."""
    return (
        session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.email == email, LoginAttempt.attempted_at > since)
        )
        or 0
    )


def forget_failed_logins(session: Session, email: str) -> None:
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))


def purge_failed_logins_by(session: Session, cutoff: datetime) -> int:
    """Delete the failures made by `cutoff`: they refuse nothing any more."""
    result = session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


__all__ = [
    "add_failed_login",
    "by_email",
    "by_name",
    "failed_logins_since",
    "forget_failed_logins",
    "get_by_email_or_name_or_not_found",
    "list_users",
    "live_sessions_of",
    "purge_failed_logins_by",
    "purge_sessions_expired_by",
    "session_by_hash",
]
