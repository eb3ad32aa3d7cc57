"""Only one run works at a time (R13). The lock is held by the database session (PostgreSQL
advisory lock) or by an OS file lock next to the SQLite file, so a killed run releases it.
The same two mechanisms tell whether the holder of an action instance's lease is alive."""

from __future__ import annotations

import fcntl
import hashlib
import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
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


# --- liveness of lease holders ---------------------------------------------------------------
# Every process that executes action instances holds a lock named by its lease token for as
# long as it may hold leases: a PostgreSQL session advisory lock (released by the server when
# the session ends, however the process died) or an flock on a file next to the SQLite
# database (released by the kernel). A lease whose holder's lock is free belongs to a dead
# process and is taken over at once (R13), instead of after the lease runs out.


def holder_key(token: str) -> int:
    """The advisory lock key of a lease token: 63 bits of its BLAKE2 digest, the same in
    every process."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def _holders_dir(database: str) -> Path:
    return Path(database).with_name(Path(database).name + ".holders")


def _holder_path(database: str, token: str) -> Path:
    return _holders_dir(database) / f"{holder_key(token):016x}.lock"


def _file_database(engine: Engine) -> str | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return database


@contextmanager
def holding(engine: Engine, token: str) -> Iterator[None]:
    """Hold the liveness lock of `token` (see above) until the block ends."""
    if engine.dialect.name == "postgresql":
        connection = engine.connect()
        try:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": holder_key(token)})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": holder_key(token)})
                connection.commit()
        finally:
            connection.close()
        return
    database = _file_database(engine)
    if database is None:  # an in-memory database lives and dies with this process
        yield
        return
    path = _holder_path(database, token)
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        raise RecoupError(
            f"cannot use the database {database}: its folder {path.parent.parent} does not exist"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {token}".encode())
        try:
            yield
        finally:
            with suppress(OSError):
                path.unlink()
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def dead_holders(engine: Engine, tokens: Iterable[str]) -> set[str]:
    """The tokens among `tokens` whose holder's liveness lock is free: their process is gone.
    A token from a process that never took the lock (an older version) counts as dead."""
    tokens = set(tokens)
    if not tokens:
        return set()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            held = set(
                connection.execute(
                    text(
                        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
                        "WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
                        "AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database())"
                    )
                ).scalars()
            )
        return {t for t in tokens if holder_key(t) not in held}
    database = _file_database(engine)
    if database is None:
        return set()
    return {t for t in tokens if not _file_held(_holder_path(database, t))}


def _file_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: leave it to the lease's expiry
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with suppress(OSError):  # its holder is gone: tidy up after it
            path.unlink()
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
