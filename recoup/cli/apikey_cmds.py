"""`recoup apikey create|list|revoke`: the keys of the REST API (recoup.apikeys). A key is
printed once, when it is created; the database keeps only its hash."""

from __future__ import annotations

import typer

from recoup.apikeys import repository as apikey_repository
from recoup.apikeys.schemas import ApiKeyRead
from recoup.apikeys.service import create_key, revoke_key
from recoup.cli.common import (
    JSON_OPTION,
    console,
    handle_errors,
    print_json,
    print_table,
    transaction,
)

apikey_app = typer.Typer(help="Keys of the REST API (`recoup serve`).", no_args_is_help=True)

COLUMNS = ["name", "role", "prefix", "created_at", "last_used_at", "revoked_at"]


def register(app: typer.Typer) -> None:
    app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create")
@handle_errors
def create(
    name: str = typer.Option(
        ..., "--name", help="Who uses it: the actor its writes are logged as."
    ),
    role: str = typer.Option(..., "--role", help="admin, collector or viewer."),
) -> None:
    """Create a key and print it, once: it is stored hashed and cannot be shown again."""
    with transaction() as session:
        created = create_key(session, name=name, role=role)
    console.print(
        f"API key {created.name!r} ({created.role}) created; it is shown only now:",
        highlight=False,
    )
    # the key alone on its line, unwrapped, so that it can be copied or piped whole
    typer.echo(created.key)


@apikey_app.command("list")
@handle_errors
def list_keys(as_json: bool = JSON_OPTION) -> None:
    """The keys: name, role, the key's first characters, when made, last used, revoked."""
    with transaction() as session:
        rows = [
            ApiKeyRead.model_validate(row).model_dump(mode="json")
            for row in apikey_repository.list_keys(session)
        ]
    if as_json:
        print_json(rows)
        return
    shown = [{**row, "prefix": row["prefix"] + "…"} for row in rows]
    print_table(shown, COLUMNS, title="API keys")


@apikey_app.command("revoke")
@handle_errors
def revoke(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke a key: from now on it is refused (401)."""
    with transaction() as session:
        revoke_key(session, name)
    console.print(f"API key {name!r} revoked", highlight=False)
