"""Documents and template previews: `documents`, `document show ID`,
`template preview CODE --invoice ID`. Thin: the work is in recoup.documents (repository,
preview, service); what a document shows is DocumentRead."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import typer

from recoup.cli.common import (
    JSON_ONE_OPTION,
    JSON_OPTION,
    console,
    handle_errors,
    output,
    parse_date,
    print_json,
    transaction,
)
from recoup.documents import repository
from recoup.documents.preview import preview_template
from recoup.documents.schemas import DocumentRead
from recoup.documents.service import write_file
from recoup.settings.service import business_today

COLUMNS = list(DocumentRead.model_fields)

document_app = typer.Typer(help="One generated document (a letter).", no_args_is_help=True)
template_app = typer.Typer(help="Message templates.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("documents")(documents)
    app.add_typer(document_app, name="document")
    app.add_typer(template_app, name="template")


@handle_errors
def documents(
    plan: int | None = typer.Option(None, "--plan", help="Only this plan's documents."),
    invoice: str | None = typer.Option(None, "--invoice", help="Only documents about it."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List generated documents (letters), newest first."""
    with transaction() as session:
        found, _ = repository.list_documents(session, plan_id=plan, invoice_id=invoice)
        rows = [_row(d) for d in found]
    if not as_json:
        rows = [{**r, "invoice_ids": ", ".join(r["invoice_ids"])} for r in rows]
    output(rows, COLUMNS, as_json=as_json, title="Documents")


def _row(document: object) -> dict[str, Any]:
    # python mode: print_json writes timestamps as the rest of the CLI does (isoformat)
    return DocumentRead.model_validate(document).model_dump()


@document_app.command("show")
@handle_errors
def document_show(
    document_id: int,
    path_only: bool = typer.Option(False, "--path", help="Print only the file's path."),
    as_json: bool = JSON_ONE_OPTION,
) -> None:
    """A document's details and the path of its file."""
    with transaction() as session:
        row = _row(repository.get_or_not_found(session, document_id))
    row["exists"] = Path(row["path"]).is_file()
    if path_only:
        typer.echo(row["path"])
    elif as_json:
        print_json([row])
    else:
        for key, value in row.items():
            console.print(f"[bold]{key}[/bold]: {value}", highlight=False)


@template_app.command("preview")
@handle_errors
def template_preview(
    code: str,
    invoice: str = typer.Option(..., "--invoice", help="Render for this invoice's customer."),
    language: str | None = typer.Option(
        None, "--language", help="Template language (default: the customer's)."
    ),
    channel: str | None = typer.Option(
        None, "--channel", help="email, letter or sms (default: the template's)."
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="The date to render for."),
    output_path: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write a letter's PDF (default: a temp file)."
    ),
    html: bool = typer.Option(False, "--html", help="Also print the HTML (email, letter)."),
) -> None:
    """Render a template with real data from the database, as the customer would get it.
    A letter is printed to PDF and its path shown; an email or SMS is printed."""
    with transaction() as session:
        today = parse_date(as_of) or business_today(session)
        preview = preview_template(
            session, code, invoice_id=invoice, today=today, language=language, channel=channel
        )
    typer.echo(f"template: {preview.code} ({preview.channel}, {preview.language})")
    if preview.subject is not None:
        typer.echo(f"subject: {preview.subject}")
    if preview.pdf is not None:
        if output_path is None:
            handle, name = tempfile.mkstemp(prefix=f"recoup-{preview.code}-", suffix=".pdf")
            os.close(handle)
            output_path = Path(name)
        write_file(output_path, preview.pdf.content)
        typer.echo(f"pages: {preview.pdf.pages}")
        typer.echo(f"pdf: {output_path.resolve()}")
        if html and preview.html:
            typer.echo("")
            typer.echo(preview.html)
        return
    typer.echo("")
    typer.echo(preview.text.rstrip("\n"))
    if html and preview.html:
        typer.echo("")
        typer.echo(preview.html)
