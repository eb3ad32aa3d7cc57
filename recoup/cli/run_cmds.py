"""`recoup init` and `recoup run`."""

from __future__ import annotations

import typer

from recoup.cli.common import console, handle_errors, session_factory
from recoup.core.schema import upgrade


def register(app: typer.Typer) -> None:
    app.command("init")(init)


@handle_errors
def init() -> None:
    """Create the database schema, or upgrade it to this version."""
    engine = session_factory().kw["bind"]
    upgrade(engine)
    console.print(f"database ready: {engine.url.render_as_string(hide_password=True)}")
