"""What every CLI command shares: the database, the acting user, output as table or JSON."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import typer
from rich import box
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


# Table headers: shorter than the SPEC's field names, which JSON keeps
TABLE_HEADERS = {
    "customer_id": "customer",
    "invoice_id": "invoice",
    "plan_id": "plan",
    "opened_on": "opened",
    "closed_on": "closed",
    "created_at": "created",
    "claimed_by": "claimed by",
    "days_overdue": "days overdue",
}
RIGHT_ALIGNED = {"balance", "amount", "id", "days_overdue"}


def _kept_whole(column: str) -> bool:
    """Values a narrow terminal must not cut: ids, money, currencies, dates, statuses, codes."""
    return column in _WHOLE or column.endswith(("_id", "_on", "_at"))


_WHOLE = frozenset(
    {"id", "on", "at", "status", "currency", "balance", "amount", "days_overdue"}
    | {"type", "kind", "action", "role"}  # codes: read whole or not at all
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):  # to the minute, in UTC: a table is read, not parsed
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return escape(str(to_jsonable(value)))


def _with_currency(
    rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Amounts next to their currency ("1000.00 USD") in one column: a table a column
    narrower, and an amount never read without its currency."""
    money = [c for c in ("balance", "amount") if c in columns]
    if "currency" not in columns or not money:
        return list(rows), list(columns)
    joined = []
    for row in rows:
        row = dict(row)
        for column in money:
            if row.get(column) is not None and row.get("currency"):
                row[column] = f"{to_jsonable(row[column])} {row['currency']}"
        joined.append(row)
    return joined, [c for c in columns if c != "currency"]


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    wrap: str | None = None,
) -> None:
    """A table. Ids, amounts, dates and statuses keep their whole value on one line and the
    other cells wrap in a narrow terminal: nothing is cut. With `wrap`, that column takes
    the width left and wraps while the others stay on one line (up to 24 characters)."""
    if not rows:
        console.print(f"[dim]no {title.lower() if title else 'rows'}[/dim]")
        return
    rows, columns = _with_currency(rows, columns)
    # escaped: a value like "[urgent]" is data, not Rich markup
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    # columns two spaces apart, a rule under the headers: the most room for the values
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        show_lines=False,
    )
    for index, column in enumerate(columns):
        header = TABLE_HEADERS.get(column, column)
        justify = "right" if column in RIGHT_ALIGNED else "left"
        widest = max(len(header), *(len(line[index]) for line in cells))
        if wrap is None:
            if _kept_whole(column):
                table.add_column(header, justify=justify, no_wrap=True, min_width=widest)
            else:
                table.add_column(
                    header, justify=justify, overflow="fold", min_width=min(widest, 10)
                )
        elif column == wrap:
            table.add_column(header, justify=justify, min_width=16)
        else:
            table.add_column(
                header, justify=justify, no_wrap=True, overflow="ellipsis", max_width=24
            )
    for line in cells:
        table.add_row(*line)
    # narrower than the whole values need: wider lines (the terminal wraps them) rather
    # than cut values
    needed = sum(c.min_width or 0 for c in table.columns) + 2 * (len(table.columns) - 1)
    if needed <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


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
