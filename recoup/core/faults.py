"""Database and file-system faults in words a user can act on, for every face.

The faces print (the CLI) or answer (the API) these one-liners instead of a traceback; they
import these functions, not the database driver's exceptions.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, SQLAlchemyError

from recoup.domain.redact import redact_url

# Whatever the database layer raises: a face that can do without the database (`config
# validate` checks the file alone) catches these.
DATABASE_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError,)


def _driver_text(exc: DBAPIError) -> str:
    return str(exc.orig) if exc.orig is not None else str(exc)


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def os_problem(exc: OSError) -> str:
    """`cannot write /path: No space left on device`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def database_problem(exc: DBAPIError, database_url: str) -> str:
    """A database error in words a user can act on, without a traceback or a password (the
    caller still redacts the configuration's secrets)."""
    text = _driver_text(exc)
    url = redact_url(database_url)
    if "no such table" in text or "does not exist" in text and "relation" in text:
        return f"the database at {url} has no Recoup schema yet: run `recoup init`"
    if "connection" in text or "unable to open" in text:
        return f"cannot reach the database at {url}: {first_line(text)}"
    return f"database error: {first_line(text)}"


def fault_text(exc: BaseException, database_url: Callable[[], str]) -> str | None:
    """One line for a database or file-system fault; None for any other exception.
    `database_url` is asked only when the message names the database."""
    if isinstance(exc, OperationalError | ProgrammingError):
        return database_problem(exc, database_url())
    if isinstance(exc, DBAPIError):  # any other driver error: its first line, no traceback
        return f"database error: {first_line(_driver_text(exc))}"
    if isinstance(exc, OSError):  # a full disk, a permission: the file and the reason
        return os_problem(exc)
    return None
