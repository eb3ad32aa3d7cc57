"""The dashboard (`/`): what is owed and how collections go."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from recoup.web.page import ReadPage

router = APIRouter()


@router.get("/")
def dashboard(page: ReadPage) -> Response:
    return page.render("dashboard.html")
