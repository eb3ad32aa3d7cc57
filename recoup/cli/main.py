"""`recoup`: the command line. Each feature module registers its own commands."""

from __future__ import annotations

from importlib.metadata import version

import typer

from recoup.cli import (
    action_cmds,
    apikey_cmds,
    charge_cmds,
    config_cmds,
    customer_cmds,
    demo_cmds,
    document_cmds,
    import_cmds,
    ops_cmds,
    plan_action_cmds,
    report_cmds,
    retry_cmds,
    run_cmds,
    serve_cmds,
    task_cmds,
    user_cmds,
    webhook_cmds,
)

app = typer.Typer(
    name="recoup",
    help="Recoup: open-source dunning. Remind, escalate, stop when paid, log everything.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"recoup {version('recoup')}")
        raise typer.Exit()


@app.callback()
def main(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print Recoup's version and exit.",
    ),
) -> None:
    """Recoup: open-source dunning. Configure with RECOUP_DATABASE_URL, RECOUP_DATA_DIR,
    RECOUP_SMTP_URL and RECOUP_USER."""


for module in (
    run_cmds,
    config_cmds,
    import_cmds,
    ops_cmds,
    task_cmds,
    customer_cmds,
    charge_cmds,
    plan_action_cmds,
    action_cmds,
    retry_cmds,
    document_cmds,
    webhook_cmds,
    report_cmds,
    demo_cmds,
    apikey_cmds,
    user_cmds,
    serve_cmds,
):
    module.register(app)


if __name__ == "__main__":
    app()
