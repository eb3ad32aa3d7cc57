"""What every CLI command shares: the database, the acting user, output as table or JSON."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, ParamSpec, TypeVar

import typer
from rich import box
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from recoup.core import sessions
from recoup.core.env import EnvConfig, load_env
from recoup.core.errors import RecoupError, cli_flag
from recoup.core.faults import fault_text
from recoup.core.sessions import Session, SessionFactory
from recoup.domain.enums import SYSTEM_ACTOR
from recoup.domain.redact import redact_text
from recoup.settings.service import business_today

# Piped or redirected output (a file, `grep`, a cron log) is not folded at Rich's default 80
# columns: a table row stays one line. COLUMNS, when set, still decides.
PIPED_WIDTH = 1000


class _Console(Console):
    """A console that is as wide as a terminal on one, and as wide as its lines elsewhere."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console: Console = _Console()
err_console: Console = _Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

JSON_OPTION = typer.Option(False, "--json", help="Print a JSON array instead of a table.")
# for commands that show one thing: JSON output is always an array, here of one object
JSON_ONE_OPTION = typer.Option(
    False, "--json", help="Print it as JSON: an array holding one object."
)
USER_OPTION = typer.Option(
    None, "--user", envvar="RECOUP_USER", help="Who is acting (recorded in the log)."
)
# a person's action belongs to a business date, like a run's (R13): a simulation passes its day
ON_OPTION = typer.Option(
    None, "--on", help="Business date it happened (YYYY-MM-DD); default: today."
)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Business errors print their message and exit 1; no traceback for users. A database
    or file-system fault is one line naming the place. Nothing printed carries a secret of
    the configuration or a URL's credentials (issue 8.5)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except RecoupError as exc:
            _print_error(escape(redact(exc.text(cli_flag))))
        except Exception as exc:  # a database or file-system fault: one line naming the place
            message = fault_text(exc, lambda: env().database_url)
            if message is None:
                raise
            _print_error(escape(redact(message)))
        raise typer.Exit(1)

    return wrapper


def _print_error(message: str) -> None:
    # soft_wrap: one line however narrow the terminal (a log collector reads it whole)
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)


def redact(text: str) -> str:
    """`text` without the configuration's secrets (see EnvConfig.secrets)."""
    try:
        return env().redact(text)
    except Exception:  # the environment itself is unreadable: mask URLs at least
        return redact_text(text)


def env() -> EnvConfig:
    return load_env()


def session_factory() -> SessionFactory:
    return sessions.session_factory(env().database_url)


@contextmanager
def transaction() -> Iterator[Session]:
    """One unit of work per command: commit on success, roll back on error."""
    with sessions.transaction(env().database_url) as session:
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


def on_date(session: Session, on: str | None) -> date:
    """The business date of a person's action: `--on`, else today in the settings' zone."""
    return parse_date(on, "--on") or business_today(session)


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
    "as_of": "as of",
    "started_at": "started",
    "finished_at": "finished",
    "plans_opened": "plans opened",
    "actions_done": "actions done",
    "actions_failed": "actions failed",
}
RIGHT_ALIGNED = frozenset(
    {"balance", "amount", "id", "days_overdue"}
    | {"considered", "plans_opened", "actions_done", "actions_failed"}
)
_WHOLE = frozenset(
    {"id", "on", "at", "status", "currency", "balance", "amount", "days_overdue"}
    | {"type", "kind", "action", "role"}  # codes: read whole or not at all
)


def _kept_whole(column: str) -> bool:
    """Values a narrow terminal must not cut: ids, money, currencies, dates, statuses, codes."""
    return column in _WHOLE or column.endswith(("_id", "_on", "_at"))


def _justify(column: str) -> Literal["left", "right"]:
    return "right" if column in RIGHT_ALIGNED else "left"


def plain_table(title: str | None, **options: Any) -> Table:
    """The house table: columns two spaces apart, a rule under the headers, no frame (the
    most room for the values)."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        show_lines=False,
        **options,
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):  # to the minute, in UTC (said in the header)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
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
    table = plain_table(title)
    headers = [_header(column) for column in columns]
    if wrap is not None:
        for column, header in zip(columns, headers, strict=True):
            if column == wrap:
                # long words (a file path) fold onto the next line rather than being cut
                table.add_column(header, justify=_justify(column), min_width=16, overflow="fold")
            else:
                table.add_column(
                    header,
                    justify=_justify(column),
                    no_wrap=True,
                    overflow="ellipsis",
                    max_width=24 if console.is_terminal else None,  # piped: values whole
                )
        widths = [16 if column == wrap else 0 for column in columns]
    else:
        widths = _column_widths(columns, headers, cells, console.width)
        for column, header, width in zip(columns, headers, widths, strict=True):
            whole = _kept_whole(column)
            table.add_column(
                header,
                justify=_justify(column),
                width=width,
                no_wrap=whole,
                overflow="ellipsis" if whole else "fold",
            )
    for line in cells:
        table.add_row(*line)
    needed = sum(widths) + 2 * (len(columns) - 1)
    if needed <= console.width:
        console.print(table)
        return
    # narrower than the whole values need: wider lines (the terminal wraps them) rather
    # than cut values
    width = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


def _header(column: str) -> str:
    header = TABLE_HEADERS.get(column, column)
    return header + " UTC" if column == "at" or column.endswith("_at") else header


def _column_widths(
    columns: Sequence[str], headers: Sequence[str], cells: Sequence[list[str]], room: int
) -> list[int]:
    """Each column's width: what it needs when the table fits; otherwise whole values keep
    theirs, the others shrink (down to their longest header word, at most 10) and share the
    room left."""
    natural, minimum = [], []
    for index, (column, header) in enumerate(zip(columns, headers, strict=True)):
        longest = max(len(part) for line in cells for part in line[index].split("\n"))
        natural.append(max(len(header), longest))
        if _kept_whole(column):
            minimum.append(natural[-1])
        else:
            minimum.append(min(max(len(max(header.split(), key=len)), longest), 10))
    room -= 2 * (len(columns) - 1)
    if sum(natural) <= room:
        return natural
    widths = list(minimum)
    spare = room - sum(widths)
    while spare > 0:  # one character at a time to the most squeezed column
        squeezed = [i for i in range(len(widths)) if widths[i] < natural[i]]
        if not squeezed:
            break
        most = max(squeezed, key=lambda i: natural[i] - widths[i])
        widths[most] += 1
        spare -= 1
    return widths


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
