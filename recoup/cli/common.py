"""What every CLI command shares: the database, the acting user, output as table or JSON."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.config import EnvConfig, load_env
from recoup.core.db import make_engine, make_sessionmaker, unit_of_work
from recoup.core.errors import RecoupError
from recoup.domain.enums import SYSTEM_ACTOR

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

JSON_OPTION = typer.Option(False, "--json", help="Print a JSON array instead of a table.")
USER_OPTION = typer.Option(
    None, "--user", envvar="RECOUP_USER", help="Who is acting (recorded in the log)."
)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Business errors print their message and exit 1; no traceback for users."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except RecoupError as exc:
            err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from None
        except (OperationalError, ProgrammingError) as exc:
            err_console.print(f"[red]error:[/red] {database_problem(exc)}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def database_problem(exc: DBAPIError) -> str:
    """A database error in words a user can act on, without a traceback."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    url = env().database_url
    if "no such table" in text or "does not exist" in text and "relation" in text:
        return f"the database at {url} has no Recoup schema yet: run `recoup init`"
    if "connection" in text or "unable to open" in text:
        return f"cannot reach the database at {url}: {text.strip().splitlines()[0]}"
    return f"database error: {text.strip().splitlines()[0]}"


_factories: dict[str, sessionmaker[Session]] = {}


def env() -> EnvConfig:
    return load_env()


def session_factory() -> sessionmaker[Session]:
    url = env().database_url
    if url not in _factories:
        _factories[url] = make_sessionmaker(make_engine(url))
    return _factories[url]


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work per command: commit on success, roll back on error."""
    with unit_of_work(session_factory()) as session:
        yield session


def actor_name(user: str | None) -> str:
    return user.strip() if user and user.strip() else SYSTEM_ACTOR


def parse_date(value: str | None, option: str = "--as-of") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RecoupError(f"{option}: {value!r} is not a date (expected YYYY-MM-DD)") from None


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(rows: Iterable[dict[str, Any]]) -> None:
    sys.stdout.write(json.dumps([to_jsonable(r) for r in rows], indent=2, ensure_ascii=False))
    sys.stdout.write("\n")


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    wrap: str | None = None,
) -> None:
    """A table; with `wrap`, that column takes the width left and wraps while the others
    keep their values on one line (up to 24 characters)."""
    if not rows:
        console.print(f"[dim]no {title.lower() if title else 'rows'}[/dim]")
        return
    cells = [  # escaped: a value like "[urgent]" is data, not Rich markup
        ["" if row.get(c) is None else escape(str(to_jsonable(row.get(c)))) for c in columns]
        for row in rows
    ]
    table = Table(title=title, show_lines=False)
    for column in columns:
        justify = "right" if column in ("balance", "amount", "id", "days_overdue") else "left"
        if wrap is None:
            table.add_column(column, justify=justify)
        elif column == wrap:
            table.add_column(column, justify=justify, min_width=16)
        else:
            table.add_column(
                column, justify=justify, no_wrap=True, overflow="ellipsis", max_width=24
            )
    for line in cells:
        table.add_row(*line)
    console.print(table)


def output(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    title: str,
    wrap: str | None = None,
) -> None:
    if as_json:
        print_json(rows)
    else:
        print_table(rows, columns, title=title, wrap=wrap)
