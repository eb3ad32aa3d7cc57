"""Only one run works at a time (R13). The lock is held by the database session (PostgreSQL
advisory lock) or by an OS file lock next to the SQLite file, so a killed run releases it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from recoup.core.errors import RecoupError, RunInProgress

ADVISORY_KEY = 0x52454355  # "RECU"


@contextmanager
def run_lock(engine: Engine, name: str = "run") -> Iterator[None]:
    key = ADVISORY_KEY + (0 if name == "run" else hash(name) % 1000 + 1)
    if engine.dialect.name == "postgresql":
        connection = engine.connect()
        try:
            got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            connection.commit()
            if not got:
                raise RunInProgress("another run is in progress on this database; try again later")
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()
        finally:
            connection.close()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database).with_name(Path(database).name + f".{name}.lock")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except FileNotFoundError:
        raise RecoupError(
            f"cannot use the database {database}: its folder {path.parent} does not exist"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(
                "another run is in progress on this database; try again later"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
