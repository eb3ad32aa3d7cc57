"""`recoup user create|list|disable`: the people who log in to the back office (recoup.users).
The password is asked twice without echo, or read from standard input (`--password-stdin`, for
scripts); it is stored as an argon2 hash only."""

from __future__ import annotations

import sys

import typer

from recoup.cli.common import (
    JSON_OPTION,
    console,
    handle_errors,
    print_json,
    print_table,
    transaction,
)
from recoup.core.errors import InvalidInput
from recoup.users import repository as user_repository
from recoup.users.schemas import UserRead
from recoup.users.service import MIN_PASSWORD, create_user, disable_user

user_app = typer.Typer(
    help="People who log in to the back office (`recoup serve`).", no_args_is_help=True
)

COLUMNS = ["name", "email", "role", "task_roles", "created_at", "last_login_at", "disabled_at"]


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")


@user_app.command("create")
@handle_errors
def create(
    name: str = typer.Option(
        ..., "--name", help="Their name: the actor their changes are logged as."
    ),
    email: str = typer.Option(..., "--email", help="What they log in with."),
    role: str = typer.Option(..., "--role", help="admin, collector or viewer."),
    task_roles: list[str] = typer.Option(
        [],
        "--task-role",
        help="A role of the tasks they work (an action's `role:`); repeatable. Default: --role.",
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (one line)."
    ),
) -> None:
    """Create a user who can log in to the back office with their email and a password."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD} characters")
    with transaction() as session:
        user = create_user(
            session, name=name, email=email, role=role, password=password, task_roles=task_roles
        )
        shown = UserRead.model_validate(user)
    console.print(
        f"user {shown.name!r} ({shown.role}, {shown.email}) created; tasks of: "
        f"{', '.join(shown.task_roles)}",
        highlight=False,
    )


@user_app.command("list")
@handle_errors
def list_users(as_json: bool = JSON_OPTION) -> None:
    """The users: name, email, role, task roles, when made, last login, disabled."""
    with transaction() as session:
        rows = [
            UserRead.model_validate(row).model_dump(mode="json")
            for row in user_repository.list_users(session)
        ]
    if as_json:
        print_json(rows)
        return
    shown = [{**row, "task_roles": ", ".join(row["task_roles"])} for row in rows]
    print_table(shown, COLUMNS, title="Users")


@user_app.command("disable")
@handle_errors
def disable(who: str = typer.Argument(..., help="The user's email or name.")) -> None:
    """Disable a user: they can no longer log in, and their open sessions end."""
    with transaction() as session:
        user = disable_user(session, who)
        name = user.name
    console.print(f"user {name!r} disabled", highlight=False)
