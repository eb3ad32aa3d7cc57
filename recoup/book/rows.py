"""Reading and validating rows of the book (SPEC §5): CSV files, and the same rows given as
dicts (an API payload, a schema of recoup.book.schemas). Pure functions: no database, no clock.

Each `parse_*` function turns one row (a dict of column -> text) into a typed, frozen value,
or into the list of everything wrong with it as `RowError(line, field, message)`. Checks that
need the database (does the customer exist? is the payment immutable?) live in the services
(recoup.book.customers, invoices, payments).

Line numbers are the file's physical line numbers (the header is line 1), so a user can open
the file at the line the error names, even when a quoted cell spans several lines.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from recoup.core.files import relative_path_problem
from recoup.domain.enums import InvoiceStatus
from recoup.domain.locales import is_country, is_language
from recoup.domain.money import is_currency, minor_unit

MAX_DECIMALS = 4  # the storage scale (recoup.core.db.AMOUNT_SCALE)

CUSTOMER_COLUMNS = (
    "id",
    "name",
    "email",
    "phone",
    "language",
    "country",
    "currency",
    "category",
    "is_company",
    "payment_method",
    "policy",
    "status",
    "excluded",
    "address",
)
INVOICE_COLUMNS = (
    "id",
    "customer_id",
    "number",
    "type",
    "issue_date",
    "due_date",
    "currency",
    "amount",
    "amount_due",
    "status",
    "disputed",
    "pdf_path",
)
PAYMENT_COLUMNS = ("id", "customer_id", "invoice_id", "amount", "currency", "date")

# Columns a file must have. The others may be left out: a new row then gets the default, an
# existing row keeps its value (only the columns present in the file are updated).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "name"),
    "invoices": ("id", "customer_id", "number", "issue_date", "due_date", "currency", "amount"),
    "payments": ("id", "customer_id", "amount", "currency", "date"),
}
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": CUSTOMER_COLUMNS,
    "invoices": INVOICE_COLUMNS,
    "payments": PAYMENT_COLUMNS,
}

# Column widths of the models: refused here with a line number rather than by PostgreSQL.
MAX_LENGTH: dict[str, int] = {
    "id": 100,
    "customer_id": 100,
    "invoice_id": 100,
    "name": 300,
    "email": 320,
    "phone": 50,
    "language": 16,
    "category": 100,
    "payment_method": 50,
    "policy": 200,
    "status": 50,
    "number": 100,
    "type": 50,
    "pdf_path": 1000,
    "attribute": 100,
}
# Free text that may span lines (a postal address, printed on letters). Every other value is
# one line: a line break in a name ends up in an email header, an escape sequence in an id
# is replayed by every terminal that prints it.
MULTILINE_COLUMNS = frozenset({"address"})

TRUE_WORDS = frozenset({"true", "1", "yes", "y"})
FALSE_WORDS = frozenset({"false", "0", "no", "n"})
INVOICE_STATUSES = tuple(s.value for s in InvoiceStatus)

_EMAIL = re.compile(r"^[^@\s,;<>()\[\]\"]+@[^@\s,;<>()\[\]\"]+\.[A-Za-z0-9-]{2,}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
# Control characters (Unicode category Cc: C0, DEL, C1) and the Unicode line and paragraph
# separators; a multi-line value may keep tabs and line breaks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
# A plain decimal: digits, one optional point, an optional sign. Decimal() also takes `1e3`,
# `1_000`, `Infinity` and non-ASCII digits, none of which a billing export means as money.
_PLAIN_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$", re.ASCII)


def control_character_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be imported as text (None: it can). Never echoes the value."""
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    if found is None:
        return None
    what = "a line break" if found.group() in "\r\n\u2028\u2029" else "a control character"
    return f"contains {what} (U+{ord(found.group()):04X}), not allowed in this field"


@dataclass(frozen=True, order=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.field}: {self.message}" if self.field else self.message
        return f"line {self.line}, {self.field}: {self.message}"


@dataclass(frozen=True)
class SourceRow:
    line: int  # physical line where the record starts
    values: dict[str, str]


@dataclass
class CsvTable:
    header: list[str]
    rows: list[SourceRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # malformed records

    def __len__(self) -> int:
        return len(self.rows)


# --- reading files ---------------------------------------------------------------------------


def _sniff_delimiter(first_line: str) -> str:
    """Spreadsheets in much of Europe save CSV with semicolons; accept both."""
    if first_line.count(";") > first_line.count(","):
        return ";"
    return ","


def read_csv_text(text: str) -> CsvTable:
    if text.startswith("\ufeff"):  # Excel's byte-order mark
        text = text[1:]
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first_line))
    try:
        header_cells = next(reader)
    except StopIteration:
        return CsvTable(header=[], errors=[RowError(0, "", "the file is empty (no header row)")])
    header = [cell.strip() for cell in header_cells]
    table = CsvTable(header=header)
    previous_end = reader.line_num
    try:
        for cells in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            if len(cells) != len(header):
                table.errors.append(
                    RowError(line, "row", f"has {len(cells)} fields, the header has {len(header)}")
                )
                continue
            table.rows.append(
                SourceRow(line, {h: c.strip() for h, c in zip(header, cells, strict=True)})
            )
    except csv.Error as exc:
        table.errors.append(RowError(previous_end + 1, "row", f"unreadable CSV: {exc}"))
    return table


def read_csv(path: str | Path) -> CsvTable:
    return read_csv_bytes(Path(path).read_bytes())


def read_csv_bytes(raw: bytes) -> CsvTable:
    """A CSV file's content (an upload): UTF-8, with or without Excel's byte-order mark."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return CsvTable(
            header=[], errors=[RowError(line, "file", "is not UTF-8 text (save it as UTF-8 CSV)")]
        )
    return read_csv_text(text)


def table_from_dicts(rows: Iterable[Mapping[str, Any]]) -> CsvTable:
    """Rows given as dicts (an API payload, a test): line 2 is the first row, like a file."""
    materialised = [
        {str(k).strip(): "" if v is None else str(v).strip() for k, v in row.items()}
        for row in rows
    ]
    header: list[str] = []
    for row in materialised:
        for key in row:
            if key not in header:
                header.append(key)
    return CsvTable(
        header=header,
        rows=[SourceRow(i + 2, row) for i, row in enumerate(materialised)],
    )


def check_header(kind: str, header: Sequence[str]) -> list[RowError]:
    """One clear error for missing required columns; duplicate or blank names too."""
    errors: list[RowError] = []
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in header]
    if missing:
        errors.append(
            RowError(
                1,
                "header",
                f"missing required column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (a {kind} file needs "
                f"{', '.join(REQUIRED_COLUMNS[kind])})",
            )
        )
    seen: set[str] = set()
    for name in header:
        problem = control_character_problem(name)
        if problem is not None:
            errors.append(RowError(1, "header", f"a column name {problem}"))
        elif not name:
            errors.append(RowError(1, "header", "a column has no name"))
        elif name in seen:
            errors.append(RowError(1, "header", f"column {name!r} appears twice"))
        seen.add(name)
    if kind != "customers":
        unknown = [c for c in header if c and c not in KNOWN_COLUMNS[kind]]
        if unknown:
            errors.append(
                RowError(
                    1,
                    "header",
                    f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                    f"(a {kind} file has {', '.join(KNOWN_COLUMNS[kind])})",
                )
            )
    return errors


# --- typed values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerIn:
    line: int
    id: str
    # Only the columns present in the file: {model field: value}. `attributes` holds the
    # extra columns: a value sets the key, None (an empty cell) removes it.
    fields: dict[str, Any]
    attributes: dict[str, str | None]


@dataclass(frozen=True)
class InvoiceIn:
    line: int
    id: str
    customer_id: str
    currency: str
    amount: Decimal
    fields: dict[str, Any]  # every model field given (or defaulted) by the row, except id


@dataclass(frozen=True)
class PaymentIn:
    line: int
    id: str
    customer_id: str
    invoice_id: str | None
    amount: Decimal
    currency: str
    date: date

    def same_as(self, other: Any) -> bool:
        return (
            other.customer_id == self.customer_id
            and (other.invoice_id or None) == self.invoice_id
            and Decimal(other.amount) == self.amount
            and other.currency == self.currency
            and other.date == self.date
        )


class _Row:
    """Collects the errors of one row while its cells are converted."""

    def __init__(self, source: SourceRow) -> None:
        self.line = source.line
        self.values = source.values
        self.errors: list[RowError] = []
        self.bad: set[str] = set()  # columns already refused: no second error about them
        one_line = "".join(v for c, v in source.values.items() if c not in MULTILINE_COLUMNS)
        lines = "".join(v for c, v in source.values.items() if c in MULTILINE_COLUMNS)
        if _CONTROL.search(one_line) or _CONTROL_MULTILINE.search(lines):  # a clean row: 2 scans
            for column, value in source.values.items():
                problem = control_character_problem(value, multiline=column in MULTILINE_COLUMNS)
                if problem is not None:
                    self.error(column, problem)
                    self.bad.add(column)

    def value(self, column: str) -> str | None:
        """The cell's text ("" when empty or absent); None when it was refused already."""
        return None if column in self.bad else self.values.get(column, "")

    def has(self, column: str) -> bool:
        return column in self.values

    def error(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.line, column, message))

    def text(self, column: str, *, required: bool = False) -> str | None:
        value = self.value(column)
        if value is None:
            return None
        if not value:
            if required:
                self.error(column, "is required")
            return None
        limit = MAX_LENGTH.get(column)
        if limit is not None and len(value) > limit:
            self.error(column, f"is longer than {limit} characters")
            return None
        return value

    def boolean(self, column: str) -> bool | None:
        value = self.value(column)
        if not value:
            return None
        lowered = value.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        self.error(column, f"{value!r} is not a boolean (use true/false, 1/0 or yes/no)")
        return None

    def day(self, column: str, *, required: bool = False) -> date | None:
        value = self.value(column)
        if value is None:
            return None
        if not value:
            if required:
                self.error(column, "is required")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.error(column, f"{value!r} is not a date (expected YYYY-MM-DD)")
            return None

    def currency(self, column: str = "currency", *, required: bool = False) -> str | None:
        value = self.value(column)
        if value is None:
            return None
        if not value:
            if required:
                self.error(column, "is required")
            return None
        code = value.upper()
        if not is_currency(code):
            self.error(column, f"{value!r} is not an ISO 4217 currency code")
            return None
        return code

    def amount(
        self, column: str, currency: str | None, *, required: bool = False
    ) -> Decimal | None:
        value = self.value(column)
        if value is None:
            return None
        if not value:
            if required:
                self.error(column, "is required")
            return None
        if not _PLAIN_DECIMAL.match(value):
            if re.match(r"^[+-]?[0-9.]+[eE][+-]?[0-9]+$", value):
                self.error(
                    column, f"{value!r} is in exponent notation: write the amount out (like 1000)"
                )
            else:
                self.error(column, f"{value!r} is not a decimal amount (like 1234.56)")
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            self.error(column, f"{value!r} is not a decimal amount (like 1234.56)")
            return None
        if amount != amount.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
            self.error(column, f"{value} has more than {MAX_DECIMALS} decimal places")
            return None
        if currency is not None:
            unit = minor_unit(currency)
            if amount % unit != 0:
                digits = -unit.as_tuple().exponent  # type: ignore[operator]
                self.error(
                    column,
                    f"{value} has more decimal places than {currency} allows ({digits})",
                )
                return None
        return amount + Decimal(0)  # normalise -0

    def one_of(self, column: str, choices: Sequence[str]) -> str | None:
        value = self.value(column)
        if not value:
            return None
        lowered = value.lower()
        if lowered not in choices:
            self.error(column, f"{value!r} is not one of {', '.join(choices)}")
            return None
        return lowered


def parse_customer(source: SourceRow) -> CustomerIn | list[RowError]:
    row = _Row(source)
    customer_id = row.text("id", required=True)
    fields: dict[str, Any] = {}
    if row.has("name"):
        fields["name"] = row.text("name", required=True)
    for column in ("phone", "category", "payment_method", "policy", "address"):
        if row.has(column):
            fields[column] = row.text(column)
    if row.has("email"):
        email = row.text("email")
        if email is not None and not _EMAIL.match(email):
            row.error("email", f"{email!r} is not a valid email address")
        fields["email"] = email
    if row.has("language"):
        language = row.text("language")
        if language is not None and not (_LANGUAGE.match(language) and is_language(language)):
            row.error("language", f"{language!r} is not a known language code (like en, fr, pt_BR)")
        fields["language"] = language
    if row.has("country"):
        country = row.text("country")
        if country is not None:
            if not (_COUNTRY.match(country) and is_country(country)):
                row.error("country", f"{country!r} is not a two-letter ISO 3166 country code")
            country = country.upper()
        fields["country"] = country
    if row.has("currency"):
        fields["currency"] = row.currency()
    if row.has("status"):
        fields["status"] = row.text("status") or "active"
    for column in ("is_company", "excluded"):
        if row.has(column):
            fields[column] = bool(row.boolean(column))
    attributes: dict[str, str | None] = {}
    for column, value in source.values.items():
        if column in CUSTOMER_COLUMNS:
            continue
        if len(column) > MAX_LENGTH["attribute"]:
            row.error(column, "attribute column names are at most 100 characters")
        attributes[column] = value or None
    if row.errors or customer_id is None:
        return row.errors
    return CustomerIn(source.line, customer_id, fields, attributes)


def parse_invoice(source: SourceRow) -> InvoiceIn | list[RowError]:
    return _parse_invoice(source, partial=False)


def invoice_change_errors(source: SourceRow) -> list[RowError]:
    """What is wrong with the columns a change to an invoice gives (the others are left out and
    keep their stored value): the checks of parse_invoice, on those columns only."""
    result = _parse_invoice(source, partial=True)
    return result if isinstance(result, list) else []


def _parse_invoice(source: SourceRow, *, partial: bool) -> InvoiceIn | list[RowError]:
    row = _Row(source)

    def required(column: str) -> bool:
        return not partial or row.has(column)

    invoice_id = row.text("id", required=required("id"))
    customer_id = row.text("customer_id", required=required("customer_id"))
    number = row.text("number", required=required("number"))
    issue_date = row.day("issue_date", required=required("issue_date"))
    due_date = row.day("due_date", required=required("due_date"))
    currency = row.currency(required=required("currency"))
    amount = row.amount("amount", currency, required=required("amount"))
    fields: dict[str, Any] = {
        "customer_id": customer_id,
        "number": number,
        "issue_date": issue_date,
        "due_date": due_date,
        "currency": currency,
        "amount": amount,
    }
    if row.has("type"):
        fields["type"] = row.text("type") or "commercial"
    if row.has("pdf_path"):
        pdf_path = row.text("pdf_path")
        problem = relative_path_problem(pdf_path) if pdf_path else None
        if problem is not None:
            row.error("pdf_path", f"{pdf_path!r} {problem}")
        fields["pdf_path"] = pdf_path
    if row.has("disputed"):
        fields["disputed"] = bool(row.boolean("disputed"))
    # status and amount_due are only set when given: resolve_balance() completes them
    status = row.one_of("status", INVOICE_STATUSES)
    if status is not None:
        fields["status"] = status
    amount_due = row.amount("amount_due", currency)
    if amount_due is not None:
        fields["amount_due"] = amount_due
    if amount is not None and amount < 0:
        row.error("amount", f"{amount} is negative (record a credit as a payment)")
    if issue_date and due_date and due_date < issue_date:
        row.error("due_date", f"{due_date} is before the issue date {issue_date}")
    if row.errors or invoice_id is None or partial:
        return row.errors
    assert customer_id is not None and currency is not None and amount is not None
    return InvoiceIn(source.line, invoice_id, customer_id, currency, amount, fields)


def resolve_balance(
    invoice: InvoiceIn, existing_status: str | None, existing_amount_due: Decimal | None
) -> tuple[str, Decimal] | list[RowError]:
    """The invoice's status and amount_due once the row meets what is stored.

    A column left out (or an empty cell) keeps the stored value; a new invoice is `open` for
    its whole amount, and `paid`/`cancelled` ones owe nothing. amount_due must lie between 0
    and the amount, and a `paid` invoice owes nothing.
    """
    status = invoice.fields.get("status") or existing_status or InvoiceStatus.open.value
    amount_due = invoice.fields.get("amount_due")
    if amount_due is None:
        if (
            existing_amount_due is not None
            and status == existing_status
            and existing_amount_due <= invoice.amount
        ):
            amount_due = existing_amount_due
        elif status == InvoiceStatus.open:
            amount_due = invoice.amount
        elif status == InvoiceStatus.partially_paid:
            return [
                RowError(invoice.line, "amount_due", "is required when status is partially_paid")
            ]
        else:
            amount_due = Decimal(0)
    if amount_due < 0 or amount_due > invoice.amount:
        return [
            RowError(
                invoice.line,
                "amount_due",
                f"{amount_due} is not between 0 and the amount {invoice.amount}",
            )
        ]
    if status == InvoiceStatus.paid and amount_due != 0:
        return [
            RowError(invoice.line, "amount_due", f"{amount_due} is still due on a paid invoice")
        ]
    return status, amount_due


def parse_payment(source: SourceRow) -> PaymentIn | list[RowError]:
    row = _Row(source)
    payment_id = row.text("id", required=True)
    customer_id = row.text("customer_id", required=True)
    invoice_id = row.text("invoice_id")
    currency = row.currency(required=True)
    amount = row.amount("amount", currency, required=True)
    day = row.day("date", required=True)
    if amount is not None and amount <= 0:
        row.error("amount", f"{amount} must be greater than 0")
    if row.errors:
        return row.errors
    assert payment_id and customer_id and currency and amount is not None and day
    return PaymentIn(source.line, payment_id, customer_id, invoice_id, amount, currency, day)


def parse_rows(source_rows: Iterable[SourceRow], parse: Any) -> tuple[list[Any], list[RowError]]:
    """Parse every row; also refuse an id that appears twice in the file."""
    values: list[Any] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for source in source_rows:
        row_id = source.values.get("id", "")
        if row_id and row_id in first_line:
            errors.append(
                RowError(
                    source.line,
                    "id",
                    f"{row_id!r} appears twice in the file (first on line {first_line[row_id]})",
                )
            )
            continue
        if row_id:
            first_line[row_id] = source.line
        result = parse(source)
        if isinstance(result, list):
            errors.extend(result)
        else:
            values.append(result)
    return values, errors


__all__ = [
    "CUSTOMER_COLUMNS",
    "INVOICE_COLUMNS",
    "PAYMENT_COLUMNS",
    "REQUIRED_COLUMNS",
    "CsvTable",
    "CustomerIn",
    "InvoiceIn",
    "PaymentIn",
    "RowError",
    "SourceRow",
    "check_header",
    "control_character_problem",
    "invoice_change_errors",
    "parse_customer",
    "parse_invoice",
    "parse_payment",
    "parse_rows",
    "read_csv",
    "read_csv_bytes",
    "read_csv_text",
    "resolve_balance",
    "table_from_dicts",
]
