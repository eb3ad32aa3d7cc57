"""The installation's settings row and the business date it implies."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from recoup.core.clock import today_in
from recoup.core.errors import RecoupError
from recoup.domain.defaults import SETTINGS_ID
from recoup.models import SettingsRow


class SettingsMissing(RecoupError):
    """The database has tables but no settings row: its schema was not migrated to the end."""

    status_code = 500
    title = "Database not migrated"


def get_settings(session: Session) -> SettingsRow:
    """The settings row. Only reads: the migrations create it (0007_settings_row)."""
    row = session.get(SettingsRow, SETTINGS_ID)
    if row is None:
        raise SettingsMissing(
            "the database has no settings row: its schema is not up to date; "
            "run `recoup init` to migrate it"
        )
    return row


def business_today(session: Session) -> date:
    """Today in the settings' time zone (R1)."""
    return today_in(get_settings(session).timezone)
