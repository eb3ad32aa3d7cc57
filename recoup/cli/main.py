"""`recoup`: the command line. Each feature module registers its own commands."""

from __future__ import annotations

import typer

from recoup.cli import (
    action_cmds,
    config_cmds,
    demo_cmds,
    document_cmds,
    event_cmds,
    import_cmds,
    ops_cmds,
    plan_action_cmds,
    report_cmds,
    retry_cmds,
    run_cmds,
)

app = typer.Typer(
    name="recoup",
    help="Recoup: open-source dunning. Remind, escalate, stop when paid, log everything.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Recoup: open-source dunning. Configure with RECOUP_DATABASE_URL, RECOUP_DATA_DIR,
    RECOUP_SMTP_URL and RECOUP_USER."""


for module in (
    run_cmds,
    config_cmds,
    import_cmds,
    ops_cmds,
    plan_action_cmds,
    action_cmds,
    retry_cmds,
    document_cmds,
    event_cmds,
    report_cmds,
    demo_cmds,
):
    module.register(app)


if __name__ == "__main__":
    app()
