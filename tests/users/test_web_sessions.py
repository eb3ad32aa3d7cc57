"""Browser sessions at the service level, on SQLite and PostgreSQL: expired ones are deleted
at the next login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.db import unit_of_work
from recoup.models import User, WebSession
from recoup.users.service import SESSION_LIFETIME, close_session, create_user, open_session

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _user(session: Session, name: str) -> User:
    return create_user(
        session, name=name, email=f"{name}@example.com", role="viewer", password="x" * 12
    )


def test_a_login_deletes_the_sessions_expired_by_then(
    session_factory: sessionmaker[Session],
) -> None:
    with unit_of_work(session_factory) as session:
        ada, bob = _user(session, "ada"), _user(session, "bob")
        open_session(session, ada, now=T0)  # expired by `later`
        revoked = open_session(session, bob, now=T0).row.id
        close_session(session, revoked)
        live = open_session(session, bob, now=T0 + timedelta(hours=2)).row.id
        later = T0 + SESSION_LIFETIME + timedelta(hours=1)  # the first two expired
        again = open_session(session, ada, now=later).row.id
    with session_factory() as session:
        kept = set(session.scalars(select(WebSession.id)))
    assert kept == {live, again}


def test_a_session_ends_at_its_expiry_and_is_deleted_from_then(
    session_factory: sessionmaker[Session],
) -> None:
    with unit_of_work(session_factory) as session:
        ada = _user(session, "ada")
        open_session(session, ada, now=T0)  # expires at T0 + SESSION_LIFETIME
        second = open_session(session, ada, now=T0 + timedelta(seconds=1)).row.id
        third = open_session(session, ada, now=T0 + SESSION_LIFETIME).row.id
    with session_factory() as session:
        assert set(session.scalars(select(WebSession.id))) == {second, third}
