"""Engine, sessions and the column types that keep money and time exact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn, cast

from sqlalchemy import BigInteger, DateTime, Engine, MetaData, Table, create_engine, event
from sqlalchemy.exc import ArgumentError, DisconnectionError, IntegrityError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from recoup.core.errors import Conflict, RecoupError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AMOUNT_SCALE = 10_000  # four decimal places covers every ISO 4217 minor unit


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Amount(TypeDecorator[Decimal]):
    """A Decimal stored as an integer of 1/10,000ths: exact on SQLite (no float) and PostgreSQL,
    and still summable and comparable in SQL."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value) * AMOUNT_SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"amount {value} has more than 4 decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)) / AMOUNT_SCALE


def amount_from_db(value: int | None) -> Decimal:
    """For Core queries that aggregate raw Amount columns (SUM returns the stored integers)."""
    return Decimal(int(value or 0)) / AMOUNT_SCALE


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps; naive datetimes are refused at the boundary."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no offset; we only ever store UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_URL_FORM = "postgresql://host:5432/dbname (user:password@ before the host) or sqlite:///path.db"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """The engine for `url`; a malformed URL is a one-line error that never quotes it (it
    may hold the password, issue 8.5)."""
    try:
        return _make_engine(url, **kwargs)
    except NoSuchModuleError:
        raise RecoupError(
            f"RECOUP_DATABASE_URL names a database Recoup does not support; expected {_URL_FORM}"
        ) from None
    except ImportError as exc:  # a dialect whose driver is not installed (mysql://…)
        raise RecoupError(
            f"RECOUP_DATABASE_URL needs the driver {exc.name or 'of its database'}, which is not "
            f"installed; Recoup supports {_URL_FORM}"
        ) from None
    except (ArgumentError, ValueError):
        raise RecoupError(
            "RECOUP_DATABASE_URL is not a valid database URL (a port that is not a number, or "
            "a password with an unencoded / ? # or @: percent-encode them, e.g. / as %2F); "
            f"expected {_URL_FORM}"
        ) from None


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            # a run touches large indexes: 64 MB of page cache instead of SQLite's 2 MB
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA wal_autocheckpoint=16384")
            cursor.close()

        return engine
    # the API serves up to its thread pool's requests at once: a pool smaller than that opens
    # and closes a PostgreSQL session per overflowing request (issue 11's benchmark)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


def make_async_engine(url: str, *, read_only: bool = False) -> AsyncEngine | None:
    """The engine of `url` for work awaited on an event loop (SQLAlchemy's asyncio extension
    over psycopg's async connections), or None where there is none: SQLite, whose only async
    driver would run each statement in a thread anyway.

    `read_only`: autocommit, so a read costs no BEGIN and COMMIT round trips (PostgreSQL's
    READ COMMITTED gives each statement its own snapshot either way), and a statement that is
    not a SELECT is refused before it is sent."""
    if url.startswith("sqlite"):
        return None
    options: dict[str, Any] = {"pool_size": 20, "max_overflow": 10}
    if read_only:
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_async_engine(url, **options)
    _ping_when_idle(engine.sync_engine)
    if read_only:
        _refuse_writes(engine.sync_engine)
    return engine


def _refuse_writes(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _only_reads(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        # a compound SELECT may open with a parenthesis; SHOW reads a setting
        if not statement.lstrip(" \n\t(")[:6].upper().startswith(("SELECT", "SHOW")):
            raise RecoupError(f"a read-only unit of work may not run {statement[:40]!r}")


# A connection that sat in the pool this long is pinged before use: PostgreSQL may have
# restarted or dropped it meanwhile. `pool_pre_ping` would ping on every checkout, a round trip
# per API request; one in use moments ago is as good as a ping.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_from = record.info.get("idle_from")
        if idle_from is None or time.monotonic() - idle_from < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # the pool discards this connection and checks out another (SQLAlchemy's
            # pessimistic disconnect handling)
            raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements built once (no ORM objects, no ORM compilation)."""
    return cast(Table, model.__table__)


def forget_loaded(session: Session, model: type[Any], ident: Any) -> None:
    """After a Core write of a row the session may hold as an object: that object is read
    again when next used, instead of showing what it held before."""
    loaded = session.identity_map.get(session.identity_key(model, ident))
    if loaded is not None:
        session.expire(loaded)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def hold_write_lock(session: Session) -> None:
    """SQLite: take the database's write lock now (BEGIN IMMEDIATE), before the reads a write
    depends on. The driver starts a transaction only at the first write, so reads before it
    each see their own moment, and another writer may commit between them and that write.
    Inside a transaction that has written, the lock is already held. PostgreSQL locks rows
    instead (SELECT ... FOR UPDATE / FOR SHARE)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.dbapi_connection
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def undone(session: Session) -> Iterator[None]:
    """Run the block in a SAVEPOINT and undo whatever it wrote, also when it raises. The
    caller's own work is flushed first and left as it was: uncommitted, for the edge to commit
    or roll back.

    SQLite: the driver starts a transaction only at the first write, but a SAVEPOINT outside
    one starts it, and rolling back to the savepoint does not end it. Left open, it would pin
    the block's snapshot: a write after it would fail ("database is locked") once another
    writer has committed. So when the savepoint opened the transaction, which then holds
    nothing, the transaction is ended too, as it was before the block."""
    session.flush()
    connection = session.connection()
    driver = connection.connection.dbapi_connection if connection.dialect.name == "sqlite" else None
    opens = driver is not None and not driver.in_transaction
    savepoint = session.begin_nested()
    try:
        yield
    finally:
        # active, or deactivated by a failed flush; closed if the block ended the whole
        # transaction itself, and then there is nothing left to undo
        if savepoint.is_active or session.get_nested_transaction() is savepoint:
            savepoint.rollback()
        if opens and driver is not None and driver.in_transaction:
            driver.rollback()


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The edge's transaction: commit on success, roll back on any error.

    A uniqueness the database enforced (two writers created the same row at once) comes out as
    a Conflict: nothing was written, and doing it again is safe."""
    session = factory()
    try:
        yield session
    except BaseException as exc:
        roll_back_and_close(session, exc)
    commit_and_close(session)


def commit_and_close(session: Session) -> None:
    """The end of a unit of work whose work succeeded (see `unit_of_work`)."""
    try:
        session.commit()
    except BaseException as exc:
        roll_back_and_close(session, exc)
    session.close()


def roll_back_and_close(session: Session, error: BaseException) -> NoReturn:
    """The end of a unit of work that failed with `error`, raised again (an IntegrityError as
    the Conflict it means)."""
    try:
        session.rollback()
    finally:
        session.close()
    raise_as_meant(error)


def raise_as_meant(error: BaseException) -> NoReturn:
    """`error`, that ended a unit of work, raised again: an IntegrityError as the Conflict it
    means."""
    if isinstance(error, IntegrityError):
        raise Conflict(
            "the same rows were changed at the same time by someone else; nothing was "
            "written, try again",
            details=[str(error.orig).splitlines()[0]] if error.orig else [],
        ) from error
    raise error
