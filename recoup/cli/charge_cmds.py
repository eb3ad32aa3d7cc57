"""`recoup charge waive|export`: what finance does with a late fee or interest once charged
(recoup.charges.service). `recoup charges` lists them (ops_cmds)."""

from __future__ import annotations

import typer

from recoup.charges import repository as charge_repository
from recoup.charges.service import export_charges, waive_charge
from recoup.cli.common import (
    USER_OPTION,
    actor_name,
    console,
    handle_errors,
    on_date,
    transaction,
)
from recoup.domain.money import money_text

charge_app = typer.Typer(help="One late fee or interest charge.", no_args_is_help=True)
ON_OPTION = typer.Option(None, "--on", help="Business date (default: today).")


def register(app: typer.Typer) -> None:
    app.add_typer(charge_app, name="charge")


@charge_app.command("waive")
@handle_errors
def waive(
    charge_id: int,
    reason: str = typer.Option(..., "--reason", help="Why the charge is no longer owed."),
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
) -> None:
    """Waive a charge: no longer owed (logged charge_waived, sent to webhooks)."""
    with transaction() as session:
        charge = charge_repository.get_or_not_found(session, charge_id)
        day = on_date(session, on)
        waive_charge(session, charge, reason=reason, actor=actor_name(user), on=day)
        amount = money_text(charge.amount, charge.currency)
    console.print(f"charge {charge_id} ({amount} {charge.currency}) waived", highlight=False)


@charge_app.command("export")
@handle_errors
def export(
    charge_ids: list[int] | None = typer.Argument(None, help="The charges the billing system has."),
    all_open: bool = typer.Option(False, "--all-open", help="Every open charge."),
    on: str | None = ON_OPTION,
    user: str | None = USER_OPTION,
) -> None:
    """Mark charges exported: the billing system acknowledged them (logged charge_exported)."""
    with transaction() as session:
        day = on_date(session, on)
        done, already = export_charges(
            session, charge_ids or [], all_open=all_open, actor=actor_name(user), on=day
        )
        done_ids = [c.id for c in done]
        already_ids = [c.id for c in already]
    message = f"{len(done_ids)} charge(s) marked exported"
    if done_ids:
        message += ": " + ", ".join(map(str, done_ids))
    if already_ids:
        message += f" (already exported: {', '.join(map(str, already_ids))})"
    console.print(message, highlight=False)
