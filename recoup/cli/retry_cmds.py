"""`recoup actions retry`: queue failed or backed-off actions again (recoup.actions.requeue)."""

from __future__ import annotations

import typer

from recoup.actions.requeue import requeue
from recoup.cli.common import (
    USER_OPTION,
    actor_name,
    console,
    handle_errors,
    parse_date,
    print_json,
    session_factory,
)
from recoup.core.clock import utc_now
from recoup.settings.service import business_today

actions_app = typer.Typer(help="Queued action instances.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(actions_app, name="actions")


@actions_app.command("retry")
@handle_errors
def retry(
    failed: bool = typer.Option(
        False, "--failed", help="Also queue failed actions again, with fresh attempts."
    ),
    action: str | None = typer.Option(None, "--action", help="Only this action code."),
    since: str | None = typer.Option(
        None, "--since", help="Only actions queued for this business date or later (YYYY-MM-DD)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    user: str | None = USER_OPTION,
) -> None:
    """Make actions waiting out a backoff (a mail server that was down) due now; with
    --failed, failed ones too. They run on the next `recoup run` or `recoup worker`.

    A failed action whose collector task a person has claimed or completed, or whose plan has
    closed, is left as it is. Each action queued again is logged (action_queued, retry)."""
    day = parse_date(since, "--since")
    with session_factory().begin() as session:
        result = requeue(
            session,
            now=utc_now(),
            on=business_today(session),
            actor=actor_name(user),
            failed=failed,
            action=action,
            since=day,
        )
    if as_json:
        print_json([result.as_dict()])
        return
    console.print(
        f"{result.total} action(s) queued again ({result.failed} failed, "
        f"{result.backed_off} backed off); `recoup run` or `recoup worker` executes them.",
        highlight=False,
        soft_wrap=True,
    )
    for kept in result.kept:
        console.print(
            f"  kept failed: instance {kept['id']} ({kept['action']}): {kept['reason']}",
            highlight=False,
            soft_wrap=True,
        )
