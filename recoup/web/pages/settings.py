"""Settings: admin-only (`ConfigurePage`). A placeholder for the configuration pages to come
(settings, templates, actions, levels, policies): for now it shows the settings read-only."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from recoup.settings.schemas import SettingsRead
from recoup.settings.service import get_settings
from recoup.web.page import ConfigurePage

router = APIRouter()


@router.get("/settings")
def settings_page(page: ConfigurePage) -> Response:
    shown = SettingsRead.model_validate(get_settings(page.session)).model_dump()
    return page.render("settings.html", settings=shown)
