"""Connection setup shared by every tenant connection, sync and async.

SQLite needs three things from every connection before the application gets
it, and each has a trap:

* ``PRAGMA foreign_keys``, ``journal_mode`` and ``busy_timeout`` only take
  effect outside a transaction: set inside one, ``foreign_keys`` is silently
  ignored. The driver is therefore put in autocommit mode first
  (``isolation_level = None``), the pragmas are set, and then read back.
* Python's ``sqlite3`` module (before 3.12) begins transactions itself, and
  only before DML, so SAVEPOINT and transactional DDL do not work. With the
  driver in autocommit mode, the dialect's ``do_begin`` emits ``BEGIN``
  itself, the same idea as SQLAlchemy's documented recipe for pysqlite and
  aiosqlite, without its ``begin`` event listener (see
  :func:`install_connection_events` for why).
* A deferred ``BEGIN`` that reads and then writes cannot wait for the write
  lock: SQLite returns "database is locked" at once, ignoring the busy
  timeout, because the read snapshot may be stale. Transactions therefore begin ``IMMEDIATE`` by default, so
  concurrent writers queue on the busy timeout instead of failing.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.characteristics import ConnectionCharacteristic

from .errors import DormError, TenantBusy

__all__ = [
    "BeginMode",
    "ConnectionSettings",
    "SettingsWatch",
    "engine_with_begin",
    "install_connection_events",
]

logger = logging.getLogger(__name__)

BeginMode: TypeAlias = Literal["immediate", "deferred", "exclusive"]
BEGIN_MODES: tuple[str, ...] = ("immediate", "deferred", "exclusive")

BEGIN_OPTION = "dorm_begin"
"""Execution option that overrides how a transaction begins on one connection."""

SYNCHRONOUS_MODES: tuple[str, ...] = ("off", "normal", "full", "extra")

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


@dataclass(frozen=True)
class ConnectionSettings:
    """Settings applied to every connection of one registry."""

    busy_timeout: float = 5.0
    """Seconds a statement waits for a lock before failing with TenantBusy."""

    begin: BeginMode = "immediate"
    """Begin mode of transactions, unless the ``dorm_begin`` execution option sets another."""

    synchronous: str = "normal"
    """``PRAGMA synchronous`` for file databases in WAL mode."""

    wal: bool = True
    """Put file databases in WAL mode (in-memory databases never use WAL)."""

    extra_pragmas: dict[str, Any] = field(default_factory=dict)

    @property
    def busy_timeout_ms(self) -> int:
        return int(self.busy_timeout * 1000)


def configure_dbapi_connection(
    dbapi_connection: Any, settings: ConnectionSettings, *, tenant: str, in_memory: bool
) -> None:
    """Put a fresh DBAPI connection in autocommit mode, set the pragmas and verify them.

    Works on a ``sqlite3.Connection`` and on SQLAlchemy's aiosqlite adapter,
    which offer the same ``isolation_level`` attribute and ``cursor()``.
    """
    dbapi_connection.isolation_level = None

    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {settings.busy_timeout_ms:d}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if settings.wal and not in_memory:
            enable_wal(cursor, settings.busy_timeout)
            cursor.execute(f"PRAGMA synchronous = {settings.synchronous}")
        for name, value in settings.extra_pragmas.items():
            cursor.execute(f"PRAGMA {name} = {value}")

        _verify_pragmas(cursor, settings, tenant=tenant, in_memory=in_memory)
    finally:
        cursor.close()


def enable_wal(cursor: Any, busy_timeout: float) -> None:
    # WAL is a property of the file, so it usually is on already. Switching a
    # new file needs an exclusive lock, and SQLite does not call the busy
    # handler for it: two connections opening a new tenant at once retry here.
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if not is_busy_error(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _verify_pragmas(
    cursor: Any, settings: ConnectionSettings, *, tenant: str, in_memory: bool
) -> None:
    expected: dict[str, object] = {
        "foreign_keys": 1,
        "busy_timeout": settings.busy_timeout_ms,
    }
    if settings.wal and not in_memory:
        expected["journal_mode"] = "wal"

    for pragma, value in expected.items():
        cursor.execute(f"PRAGMA {pragma}")
        actual = cursor.fetchone()[0]
        if isinstance(actual, str):
            actual = actual.lower()
        if actual != value:
            raise DormError(
                f"tenant {tenant!r}: PRAGMA {pragma} is {actual!r} after setting it "
                f"to {value!r}; the connection is not in autocommit mode or the "
                "database file does not allow it (WAL needs a writable directory)",
                tenant=tenant,
            )


def install_connection_events(
    engine: Engine, settings: ConnectionSettings, *, tenant: str, in_memory: bool
) -> SettingsWatch | None:
    """Set up one tenant engine: connection setup, BEGIN, busy errors.

    ``engine`` is a sync engine, or the ``sync_engine`` of an AsyncEngine.
    Only pool and dialect events are used: a Connection-level listener (such
    as ``begin``) makes SQLAlchemy dispatch events around every statement,
    which costs more than a point query on SQLite.

    Returns the :class:`SettingsWatch` of a sync engine's connections, or
    ``None`` for an async engine, whose driver runs in another thread.
    """

    control = _TransactionControl(settings.begin)
    control.install(engine.dialect)
    watch = None if engine.dialect.is_async else SettingsWatch()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # A new connection may reuse the id() of a closed one.
        control.forget(dbapi_connection)
        configure_dbapi_connection(
            dbapi_connection, settings, tenant=tenant, in_memory=in_memory
        )
        if watch is not None:
            watch.install(dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        if is_busy_error(context.original_exception):
            return TenantBusy(tenant, settings.busy_timeout)
        return None

    return watch


class SettingsWatch:
    """Tells which connections ran a PRAGMA that may change a setting.

    A statement such as ``PRAGMA foreign_keys = OFF`` would stay in effect
    on a pooled connection for its next user, so such a connection is closed
    at checkin instead of going back to the pool. SQLite calls the authorizer
    for every statement it prepares, whichever way it was sent (through
    SQLAlchemy or on the driver connection), and not again when the driver
    reuses a prepared statement, so checking costs nothing per execution.

    The same authorizer also records which connections prepared a statement
    that creates, alters or drops a table: such a change alters no rows, and
    the mirror must still hear of it.

    NOTE: a connection on which the application sets an authorizer of its
    own is no longer watched.
    """

    def __init__(self) -> None:
        self.changed: set[int] = set()
        """``id()`` of each watched DBAPI connection that ran such a PRAGMA."""

        self.schema_changed: set[int] = set()
        """``id()`` of each watched DBAPI connection that prepared a table change."""

    def install(self, dbapi_connection: sqlite3.Connection) -> None:
        key = id(dbapi_connection)
        self.changed.discard(key)
        self.schema_changed.discard(key)
        changed = self.changed
        schema_changed = self.schema_changed

        def authorize(action: int, name: str | None, argument: str | None, *_: Any) -> int:
            # A PRAGMA with an argument sets a value, apart from the ones
            # that take a table or index name to report on.
            if action == sqlite3.SQLITE_PRAGMA and argument is not None:
                if (name or "").lower() not in _REPORTING_PRAGMAS:
                    changed.add(key)
            elif action in _TABLE_CHANGES:
                schema_changed.add(key)
            return sqlite3.SQLITE_OK

        dbapi_connection.set_authorizer(authorize)

    def pop_schema_changed(self, dbapi_connection: Any) -> bool:
        """Tell whether ``dbapi_connection`` prepared a table change, and forget it."""
        return _pop(self.schema_changed, dbapi_connection)

    def pop_changed(self, dbapi_connection: Any) -> bool:
        """Tell whether ``dbapi_connection`` ran a setting PRAGMA, and forget it."""
        return _pop(self.changed, dbapi_connection)


def _pop(connections: set[int], dbapi_connection: Any) -> bool:
    key = id(dbapi_connection)
    if key in connections:
        connections.discard(key)
        return True
    return False


# Authorizer actions of statements that create, alter or drop a table.
_TABLE_CHANGES = frozenset(
    {
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_ALTER_TABLE,
    }
)

# PRAGMAs whose argument names what to report on; SQLAlchemy's reflection
# and Alembic send them often, and they change nothing.
_REPORTING_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_info",
        "index_xinfo",
        "index_list",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)


class _BeginModeCharacteristic(ConnectionCharacteristic):
    """The ``dorm_begin`` execution option, applied per checkout like ``isolation_level``."""

    transactional = True

    def reset_characteristic(self, dialect: Any, dbapi_connection: Any) -> None:
        dialect.dorm_transactions.begin_modes.pop(id(dbapi_connection), None)

    def set_characteristic(self, dialect: Any, dbapi_connection: Any, value: Any) -> None:
        begin_statement(value)
        dialect.dorm_transactions.begin_modes[id(dbapi_connection)] = value

    def get_characteristic(self, dialect: Any, dbapi_connection: Any) -> Any:
        return dialect.dorm_transactions.begin_modes.get(id(dbapi_connection))


class _TransactionControl:
    """Emits BEGIN itself and keeps the driver in autocommit mode.

    Installed on one engine's dialect instance: ``do_begin`` sends
    ``BEGIN IMMEDIATE`` (or the connection's ``dorm_begin`` mode), and
    ``isolation_level="AUTOCOMMIT"`` is tracked here instead of through the
    driver's ``isolation_level`` attribute, which must stay ``None``: setting
    it back to ``""``, as pysqlite's dialect does when it resets the
    isolation level, would let the driver begin transactions behind our back.
    """

    def __init__(self, default_mode: str) -> None:
        self.default_mode = default_mode
        self.begin_modes: dict[int, str] = {}
        self.autocommit: set[int] = set()

    def install(self, dialect: Any) -> None:
        dialect.dorm_transactions = self
        dialect.connection_characteristics = {
            **dialect.connection_characteristics,
            BEGIN_OPTION: _BeginModeCharacteristic(),
        }
        base_set_isolation_level = SQLiteDialect.set_isolation_level

        default_statement = _BEGIN_STATEMENTS[self.default_mode]
        is_async = dialect.is_async

        def do_begin(dbapi_connection: Any) -> None:
            raw = dbapi_connection.dbapi_connection
            key = id(raw)
            if key in self.autocommit:
                return
            # A connection's own dorm_begin option comes first, then the
            # engine_with_begin() engine it came from, then the default.
            mode = self.begin_modes.get(key)
            if mode is not None:
                statement = _BEGIN_STATEMENTS[mode]
            else:
                statement = _engine_begin_statement.get() or default_statement
            if not is_async:
                raw.execute(statement)
                return
            cursor = raw.cursor()
            try:
                cursor.execute(statement)
            finally:
                cursor.close()

        def set_isolation_level(dbapi_connection: Any, level: str) -> None:
            if level == "AUTOCOMMIT":
                self.autocommit.add(id(dbapi_connection))
                return
            self.autocommit.discard(id(dbapi_connection))
            base_set_isolation_level(dialect, dbapi_connection, level)

        dialect.do_begin = do_begin
        dialect.set_isolation_level = set_isolation_level
        if dialect.is_async:
            dialect.do_commit = _commit_or_roll_back(_commit_adapted, _roll_back_adapted)
        else:
            rollback = _end_transaction("ROLLBACK")
            dialect.do_commit = _commit_or_roll_back(_end_transaction("COMMIT"), rollback)
            dialect.do_rollback = rollback

    def forget(self, dbapi_connection: Any) -> None:
        """Drop the state of a DBAPI connection that is being closed or was just opened."""
        self.begin_modes.pop(id(dbapi_connection), None)
        self.autocommit.discard(id(dbapi_connection))


def _end_transaction(statement: str) -> Callable[[Any], None]:
    """Return a ``do_commit`` or ``do_rollback`` that runs ``statement`` on the driver.

    ``sqlite3.Connection.commit()`` and ``rollback()`` prepare their
    statement again on every call, and SQLite calls the connection's
    authorizer for each preparation. Through ``execute`` the statement is
    prepared once and then reused from the driver's statement cache. That
    saves about 6% of a ``session.get()`` (measured).
    """

    def end(dbapi_connection: Any) -> None:
        raw = dbapi_connection.dbapi_connection
        if raw.in_transaction:
            raw.execute(statement)

    return end


def _commit_or_roll_back(
    commit: Callable[[Any], None], rollback: Callable[[Any], None]
) -> Callable[[Any], None]:
    """Return a ``do_commit`` that rolls back when COMMIT fails.

    SQLite keeps the transaction open after a failed COMMIT (a deferred
    foreign key, say), while SQLAlchemy treats it as over and checks the
    connection in without a rollback. The pooled connection would then keep
    the write lock, and every other writer of the tenant would wait out its
    busy timeout.
    """

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        except BaseException:
            try:
                rollback(dbapi_connection)
            except Exception:
                logger.warning("ROLLBACK after a failed COMMIT failed as well", exc_info=True)
            raise

    return do_commit


def _commit_adapted(dbapi_connection: Any) -> None:
    dbapi_connection.commit()


def _roll_back_adapted(dbapi_connection: Any) -> None:
    dbapi_connection.rollback()


_BEGIN_STATEMENTS = {mode: f"BEGIN {mode.upper()}" for mode in BEGIN_MODES}

_engine_begin_statement: ContextVar[str | None] = ContextVar(
    "dorm_engine_begin_statement", default=None
)
"""The BEGIN statement of the engine_with_begin() connection that is beginning now."""


def engine_with_begin(engine: Engine, mode: str) -> Engine:
    """Return an engine sharing ``engine``'s pool whose transactions begin with ``mode``.

    ``engine.execution_options(dorm_begin=mode)`` does the same through a
    connection characteristic, but SQLAlchemy then dispatches connection
    events around every statement of that engine, which made a
    ``session.get()`` about 17% slower (measured). Here the engine's
    connections are of a Connection subclass that names its BEGIN statement
    while it begins.
    """
    copy = engine.execution_options()
    # Engine.connect() builds its Connection from _connection_cls.
    copy._connection_cls = _connection_class(begin_statement(mode))
    return copy


@functools.lru_cache(maxsize=None)
def _connection_class(statement: str) -> type[Connection]:
    class BeginModeConnection(Connection):
        def begin(self) -> Any:
            token = _engine_begin_statement.set(statement)
            try:
                return super().begin()
            finally:
                _engine_begin_statement.reset(token)

    BeginModeConnection.__name__ = BeginModeConnection.__qualname__ = (
        f"Connection{statement.title().replace(' ', '')}"
    )
    return BeginModeConnection


def begin_statement(mode: str) -> str:
    """Return the BEGIN statement for ``mode``, rejecting anything else."""
    try:
        return _BEGIN_STATEMENTS[mode]
    except (KeyError, TypeError):
        raise ValueError(
            f"invalid begin mode {mode!r}: use one of {', '.join(BEGIN_MODES)}"
        ) from None


def is_busy_error(error: BaseException | None) -> bool:
    """Tell whether a driver error means a lock could not be had in time."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return False
    # SQLite also returns SQLITE_BUSY when COMMIT or RELEASE meets a
    # statement of the same connection that is still running, and no retry
    # cures that.
    if "statements in progress" in str(error):
        return False
    return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
