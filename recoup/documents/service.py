"""Documents: storing generated letters (the files and their rows).

Services flush, never commit: the action runner or the CLI command owns the transaction.
Queries are in recoup.documents.repository; previews in recoup.documents.preview.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from recoup.core.env import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from recoup.core.errors import Conflict, NotFound
from recoup.core.files import FileRefused, UnsafePath, read_inside, write_private
from recoup.documents.repository import LETTER, for_instance, get_or_not_found
from recoup.messages.email import safe_filename
from recoup.models import ActionInstance, Document

# --- files ---------------------------------------------------------------------------------


def letter_path(
    documents_dir: Path,
    instance: ActionInstance,
) -> Path:
    """`<documents>/<plan id>/<instance id>-<level>-<action>.pdf` (a reminder's letter:
    `<documents>/invoice-<invoice id>/…`). Deterministic: a retry overwrites the same file."""
    folder = (
        str(instance.plan_id)
        if instance.plan_id is not None
        else f"invoice-{safe_filename(instance.invoice_id or 'none')}"
    )
    name = f"{instance.id}-{safe_filename(instance.level)}-{safe_filename(instance.action)}.pdf"
    return documents_dir / folder / name


def write_file(
    path: Path,
    content: bytes,
    *,
    below: Path | None = None,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> None:
    """Write atomically: a reader never sees half a PDF; a retry replaces the file. Owner-only,
    through a fresh temporary file; no symlink is followed in the folders below `below` (the
    data folder; default: the file's own folder) — see recoup.core.files."""
    write_private(
        path,
        content,
        below=below if below is not None else path.parent,
        file_mode=file_mode,
        dir_mode=dir_mode,
    )


# --- rows ----------------------------------------------------------------------------------


def store_letter(
    session: Session,
    instance: ActionInstance,
    *,
    path: Path,
    invoice_ids: list[str],
) -> Document:
    """The instance's letter document: created once (unique action_instance_id), updated on a
    regeneration."""
    document = for_instance(session, instance.id)
    if document is None:
        document = Document(
            plan_id=instance.plan_id,
            action_instance_id=instance.id,
            kind=LETTER,
        )
        session.add(document)
    document.path = str(path)
    document.invoice_ids = list(invoice_ids)
    session.flush()
    return document


# --- reading a letter back (the back office's "open the letter") ----------------------------

# a letter is a few pages; anything much larger in the documents folder is not one of ours
DOCUMENT_MAX_BYTES = 50 * 1024 * 1024


def read_document_pdf(session: Session, document_id: int, data_dir: Path) -> tuple[str, bytes]:
    """(file name, content) of a document's PDF, read only from inside `data_dir` (no symbolic
    link followed, a PDF only): NotFound when the row or its file is gone, Conflict when the
    file must not be sent. The same rules as the API's GET /documents/{id}/pdf."""
    row = get_or_not_found(session, document_id)
    try:
        return read_inside(data_dir, row.path, max_bytes=DOCUMENT_MAX_BYTES)
    except FileNotFoundError:
        raise NotFound(f"document {document_id}: its file is no longer there") from None
    except (UnsafePath, NotADirectoryError):
        raise Conflict(
            f"document {document_id}: its file is not sent: it is not inside the data folder "
            "(RECOUP_DATA_DIR), or is reached through a symbolic link"
        ) from None
    except FileRefused as exc:
        raise Conflict(f"document {document_id}: its file is not sent: it {exc}") from None


__all__ = ["DOCUMENT_MAX_BYTES", "letter_path", "read_document_pdf", "store_letter", "write_file"]
