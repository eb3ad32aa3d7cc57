"""What the three imports of the book share (SPEC §5): the report, reading and refusing a batch
of rows, writing in chunks, and telling the plans and the run what changed.

Every import is all-or-nothing: the whole batch is parsed and checked against the database
first, every bad row collected; only a clean batch is written, in chunks, in the caller's
transaction. Services flush, never commit. Queries are per chunk of rows, never per row.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from recoup.book.repository import chunks
from recoup.book.rows import CsvTable, RowError, check_header, parse_rows, table_from_dicts
from recoup.core.errors import FieldError, InvalidInput
from recoup.plans.closing import refresh_plans_after_change
from recoup.schedule.service import recheck_invoices

# progress(phase, done, total): phase is "checking" or "writing".
Progress = Callable[[str, int, int], None]
# A CSV file read with recoup.book.rows.read_csv, or rows as dicts (an API payload, a test).
Rows = CsvTable | Iterable[Mapping[str, Any]]


@dataclass(frozen=True)
class Unallocated:
    """Money received beyond what was due: kept on the payment, not spread (R8)."""

    payment_id: str
    customer_id: str
    amount: Decimal
    currency: str


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    allocations: int = 0  # payments: invoice allocations recorded
    unallocated: list[Unallocated] = field(default_factory=list)
    plans_recovered: list[int] = field(default_factory=list)
    plans_paused: list[int] = field(default_factory=list)
    plans_resumed: list[int] = field(default_factory=list)
    rechecked: int = 0  # invoices the next run will look at again
    # what was imported but may not do what the file meant ("kept as attributes: emial")
    warnings: list[str] = field(default_factory=list)

    @property
    def payments_recorded(self) -> int:
        return self.created if self.kind == "payments" else 0


@dataclass
class Batch:
    """The rows of one import, parsed: the values of the good rows, the errors of the bad."""

    kind: str
    table: CsvTable
    values: list[Any]
    errors: list[RowError]

    @property
    def total(self) -> int:
        return len(self.table.rows)

    def refused(self, errors: list[RowError] | None = None) -> InvalidInput:
        return refused(self.kind, self.errors if errors is None else errors, self.table)


def as_table(rows: Rows) -> CsvTable:
    return rows if isinstance(rows, CsvTable) else table_from_dicts(rows)


def parse(kind: str, rows: Rows, parse_row: Any, progress: Progress | None) -> Batch:
    """Read and check every row (a header missing a required column: refused at once)."""
    table = as_table(rows)
    header_errors = check_header(kind, table.header)
    if header_errors or (not table.header and table.errors):
        raise refused(kind, table.errors + header_errors, table)
    values, errors = parse_rows(table.rows, parse_row)
    if progress:
        progress("checking", 0, len(table.rows))
    return Batch(kind, table, values, table.errors + errors)


def refused(kind: str, errors: list[RowError], table: CsvTable | None = None) -> InvalidInput:
    """The whole batch refused, every bad row named: in `details` as the CLI prints them
    (`line 3, email: ...`), in `errors` by field and row (`index`: the row's position in the
    batch, None for the header or a record that could not be read)."""
    errors = sorted(errors, key=lambda e: e.line)  # stable: a row's errors keep their order
    bad_lines = len({e.line for e in errors})
    index = {row.line: i for i, row in enumerate(table.rows)} if table is not None else {}
    return InvalidInput(
        f"{kind} file not imported: {bad_lines} bad row{'s' if bad_lines != 1 else ''}"
        " (nothing was changed)",
        details=[str(e) for e in errors],
        errors=[FieldError(e.field or None, e.message, index.get(e.line)) for e in errors],
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def refresh_plans(
    session: Session, invoice_ids: Iterable[str], *, on: date, actor: str | None
) -> list[int]:
    """Close the plans whose debt is gone (R8); returns their ids."""
    closed: list[int] = []
    for chunk in chunks(sorted(set(invoice_ids))):
        plans = refresh_plans_after_change(session, list(chunk), on=on, actor=actor)
        closed.extend(p.id for p in plans)
    return closed


def recheck(session: Session, invoice_ids: Iterable[str]) -> int:
    """Have the next run look at these invoices again (R15); returns how many."""
    ids = sorted(set(invoice_ids))
    for chunk in chunks(ids):
        recheck_invoices(session, list(chunk))
    return len(ids)


__all__ = [
    "Batch",
    "ImportReport",
    "Progress",
    "Rows",
    "Unallocated",
    "as_table",
    "did_you_mean",
    "parse",
    "recheck",
    "refresh_plans",
    "refused",
]
