"""The collector's work list (`/tasks`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
