"""Fast bulk inserts for the run's hot path.

SQLAlchemy's per-row parameter processing costs more than the database itself when a run
writes hundreds of thousands of rows, so rows are converted once, column by column, to what
the driver stores (the same values the column types would produce), then sent with one
`executemany` (SQLite) or one `COPY` (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from recoup.core.db import AMOUNT_SCALE, Amount, UTCDateTime

Converter = Callable[[Any], Any]
SQLITE_ROWS_PER_INSERT = 500


def _amount(value: Decimal | None) -> int | None:
    if value is None:
        return None
    scaled = Decimal(value) * AMOUNT_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount {value} has more than 4 decimal places")
    return int(scaled)


@lru_cache(maxsize=64)  # a run stamps thousands of rows with the same few instants
def _sqlite_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: timestamps must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_timestamp(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime refused: timestamps must be timezone-aware")
    return value


@lru_cache(maxsize=1024)
def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json(value: Any) -> str | None:
    # orjson: ~10x the standard encoder, and a run writes a JSON object per log row
    return None if value is None else orjson.dumps(value, default=str).decode()


def _bool_int(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def _same(value: Any) -> Any:
    return value


def _converter(column_type: Any, dialect: str) -> Converter:
    sqlite = dialect == "sqlite"
    if isinstance(column_type, Amount):
        return _amount
    if isinstance(column_type, UTCDateTime):
        return _sqlite_timestamp if sqlite else _pg_timestamp
    if isinstance(column_type, JSON):
        return _json
    if isinstance(column_type, Date):
        return _iso if sqlite else _same
    if isinstance(column_type, Boolean):
        return _bool_int if sqlite else _same
    return _same


def _convert(
    rows: Sequence[dict[str, Any]], names: Sequence[str], converters: Sequence[Converter]
) -> list[tuple[Any, ...]]:
    """Rows to tuples in column order, converting column by column (map runs in C)."""
    get = itemgetter(*names)
    try:
        picked = [get(row) for row in rows] if len(names) > 1 else [(get(r),) for r in rows]
    except KeyError:  # rows that leave some columns out: those are NULL
        picked = [tuple([row.get(name) for name in names]) for row in rows]
    columns = list(zip(*picked, strict=True))
    converted = [
        column if convert is _same else list(map(convert, column))
        for column, convert in zip(columns, converters, strict=True)
    ]
    return list(zip(*converted, strict=True))


def bulk_insert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, with_id: bool = False
) -> None:
    """Insert rows (dicts keyed by column name; missing keys are NULL) in one round trip.
    Integer ids come from the database unless `with_id` (ids reserved by `reserve_ids`)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    # only the columns the rows give: the others take their NULL or server default
    given = set().union(*(row.keys() for row in rows))
    columns = [
        c
        for c in table.columns
        if c.name in given and (with_id or not (c.primary_key and c.name == "id"))
    ]
    names = [c.name for c in columns]
    converters = [_converter(c.type, dialect) for c in columns]
    values = _convert(rows, names, converters)
    _send(session, table, names, values)


@contextmanager
def _driver_cursor(session: Session) -> Iterator[Any]:
    """A cursor of the session's own DBAPI connection (inside its transaction), closed after."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with closing(raw.cursor()) as cursor:
        yield cursor


# PostgreSQL binary COPY type of each column type (TypeDecorators by their `impl`)
_PG_COPY_TYPES: tuple[tuple[type[Any], str], ...] = (
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Boolean, "bool"),
    (DateTime, "timestamptz"),
    (Date, "date"),
    # rows carry JSON already encoded (orjson); json's binary form is its text
    (JSON, "text"),
    (Text, "text"),
    (String, "varchar"),
)


def _pg_copy_type(column_type: Any) -> str:
    impl = column_type.impl if isinstance(column_type, TypeDecorator) else column_type
    for kind, name in _PG_COPY_TYPES:
        if isinstance(impl, kind):
            if name == "timestamptz" and not getattr(impl, "timezone", False):
                return "timestamp"
            return name
    raise TypeError(f"no COPY type for {column_type!r}")


def _send(
    session: Session, table: Table, names: Sequence[str], values: Sequence[tuple[Any, ...]]
) -> None:
    quoted = ", ".join(f'"{name}"' for name in names)
    if session.connection().dialect.name == "postgresql":
        # binary: dates, timestamps and integers travel as they are, so neither side formats
        # nor parses text (measured: about a third less time for the log's rows)
        with (
            _driver_cursor(session) as cursor,
            cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT BINARY)') as copy,
        ):
            copy.set_types([_pg_copy_type(table.c[name].type) for name in names])
            for row in values:
                copy.write_row(row)
        return
    # SQLite: many rows per INSERT (one statement step per batch, not per row; measured
    # ~15% faster than executemany), within SQLite's limit of 32,766 parameters
    group = "(" + ", ".join("?" for _ in names) + ")"
    per_statement = max(1, min(SQLITE_ROWS_PER_INSERT, 32_766 // len(names)))
    statements: dict[int, str] = {}
    with _driver_cursor(session) as cursor:
        for start in range(0, len(values), per_statement):
            batch = values[start : start + per_statement]
            sql = statements.get(len(batch))
            if sql is None:
                sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ' + ", ".join(
                    [group] * len(batch)
                )
                statements[len(batch)] = sql
            cursor.execute(sql, list(chain.from_iterable(batch)))


def bulk_update(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """`UPDATE table SET columns WHERE id = row["id"]` for every row, in one executemany."""
    if not rows:
        return
    dialect = session.connection().dialect.name
    names = [*columns, "id"]
    converters = [_converter(table.c[name].type, dialect) for name in names]
    values = _convert(rows, names, converters)
    with _driver_cursor(session) as cursor:
        if dialect == "postgresql":
            # one statement for the batch: the rows travel as one array per column
            pg = postgresql.dialect()
            types = [table.c[name].type.compile(dialect=pg) for name in names]
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            aliases = ", ".join(f'"{name}"' for name in names)
            assignments = ", ".join(f'"{name}" = v."{name}"' for name in columns)
            # `id = ANY(ids)` as well: without it the planner hashes the whole table to join
            # a few thousand rows (measured: 2.5x slower on 100,000 invoices)
            columns_data = [list(column) for column in zip(*values, strict=True)]
            cursor.execute(
                f'UPDATE "{table.name}" SET {assignments} '
                f"FROM unnest({arrays}) AS v({aliases}) "
                f'WHERE "{table.name}".id = v.id AND "{table.name}".id = ANY(%s::{types[-1]}[])',
                [*columns_data, columns_data[-1]],
            )
        else:
            assignments = ", ".join(f'"{name}" = ?' for name in columns)
            cursor.executemany(f'UPDATE "{table.name}" SET {assignments} WHERE id = ?', values)


def bulk_delete(session: Session, column: Column[Any], values: Sequence[Any]) -> None:
    """`DELETE FROM table WHERE column = value` for every value, in one round trip."""
    if not values:
        return
    table = column.table.name
    with _driver_cursor(session) as cursor:
        if session.connection().dialect.name == "postgresql":
            kind = column.type.compile(dialect=postgresql.dialect())
            cursor.execute(
                f'DELETE FROM "{table}" WHERE "{column.name}" = ANY(%s::{kind}[])', [list(values)]
            )
        else:
            cursor.executemany(
                f'DELETE FROM "{table}" WHERE "{column.name}" = ?', [(v,) for v in values]
            )


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """Integer ids for rows about to be bulk-inserted. On PostgreSQL from the table's
    sequence; on SQLite after the current maximum (only the run, which holds the run lock,
    creates plans, so nobody else takes them in between)."""
    if count <= 0:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # the sequence by name: `nextval(pg_get_serial_sequence(...))` looks it up for every
        # row (measured: 8x slower)
        sequence = connection.exec_driver_sql(
            f"SELECT pg_get_serial_sequence('{table.name}', 'id')"
        ).scalar()
        rows = connection.exec_driver_sql(
            f"SELECT nextval('{sequence}'::regclass) FROM generate_series(1, {int(count)})"
        ).all()
        return [int(r[0]) for r in rows]
    top = connection.exec_driver_sql(f'SELECT COALESCE(MAX(id), 0) FROM "{table.name}"').scalar()
    start = int(top or 0) + 1
    return list(range(start, start + count))


class TupleFormat:
    """For the hottest tables: rows built directly as tuples of driver values in a fixed
    column order, skipping per-row dicts and conversion passes."""

    def __init__(self, dialect: str, table: Table, names: Sequence[str]) -> None:
        self.table = table
        self.names = tuple(names)
        self.dialect = dialect
        self._converters = {name: _converter(table.c[name].type, self.dialect) for name in names}

    def value(self, name: str, value: Any) -> Any:
        """`value` as the driver stores it in column `name` (compute constants once)."""
        return self._converters[name](value)

    def value_converter(self, name: str) -> Converter:
        """What `value` applies for column `name`, for a loop over many rows."""
        return self._converters[name]

    def insert(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            _send(session, self.table, self.names, rows)


def json_text(value: Any) -> str | None:
    return _json(value)
