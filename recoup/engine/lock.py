"""Only one run works at a time (R13). The lock is held by the database session (PostgreSQL
advisory lock) or by an OS file lock next to the SQLite file, so a killed run releases it."""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from recoup.core.errors import RecoupError, RunInProgress

ADVISORY_KEY = 0x52454355  # "RECU"


def _advisory_key(name: str) -> int:
    # crc32, not hash(): the key must be the same in every process
    return ADVISORY_KEY + (0 if name == "run" else zlib.crc32(name.encode()) % 1000 + 1)


def _lock_path(database: str, name: str) -> Path:
    """The OS lock file next to the SQLite database."""
    return Path(database).with_name(Path(database).name + f".{name}.lock")


@contextmanager
def run_lock(engine: Engine, name: str = "run") -> Iterator[None]:
    key = _advisory_key(name)
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
    path = _lock_path(database, name)
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except FileNotFoundError:
        raise RecoupError(
            f"cannot use the database {database}: its folder {path.parent} does not exist"
        ) from None
    except OSError as exc:  # a full disk, a read-only or forbidden folder
        raise _lock_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(
                "another run is in progress on this database; try again later"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise _lock_error(path, exc) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_error(path: Path, exc: OSError) -> RecoupError:
    """One line naming the lock file and the reason; nothing has been done yet."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return RecoupError(f"cannot take the run lock {path}: {reason}; nothing was done")


def run_in_progress(engine: Engine, name: str = "run") -> bool:
    """Whether a run holds the lock now, found without taking it (taking it, even for a
    moment, could turn away a run starting at that instant)."""
    key = _advisory_key(name)
    if engine.dialect.name == "postgresql":
        # a bigint advisory key: its high half in classid, its low half in objid
        with engine.connect() as connection:
            held = connection.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = :high AND objid = :low AND objsubid = 1 AND granted "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()))"
                ),
                {"high": key >> 32, "low": key & 0xFFFFFFFF},
            ).scalar()
            return bool(held)
    database = engine.url.database
    if not database or database == ":memory:":
        return False
    path = _lock_path(database, name)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    where = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    # Linux lists every flock in /proc/locks: "1: FLOCK ADVISORY WRITE <pid> <dev>:<inode> …"
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        return _holder_alive(path)
    for line in locks.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == where:
            return True
    return False


def _holder_alive(path: Path) -> bool:
    """Elsewhere: the process whose pid the lock file holds is still alive."""
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
