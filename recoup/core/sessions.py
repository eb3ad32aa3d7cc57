"""Sessions for a face that runs one command at a time (the CLI): one session factory per
database URL, and the command's unit of work.

A face imports `Session` (for its annotations) and `transaction` from here, never SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from recoup.core.db import make_engine, make_sessionmaker, unit_of_work

__all__ = ["Session", "SessionFactory", "session_factory", "transaction"]

SessionFactory = sessionmaker[Session]

_factories: dict[str, SessionFactory] = {}


def session_factory(url: str) -> SessionFactory:
    """The session factory of `url`, made once per process."""
    if url not in _factories:
        _factories[url] = make_sessionmaker(make_engine(url))
    return _factories[url]


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with unit_of_work(session_factory(url)) as session:
        yield session
