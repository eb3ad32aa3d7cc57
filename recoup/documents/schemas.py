"""What a document looks like to the faces (SPEC §5): `recoup documents --json`, `document
show`, later the API and the plan page."""

from __future__ import annotations

from recoup.core.schemas import Schema, Timestamp


class DocumentRead(Schema):
    """A generated letter: the plan it belongs to (None for a reminder's), the invoices it is
    about, and the path of its PDF."""

    id: int
    plan_id: int | None
    kind: str
    path: str
    invoice_ids: list[str]
    created_at: Timestamp


__all__ = ["DocumentRead"]
