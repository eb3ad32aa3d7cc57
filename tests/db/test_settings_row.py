"""The migrations create the settings row with the SPEC's defaults; reading it never writes."""

from __future__ import annotations

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.defaults import SETTINGS_ID, settings_defaults
from recoup.domain.policy import Settings
from recoup.models import SettingsRow
from recoup.policies.service import load_config
from recoup.settings.service import SettingsMissing, get_settings


def test_the_migrated_database_has_the_settings_row_with_the_specs_defaults(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        row = get_settings(session)
        assert not session.new and not session.dirty  # a read, nothing to write
        stored = {key: getattr(row, key) for key in settings_defaults()}
        assert stored == settings_defaults()
        assert row.updated_at is not None
        # the same defaults as the domain's Settings()
        assert load_config(session).settings == Settings()


def test_without_the_row_reading_says_the_database_is_not_migrated(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        session.execute(delete(SettingsRow).where(SettingsRow.id == SETTINGS_ID))
        with pytest.raises(SettingsMissing, match="run `recoup init`"):
            get_settings(session)
        assert session.get(SettingsRow, SETTINGS_ID) is None  # and it did not create one
        session.rollback()
