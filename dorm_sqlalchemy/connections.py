"""Connection setup shared by every tenant connection, sync and async.

SQLite needs three things from every connection before the application sees
it, and each has a trap:

* ``PRAGMA foreign_keys``, ``journal_mode`` and ``busy_timeout`` only take
  effect outside a transaction: set inside one, ``foreign_keys`` is silently
  ignored. The driver is therefore put in autocommit mode first
  (``isolation_level = None``), the pragmas are set, and then read back.
* Python's ``sqlite3`` module (before 3.12) begins transactions itself, and
  only before DML, so SAVEPOINT and transactional DDL do not work. With the
  driver in autocommit mode, a ``begin`` event emits ``BEGIN`` itself, which
  is SQLAlchemy's documented recipe for pysqlite and aiosqlite.
* A deferred ``BEGIN`` that reads and then writes cannot wait for the write
  lock: SQLite returns "database is locked" at once, ignoring the busy
  timeout, because the read snapshot may be stale (CPython issue 124510
  discusses it). Transactions therefore begin ``IMMEDIATE`` by default, so
  concurrent writers queue on the busy timeout instead of failing.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext

from .errors import DormError, TenantBusy

__all__ = ["BeginMode", "ConnectionSettings", "install_connection_events"]

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
    """How every connection of one registry is set up."""

    busy_timeout: float = 5.0
    """Seconds a statement waits for a lock before failing with TenantBusy."""

    begin: BeginMode = "immediate"
    """How transactions begin unless the ``dorm_begin`` execution option says otherwise."""

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
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {settings.synchronous}")
        for name, value in settings.extra_pragmas.items():
            cursor.execute(f"PRAGMA {name} = {value}")

        _verify_pragmas(cursor, settings, tenant=tenant, in_memory=in_memory)
    finally:
        cursor.close()


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
) -> None:
    """Attach the connect, begin and error listeners of one tenant engine.

    ``engine`` is a sync engine, or the ``sync_engine`` of an AsyncEngine.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        configure_dbapi_connection(
            dbapi_connection, settings, tenant=tenant, in_memory=in_memory
        )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        mode = options.get(BEGIN_OPTION, settings.begin)
        connection.exec_driver_sql(begin_statement(mode))

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        if is_busy_error(context.original_exception):
            return TenantBusy(tenant, settings.busy_timeout)
        return None


def begin_statement(mode: str) -> str:
    """Return the BEGIN statement for ``mode``, rejecting anything else."""
    if mode not in BEGIN_MODES:
        raise ValueError(
            f"invalid begin mode {mode!r}: use one of {', '.join(BEGIN_MODES)}"
        )
    return f"BEGIN {mode.upper()}"


def is_busy_error(error: BaseException | None) -> bool:
    """Tell whether a driver error means a lock could not be had in time."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return False
    return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
