"""`recoup config validate|apply|export FILE`: policies as code (SPEC §4)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from recoup.cli.common import USER_OPTION, actor_name, console, handle_errors, transaction
from recoup.core.errors import RecoupError
from recoup.core.faults import DATABASE_ERRORS
from recoup.domain.validation import ConfigIssue
from recoup.policies.service import (
    ConfigProblems,
    apply_document,
    check_document,
    check_file,
    config_warnings,
    export_config,
)
from recoup.policies.yaml_text import MAX_FILE_BYTES, dump_yaml, load_yaml

config_app = typer.Typer(
    help="Policies as code: validate, apply and export the configuration file.",
    no_args_is_help=True,
)

FILE_ARGUMENT = typer.Argument(..., help="The YAML configuration file.")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


def _read(path: str) -> object:
    """The YAML document in `path` (- for stdin); a syntax error is printed with its
    file:line:column on one line, as editors and CI annotations expect."""
    try:
        if path == "-":
            return load_yaml(sys.stdin.read(MAX_FILE_BYTES + 1), "<stdin>")
        try:
            size = Path(path).stat().st_size
            if size > MAX_FILE_BYTES:  # refused before it is read into memory
                raise RecoupError(
                    f"{path}: the file is {size:,} bytes; a configuration file may have at "
                    f"most {MAX_FILE_BYTES:,}"
                )
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RecoupError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RecoupError(f"{path}: not UTF-8 text") from None
        return load_yaml(text, path)
    except RecoupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _print_issues(source: str, issues: list[ConfigIssue] | list[str]) -> None:
    # Plain echo, not rich: one issue per line, never wrapped, easy to grep.
    noun = "problem" if len(issues) == 1 else "problems"
    typer.echo(f"{source}: {len(issues)} {noun}", err=True)
    for issue in issues:
        typer.echo(f"  {issue}")


def _print_warnings(warnings: list[ConfigIssue]) -> None:
    """Sound but probably not meant: one line each on stderr, yellow on a terminal."""
    for warning in warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)


@config_app.command("validate")
@handle_errors
def validate(file: str = FILE_ARGUMENT) -> None:
    """Check a configuration file against the rules and what the database has in use.

    Lists every problem as `path: message` and exits 1 if there is any.
    """
    document = _read(file)
    try:
        with transaction() as session:
            config, issues = check_document(session, document)
            warnings = config_warnings(session, config) if not issues else []
            # Validation never writes; leave the database exactly as it was.
            session.rollback()
    except DATABASE_ERRORS as exc:
        # No database (or no schema) yet: the file can still be checked on its own.
        typer.echo(
            f"note: database not usable ({type(exc).__name__}); checked the file alone, "
            "without what is in use",
            err=True,
        )
        config, issues = check_file(document)
        warnings = config_warnings(None, config) if not issues else []
    if issues:
        _print_issues(file, issues)
        raise typer.Exit(1)
    _print_warnings(warnings)
    console.print(
        f"{file}: valid ({len(config.templates)} templates, {len(config.actions)} actions, "
        f"{len(config.policies)} policies)",
        highlight=False,
    )


@config_app.command("apply")
@handle_errors
def apply(file: str = FILE_ARGUMENT, user: str | None = USER_OPTION) -> None:
    """Make the database's configuration equal to the file.

    Creates, changes and removes templates, actions, policies and levels; nothing changes if
    the file has any problem.
    """
    document = _read(file)
    try:
        with transaction() as session:
            report = apply_document(session, document, actor_name(user))
    except ConfigProblems as exc:  # malformed (422) or refused by R11/R14 (409): one list
        if not exc.details:
            raise
        _print_issues(file, exc.details)
        typer.echo("nothing was changed", err=True)
        raise typer.Exit(1) from None
    _print_warnings(report.warnings)
    if not report.any:
        typer.echo("no changes")
        return
    for verb, items in (
        ("created", report.created),
        ("changed", report.changed),
        ("removed", report.removed),
    ):
        for item in items:
            typer.echo(f"{verb}: {item}")
    total = len(report.created) + len(report.changed) + len(report.removed)
    typer.echo(
        f"applied {file}: {len(report.created)} created, {len(report.changed)} changed, "
        f"{len(report.removed)} removed ({total} in all)"
    )


@config_app.command("export")
@handle_errors
def export(file: str = typer.Argument(..., help="Where to write the YAML; - for stdout.")) -> None:
    """Write the database's configuration as YAML that `config apply` takes back unchanged."""
    with transaction() as session:
        text = dump_yaml(export_config(session))
    if file == "-":
        sys.stdout.write(text)
        return
    try:
        Path(file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RecoupError(f"{file}: cannot write: {exc.strerror or exc}") from None
    typer.echo(f"exported to {file}", err=True)
