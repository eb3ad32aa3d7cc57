"""Failed logins throttle the next ones, per email typed, at the service level on SQLite and
PostgreSQL: the clock is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.db import unit_of_work
from recoup.models import LoginAttempt, User
from recoup.users.service import (
    LOGIN_FAILURES,
    LOGIN_WINDOW,
    LoginOutcome,
    attempt_login,
    create_user,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "the right password"
ADA = "ada@example.com"


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with unit_of_work(session_factory) as session:
        create_user(session, name="Ada", email=ADA, role="admin", password=PASSWORD)
        create_user(session, name="Bob", email="bob@example.com", role="viewer", password=PASSWORD)
    return session_factory


def attempt(
    factory: sessionmaker[Session], email: str, password: str, at: datetime
) -> LoginOutcome:
    """One login, in its own transaction, as a request makes it."""
    with unit_of_work(factory) as session:
        outcome = attempt_login(session, email, password, now=at)
        session.expunge_all()
    return outcome


def fail(factory: sessionmaker[Session], email: str, times: int, start: datetime = T0) -> None:
    for n in range(times):
        outcome = attempt(factory, email, "wrong", start + timedelta(minutes=n))
        assert outcome.user is None and not outcome.throttled
        assert outcome.failures == n + 1


def test_five_failures_refuse_even_the_right_password_until_the_window_passes(
    factory: sessionmaker[Session],
) -> None:
    fail(factory, ADA, LOGIN_FAILURES)  # at T0, T0+1 min, … T0+4 min
    refused = attempt(factory, ADA, PASSWORD, T0 + timedelta(minutes=10))
    assert refused.user is None and refused.throttled and refused.failures == LOGIN_FAILURES
    # the first failure leaves the window at T0 + 15 min: not a second before
    assert attempt(factory, ADA, PASSWORD, T0 + LOGIN_WINDOW - timedelta(seconds=1)).throttled
    passed = attempt(factory, ADA, PASSWORD, T0 + LOGIN_WINDOW)
    assert passed.user is not None and passed.user.name == "Ada" and passed.failures == 0


def test_refused_attempts_do_not_prolong_the_refusal(factory: sessionmaker[Session]) -> None:
    fail(factory, ADA, LOGIN_FAILURES)
    for minute in range(5, 15):
        assert attempt(factory, ADA, "wrong", T0 + timedelta(minutes=minute)).throttled
    assert attempt(factory, ADA, PASSWORD, T0 + LOGIN_WINDOW).user is not None


def test_a_success_forgets_the_failures(factory: sessionmaker[Session]) -> None:
    fail(factory, ADA, LOGIN_FAILURES - 1)
    assert attempt(factory, ADA, PASSWORD, T0 + timedelta(minutes=5)).user is not None
    fail(factory, ADA, LOGIN_FAILURES - 1, start=T0 + timedelta(minutes=6))
    assert attempt(factory, ADA, PASSWORD, T0 + timedelta(minutes=11)).user is not None


def test_an_unknown_email_is_throttled_and_no_user_is_made(
    factory: sessionmaker[Session],
) -> None:
    fail(factory, "nobody@example.com", LOGIN_FAILURES)
    # the same email however it is typed
    assert attempt(factory, " Nobody@Example.COM", "x", T0 + timedelta(minutes=6)).throttled
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2


def test_the_throttle_is_per_email(factory: sessionmaker[Session]) -> None:
    fail(factory, ADA, LOGIN_FAILURES)
    bob = attempt(factory, "bob@example.com", PASSWORD, T0 + timedelta(minutes=6))
    assert bob.user is not None and not bob.throttled


def test_failures_older_than_the_window_are_deleted(factory: sessionmaker[Session]) -> None:
    fail(factory, "nobody@example.com", 3)
    fail(factory, ADA, 1, start=T0 + timedelta(minutes=10))
    attempt(factory, "bob@example.com", "wrong", T0 + timedelta(minutes=2) + LOGIN_WINDOW)
    with factory() as session:
        kept = session.execute(select(LoginAttempt.email, LoginAttempt.attempted_at)).all()
    assert sorted(kept) == [
        (ADA, T0 + timedelta(minutes=10)),
        ("bob@example.com", T0 + timedelta(minutes=2) + LOGIN_WINDOW),
    ]
