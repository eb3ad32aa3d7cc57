"""Every query of the messages package: the template rows it chooses from."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from recoup.models import TemplateRow


def active_templates(session: Session, code: str, channel: str) -> Sequence[TemplateRow]:
    """Every active language version of template `code` on `channel`, in the file's order
    (position, then id)."""
    return session.scalars(
        select(TemplateRow)
        .where(
            TemplateRow.code == code,
            TemplateRow.channel == channel,
            TemplateRow.active.is_(True),
        )
        .order_by(TemplateRow.position, TemplateRow.id)
    ).all()
