"""`recoup user create|list|disable` end to end, on SQLite and PostgreSQL: the password is
read from standard input (or asked twice), stored as an argon2 hash, and a disabled user can
no longer log in."""

from __future__ import annotations

import json

from click.testing import Result
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.clock import utc_now
from recoup.core.sessions import transaction
from recoup.users import repository
from recoup.users.service import authenticate, open_session, session_of

runner = CliRunner()
PASSWORD = "a long enough secret"


def recoup(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin, catch_exceptions=False)


def create(name: str, email: str, role: str, *extra: str) -> Result:
    return recoup(
        "user", "create", "--name", name, "--email", email, "--role", role,
        "--password-stdin", *extra, stdin=PASSWORD + "\n",
    )  # fmt: skip


def test_create_list_and_disable(env: dict[str, str], db_url: str) -> None:
    made = create("Carl Collector", "Carl@Example.com", "collector", "--task-role", "collector",
                  "--task-role", "account_manager")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "Carl Collector" in made.output and PASSWORD not in made.output
    listed = recoup("user", "list", "--json")
    (row,) = json.loads(listed.output)
    assert row["email"] == "carl@example.com" and row["role"] == "collector"
    assert row["task_roles"] == ["account_manager", "collector"]
    assert row["disabled_at"] is None and "password" not in json.dumps(row)
    with transaction(db_url) as session:
        user = repository.by_email(session, "carl@example.com")
        assert user is not None and user.password_hash.startswith("$argon2id$")
        assert authenticate(session, "CARL@example.com ", PASSWORD, now=utc_now()) is not None
        token = open_session(session, user, now=utc_now()).token
    assert recoup("user", "disable", "carl@example.com").exit_code == 0
    with transaction(db_url) as session:
        assert authenticate(session, "carl@example.com", PASSWORD, now=utc_now()) is None
        assert session_of(session, token) is None  # the open session ended too
    again = recoup("user", "disable", "Carl Collector")
    assert again.exit_code == 1 and "disabled already" in again.output


def test_the_password_is_asked_twice(env: dict[str, str], db_url: str) -> None:
    made = recoup(
        "user", "create", "--name", "Ada", "--email", "ada@example.com", "--role", "admin",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    with transaction(db_url) as session:
        assert authenticate(session, "ada@example.com", PASSWORD, now=utc_now()) is not None
        assert authenticate(session, "ada@example.com", PASSWORD + "x", now=utc_now()) is None
        assert authenticate(session, "nobody@example.com", PASSWORD, now=utc_now()) is None


def test_bad_input_is_refused_and_nothing_is_written(env: dict[str, str], db_url: str) -> None:
    short = recoup(
        "user", "create", "--name", "A", "--email", "a@example.com", "--role", "admin",
        "--password-stdin", stdin="short\n",
    )  # fmt: skip
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    role = create("B", "b@example.com", "boss")
    assert role.exit_code == 1 and "--role 'boss'" in role.output
    email = create("C", "not-an-email", "viewer")
    assert email.exit_code == 1 and "--email" in email.output
    assert create("D", "d@example.com", "viewer").exit_code == 0
    twice = create("D", "other@example.com", "viewer")
    assert twice.exit_code == 1 and "exists already" in twice.output
    with transaction(db_url) as session:
        assert [u.name for u in repository.list_users(session)] == ["D"]


def test_rehash_when_the_parameters_changed(env: dict[str, str], db_url: str) -> None:
    from argon2 import PasswordHasher

    assert create("E", "e@example.com", "viewer").exit_code == 0
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    with transaction(db_url) as session:
        user = repository.by_email(session, "e@example.com")
        assert user is not None
        user.password_hash = weak
    with transaction(db_url) as session:
        assert authenticate(session, "e@example.com", PASSWORD, now=utc_now()) is not None
    with transaction(db_url) as session:
        user = repository.by_email(session, "e@example.com")
        assert user is not None and user.password_hash != weak
        assert user.last_login_at is not None
