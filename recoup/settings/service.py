"""The installation's settings row and the business date it implies."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from recoup.core.clock import today_in
from recoup.models import SettingsRow


def get_settings(session: Session) -> SettingsRow:
    """The settings row, created with the SPEC's defaults on first use."""
    row = session.get(SettingsRow, 1)
    if row is None:
        row = SettingsRow(
            id=1,
            mode="invoice",
            invoice_types=["commercial"],
            customer_balance=None,
            max_levels=15,
            timezone="UTC",
            catch_up="latest",
            company={},
        )
        session.add(row)
        session.flush()
    return row


def business_today(session: Session) -> date:
    """Today in the settings' time zone (R1)."""
    return today_in(get_settings(session).timezone)
