"""Import (`/import`, collectors and admins: `Right.operate`): upload a customers, invoices or
payments CSV file, imported by the very service `recoup import …` calls (recoup.book.customers,
invoices, payments: all rows or none, the same checks, the plans recovered, paused or resumed).
The page shows the import's report, or every bad line of a refused file (its line number,
field and reason) with nothing changed. The upload is bounded (`MAX_IMPORT_BYTES`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from recoup.book import customers, imports, invoices, payments
from recoup.book.rows import KNOWN_COLUMNS, REQUIRED_COLUMNS, CsvTable, read_csv_bytes
from recoup.core.errors import InvalidInput
from recoup.domain.enums import Event
from recoup.log.service import log
from recoup.web.page import OperatePage, Page

router = APIRouter()

MAX_IMPORT_BYTES = 10 * 1024 * 1024  # an upload read into memory: 10 MB is ~100,000 rows
IMPORTERS: dict[str, Callable[..., imports.ImportReport]] = {
    "customers": customers.import_customers,
    "invoices": invoices.import_invoices,
    "payments": payments.import_payments,
}
# what each kind does, in the form's words
KIND_HINTS = {
    "customers": "Created or updated, matched by id. Other columns become attributes.",
    "invoices": "Created or updated, matched by id. Plans of invoices now paid close as recovered.",
    "payments": "Recorded once (payments are immutable); without invoice_id the oldest due "
    "invoices are paid first. Plans whose debt is paid close as recovered.",
}


@dataclass(frozen=True)
class BadLine:
    """A problem of a refused file, where the user finds it: the file's line (1: the header;
    0: the file as a whole), the column, why."""

    line: int
    field: str
    message: str


@dataclass(frozen=True)
class Upload:
    kind: str
    filename: str
    content: bytes | None  # None: no file chosen
    too_large: bool


async def uploaded(request: Request) -> Upload:
    """The posted kind and file, read up to the limit (Starlette has already spooled the
    multipart body for the CSRF check: we only ever read MAX_IMPORT_BYTES + 1 of it)."""
    form = await request.form()
    kind = form.get("kind")
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return Upload(kind if isinstance(kind, str) else "", "", None, False)
    content = await upload.read(MAX_IMPORT_BYTES + 1)
    return Upload(
        kind if isinstance(kind, str) else "",
        upload.filename,
        content[:MAX_IMPORT_BYTES],
        len(content) > MAX_IMPORT_BYTES,
    )


UploadDep = Annotated[Upload, Depends(uploaded)]


def _form(page: Page, *, status_code: int = 200, **context: object) -> Response:
    return page.render(
        "import.html",
        status_code=status_code,
        kinds=list(IMPORTERS),
        hints=KIND_HINTS,
        required=REQUIRED_COLUMNS,
        known=KNOWN_COLUMNS,
        max_mb=MAX_IMPORT_BYTES // (1024 * 1024),
        **{"kind": "", "errors": {}, "report": None, "refusal": None, **context},
    )


@router.get("/import")
def import_page(page: OperatePage) -> Response:
    return _form(page, kind=page.request.query_params.get("kind", ""))


def bad_lines(exc: InvalidInput, table: CsvTable) -> list[BadLine]:
    """Each problem of a refused import at its line: a row's by its index in the file's rows,
    the header's on line 1, a record that could not be read by the reader's own line."""
    unreadable = {(e.field, e.message): e.line for e in table.errors}
    lines = []
    for error in exc.errors:
        if error.index is not None and 0 <= error.index < len(table.rows):
            line = table.rows[error.index].line
        elif error.field == "header":
            line = 1
        else:
            line = unreadable.get((error.field or "", error.message), 0)
        lines.append(BadLine(line, error.field or "", error.message))
    if not lines:
        lines = [BadLine(0, "file", exc.message)]
    return lines


@router.post("/import")
def run_import(page: OperatePage, upload: UploadDep) -> Response:
    kind = upload.kind if upload.kind in IMPORTERS else ""
    errors: dict[str, str] = {}
    if not kind:
        errors["kind"] = "Choose what the file holds: customers, invoices or payments."
    if upload.content is None:
        errors["file"] = "Choose a CSV file to import."
    elif upload.too_large:
        errors["file"] = (
            f"{upload.filename} is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB: "
            "split it into smaller files, or import it with `recoup import` on the server."
        )
    elif not upload.content.strip():
        errors["file"] = f"{upload.filename} is empty."
    if errors:
        return _form(page, status_code=422, kind=kind, errors=errors)
    assert upload.content is not None
    table = read_csv_bytes(upload.content)
    try:
        if table.errors and not table.header:  # not CSV text at all (`recoup import`'s check)
            raise InvalidInput(
                f"{upload.filename}: cannot read the file",
                errors=[],
                details=[str(e) for e in table.errors],
            )
        report = IMPORTERS[kind](page.session, table, actor=page.actor)
    except InvalidInput as exc:
        page.rollback()  # all rows or none: nothing of the file is kept
        lines = (
            [BadLine(e.line, e.field, e.message) for e in table.errors]
            if not table.header
            else bad_lines(exc, table)
        )
        return _form(
            page,
            status_code=422,
            kind=kind,
            refusal={
                "message": exc.message,  # the lines are in the table, not repeated here
                "lines": lines,
                "bad_lines": len({bad.line for bad in lines}),
                "filename": upload.filename,
            },
        )
    log(
        page.session,
        Event.book_imported,
        actor=page.actor,
        kind=kind,
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        reason=f"back office upload of {upload.filename}"[:200],
    )
    return _form(page, kind=kind, report=report, filename=upload.filename)


__all__ = ["MAX_IMPORT_BYTES", "router"]
