"""Finding documents: the list's order, filters and cursor pages; one by id; what the faces
show (DocumentRead, the fields `recoup documents --json` prints)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.errors import InvalidInput, NotFound
from recoup.documents import repository
from recoup.documents.schemas import DocumentRead
from recoup.models import Document

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _documents(factory: sessionmaker[Session]) -> list[int]:
    """Five plan-less letters, one a minute; two created at the same moment (the id decides)."""
    with factory.begin() as session:
        rows = [
            Document(
                plan_id=None,
                kind="letter",
                path=f"/data/documents/invoice-I{n}/{n}.pdf",
                invoice_ids=["I1"] if n % 2 else ["I2"],
                created_at=T0 + timedelta(minutes=min(n, 3)),
            )
            for n in range(5)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_pages_follow_the_list_newest_first(session_factory: sessionmaker[Session]) -> None:
    ids = _documents(session_factory)
    newest_first = [ids[4], ids[3], ids[2], ids[1], ids[0]]
    with session_factory() as session:
        everything, cursor = repository.list_documents(session)
        assert [d.id for d in everything] == newest_first and cursor is None
        seen: list[int] = []
        cursor = None
        while True:
            page, cursor = repository.list_documents(session, cursor=cursor, limit=2)
            seen += [d.id for d in page]
            if cursor is None:
                break
        assert seen == newest_first
        about_i1, cursor = repository.list_documents(session, invoice_id="I1", limit=1)
        assert [d.id for d in about_i1] == [ids[3]] and cursor is not None
        rest, cursor = repository.list_documents(session, invoice_id="I1", cursor=cursor, limit=5)
        assert [d.id for d in rest] == [ids[1]] and cursor is None
        with pytest.raises(InvalidInput):
            repository.list_documents(session, cursor="not-a-cursor", limit=2)


def test_one_document_and_what_it_shows(session_factory: sessionmaker[Session]) -> None:
    ids = _documents(session_factory)
    with session_factory() as session:
        document = repository.get_or_not_found(session, ids[0])
        shown = DocumentRead.model_validate(document).model_dump()
        assert list(shown) == ["id", "plan_id", "kind", "path", "invoice_ids", "created_at"]
        assert shown["invoice_ids"] == ["I2"] and shown["created_at"] == T0
        with pytest.raises(NotFound, match="no document 999"):
            repository.get_or_not_found(session, 999)
        assert repository.latest_letter(session, plan_id=None, invoice_id="I2").id == ids[4]
