"""The one base for read and write schemas, and cursor pages, shared by every feature.

Read schemas (`PlanRead`, `InvoiceRead`…) are what the CLI's `--json`, the API and the web
pages show: built from a row with `XRead.model_validate(row)` (from_attributes), dumped with
`model_dump(mode="json")`, which writes Decimal money as exact decimal text and dates as ISO.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, TypeAdapter

from recoup.core.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


# An aware timestamp written as `datetime.isoformat()` (`…T10:00:00.123456+00:00`), as the
# CLI's --json always has; pydantic's own JSON form would end in `Z`.
Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid", populate_by_name=True)

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> list[Self]:
        """Rows of a Core SELECT whose columns are exactly the schema's fields (by name),
        validated as dicts of their values: half the cost of reading a Row's attributes one
        by one (`model_validate(row)`), for the lists read on every request."""
        if not rows:
            return []
        names = rows[0]._fields
        return _list_of(cls).validate_python([dict(zip(names, row, strict=True)) for row in rows])


@cache
def _list_of(schema: type[Schema]) -> TypeAdapter[Any]:
    return TypeAdapter(list[schema])  # type: ignore[valid-type]


class Page(Schema, Generic[T]):
    """One page of a list ordered by a unique key; `next_cursor` fetches the page after it."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: Sequence[Any]) -> str:
    """An opaque cursor for the row after `key` (the values of the list's order columns)."""
    raw = json.dumps(list(key), default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("{field}: not a cursor this list gave out", field=field) from None
    if not isinstance(key, list):
        raise InvalidInput("{field}: not a cursor this list gave out", field=field)
    return key


def decode_id_cursor(cursor: str, field: str = "cursor") -> int:
    """The id in a cursor of a list ordered by id alone (what `split_page` gives out)."""
    key = decode_cursor(cursor, field)
    if len(key) != 1 or not isinstance(key[0], int):
        raise InvalidInput("{field}: not a cursor this list gave out", field=field)
    return key[0]


def _by_id(row: Any) -> list[Any]:
    return [row.id]


@dataclass(frozen=True)
class Keyset:
    """Which way a page of a list ordered by a unique key is read. The list's order is its key
    ascending, or `descending`; a page is the rows after the cursor's key in that order
    (`starting_after`), or, `before`, the rows just before it (`ending_before`): read in the
    reverse order, so the limit keeps the nearest, then turned back. Either way the page is
    in the list's order. A repository writes its order and its cursor's condition through
    `order` and `past`, and cuts what it read with `page`."""

    descending: bool = False
    before: bool = False

    @property
    def ascending(self) -> bool:
        """Whether the rows are read key ascending: the list's order, reversed `before`."""
        return self.descending == self.before

    def order(self, *columns: Any) -> list[Any]:
        """The ORDER BY of the read, for the list's order columns (each ascending)."""
        return [column.asc() if self.ascending else column.desc() for column in columns]

    def past(self, key: Any, cursor_key: Any) -> Any:
        """The rows beyond the cursor's key in the read's order (a column or a `tuple_`)."""
        return key > cursor_key if self.ascending else key < cursor_key

    def page(
        self, rows: list[T], limit: int, key: Callable[[T], Sequence[Any]] = _by_id
    ) -> tuple[list[T], str | None]:
        """Rows read with `limit + 1` → the page, in the list's order, and, if there was one
        more, the cursor to read on from: after the page's last row, or `before` its first
        (`key(row)`: the values of the order columns)."""
        if limit < 1:
            return [], None
        page = rows[:limit]
        if self.before:
            page.reverse()
        if len(rows) <= limit:
            return page, None
        return page, encode_cursor(key(page[0] if self.before else page[-1]))


def split_page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Rows fetched with `limit + 1` → the page and, if there was one more, the cursor after
    its last row (keyed by id)."""
    return Keyset().page(rows, limit)


def check_limit(limit: int, field: str = "limit", maximum: int = MAX_LIMIT) -> int:
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"{{field}} must be between 1 and {maximum}", field=field)
    return limit
