"""Streaming cursors for raw SQL: :meth:`Dorm.exec` and :meth:`Dorm.aexec`.

A cursor runs one statement in its own transaction (the driver is in
autocommit mode) and hands out rows as SQLite produces them, so memory stays
flat on any result size. It keeps a connection of the tenant until the last
row has been read or :meth:`Cursor.close` is called; a cursor that is dropped
half-read gives its connection back when it is garbage collected.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from .connections import is_busy_error
from .errors import DormError, TenantBusy

if TYPE_CHECKING:
    from .engines import TenantEngines

__all__ = ["Cursor", "AsyncCursor", "Row"]

Row = sqlite3.Row
"""A result row: indexable by position and by column name, with ``keys()``."""

_FIRST_KEYWORD = re.compile(r"\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*([A-Za-z]+)", re.DOTALL)
_TRANSACTION_KEYWORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})

ASYNC_BATCH_ROWS = 256
"""Rows fetched per worker-thread hop by :class:`AsyncCursor`."""


def _first_keyword(sql: object) -> str:
    """Return the first keyword of ``sql``, refusing transaction control statements.

    Only allowed statements enter the cache, so a cache hit needs no check.
    """
    keyword = _parse_first_keyword(sql)
    if keyword in _TRANSACTION_KEYWORDS:
        raise DormError(
            f"{keyword} is not allowed in dorm.exec(): each call runs in its own "
            "transaction; use dorm.session(tenant) or dorm.engine(tenant).begin() "
            "for a transaction of several statements"
        )
    if len(_KEYWORDS) >= _KEYWORD_CACHE_SIZE:
        _KEYWORDS.clear()
    _KEYWORDS[sql] = keyword  # type: ignore[index]
    return keyword


def _parse_first_keyword(sql: object) -> str:
    if not isinstance(sql, str):
        raise TypeError(f"SQL must be a str, got {type(sql).__name__}: {sql!r}")
    match = _FIRST_KEYWORD.match(sql)
    return match.group(1).upper() if match else ""


# Statements repeat, so the first keyword of each SQL text is parsed once.
_KEYWORDS: dict[str, str] = {}
_KEYWORD_CACHE_SIZE = 1024


# The actions a read-only query may take (sqlite3 authorizer action codes);
# BEGIN and COMMIT come from SQLAlchemy around the query.
_READ_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION,
    }
)


# Pragmas that only read, whatever their argument.
INTROSPECTION_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "database_list",
        "collation_list",
        "function_list",
        "pragma_list",
        "compile_options",
    }
)


def read_only_authorizer(
    action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None
) -> int:
    """Allow reading and introspection only (a ``sqlite3`` authorizer callback)."""
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        # PRAGMA x reads; PRAGMA x = value and PRAGMA x(value) set, except
        # for the introspection pragmas, whose argument is a table or index.
        if arg2 is None or (arg1 or "").lower() in INTROSPECTION_PRAGMAS:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    # SQLite 3.40 reports its own reading of the schema, when a pragma table
    # function first loads it, as an UPDATE of sqlite_master; SQL itself cannot
    # write sqlite_master unless PRAGMA writable_schema is on, which is denied.
    if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_temp_master"):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _translate(error: sqlite3.Error, sql: str, params: Any, tenant: str, timeout: float) -> Exception:
    if is_busy_error(error):
        return TenantBusy(tenant, timeout)
    return sa_exc.DBAPIError.instance(sql, params, error, sqlite3.Error, hide_parameters=True)


class Cursor:
    """The streaming result of one statement on one tenant.

    Iterate it for :data:`Row` objects, or use :meth:`all`, :meth:`one`,
    :meth:`first`, :meth:`raw` and :meth:`scalar`.
    """

    __slots__ = (
        "rows_read",
        "_rows_written",
        "_entry",
        "_connection",
        "_cursor",
        "_changes_before",
        "_read_only",
        "_keyword",
        "_description",
    )

    def __init__(
        self, entry: TenantEngines, sql: str, params: Sequence[Any], read_only: bool = False
    ) -> None:
        """Run ``sql`` on a statement connection of ``entry``.

        ``read_only`` denies anything but reading (writes, ATTACH, pragmas
        that set a value) with SQLite's authorizer, before the statement runs.
        The statement runs here rather than in a factory method, which saves
        a call on every ``dorm.exec``.
        """
        try:
            keyword = _KEYWORDS[sql]
        except (KeyError, TypeError):
            keyword = _first_keyword(sql)
        parameters: Any = params
        # One mapping means named parameters. The scalar test comes first
        # because isinstance() against an ABC costs more.
        if len(params) == 1 and not isinstance(params[0], _SCALARS) and isinstance(params[0], Mapping):
            parameters = params[0]
        connection = entry.acquire_statement_connection()
        if read_only:
            connection.set_authorizer(read_only_authorizer)
        try:
            changes_before = connection.total_changes
            dbapi_cursor = connection.execute(sql, parameters)
        except sqlite3.Error as error:
            _release(entry, connection, None, read_only, keyword)
            if read_only and error.sqlite_errorcode == sqlite3.SQLITE_AUTH:  # type: ignore[attr-defined]
                raise DormError(
                    f"tenant {entry.tenant!r}: fan_out() only reads, and this statement "
                    f"does more: {sql[:80]!r}; use dorm.exec() on each tenant to write",
                    tenant=entry.tenant,
                ) from error
            raise _translate(
                error, sql, parameters, entry.tenant, entry.settings.busy_timeout
            ) from error
        except BaseException:
            _release(entry, connection, None, read_only, keyword)
            raise

        self.rows_read = 0
        self._entry = entry
        self._connection: sqlite3.Connection | None = connection
        self._cursor: sqlite3.Cursor | None = dbapi_cursor
        self._changes_before = changes_before
        self._read_only = read_only
        self._keyword = keyword
        self._description = dbapi_cursor.description
        if self._description is None:
            self.close()

    @classmethod
    def execute(
        cls, entry: TenantEngines, sql: str, params: Sequence[Any], *, read_only: bool = False
    ) -> Cursor:
        """Run ``sql`` on a statement connection of ``entry`` (the same as ``Cursor(...)``)."""
        return cls(entry, sql, params, read_only)

    def __del__(self) -> None:
        # A cursor dropped half-read gives its connection back.
        try:
            connection = self._connection
        except AttributeError:  # __init__ did not run
            return
        if connection is not None:
            self.close()

    @property
    def tenant(self) -> str:
        """The tenant the statement ran on."""
        return self._entry.tenant

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the result columns (empty for statements without rows)."""
        return tuple(column[0] for column in self._description or ())

    # -- rows --------------------------------------------------------------

    def __iter__(self) -> Iterator[Row]:
        return self._rows(Row)

    def raw(self) -> Iterator[tuple[Any, ...]]:
        """Iterate over the remaining rows as plain tuples of values."""
        return self._rows(None)

    def _rows(self, row_factory: Any) -> Iterator[Any]:
        cursor = self._cursor
        if cursor is None:
            return
        cursor.row_factory = row_factory
        try:
            for row in cursor:
                self.rows_read += 1
                yield row
        except sqlite3.Error as error:
            self.close()
            raise _translate(
                error, "", (), self.tenant, self._entry.settings.busy_timeout
            ) from error
        self.close()

    def fetchmany(self, size: int, *, raw: bool = False) -> list[Any]:
        """Return up to ``size`` more rows; an empty list means the end."""
        cursor = self._cursor
        if cursor is None:
            return []
        cursor.row_factory = None if raw else Row
        try:
            rows = cursor.fetchmany(size)
        except sqlite3.Error as error:
            self.close()
            raise _translate(
                error, "", (), self.tenant, self._entry.settings.busy_timeout
            ) from error
        self.rows_read += len(rows)
        if len(rows) < size:
            self.close()
        return rows

    def all(self) -> list[Row]:
        """Return every remaining row."""
        return list(self)

    def first(self) -> Row | None:
        """Return the first row, or ``None`` when there is none, and close the cursor."""
        rows = self.fetchmany(1)
        self.close()
        return rows[0] if rows else None

    def one(self) -> Row:
        """Return the only row; raise ``NoResultFound`` or ``MultipleResultsFound`` otherwise."""
        cursor = self._cursor
        row = extra = None
        if cursor is not None:
            cursor.row_factory = Row
            try:
                row = cursor.fetchone()
                extra = None if row is None else cursor.fetchone()
            except sqlite3.Error as error:
                self.close()
                raise _translate(
                    error, "", (), self.tenant, self._entry.settings.busy_timeout
                ) from error
            self.close()
        if row is None:
            raise sa_exc.NoResultFound(
                f"tenant {self.tenant!r}: the statement returned no rows where one was expected"
            )
        self.rows_read += 1
        if extra is not None:
            self.rows_read += 1
            raise sa_exc.MultipleResultsFound(
                f"tenant {self.tenant!r}: the statement returned more than one row "
                "where one was expected; use first() or all()"
            )
        return row

    def scalar(self) -> Any:
        """Return the first column of the first row, or ``None`` when there are no rows."""
        row = self.first()
        return None if row is None else row[0]

    # -- counts and closing ------------------------------------------------

    @property
    def rows_written(self) -> int:
        """Rows inserted, updated or deleted by the statement (SQLite's change counter)."""
        connection = self._connection
        if connection is None:
            # close() kept the count (and always runs before _connection is None).
            return self._rows_written
        return connection.total_changes - self._changes_before

    @property
    def closed(self) -> bool:
        return self._connection is None

    def close(self) -> None:
        """Finish the statement and give the connection back; idempotent."""
        connection = self._connection
        if connection is None:
            return
        self._rows_written = connection.total_changes - self._changes_before
        self._connection = None
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()
        if self._read_only:
            connection.set_authorizer(None)
        _release_statement_connection(self._entry, connection, self._keyword)

    def __enter__(self) -> Cursor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Cursor tenant={self.tenant!r} columns={list(self.column_names)} {state}>"


_SCALARS = (int, str, float, bytes, type(None))


def _release(
    entry: TenantEngines,
    connection: sqlite3.Connection,
    cursor: sqlite3.Cursor | None,
    read_only: bool,
    keyword: str,
) -> None:
    if cursor is not None:
        cursor.close()
    if read_only:
        connection.set_authorizer(None)
    _release_statement_connection(entry, connection, keyword)


def _release_statement_connection(
    entry: TenantEngines, connection: sqlite3.Connection, keyword: str
) -> None:
    # A PRAGMA may undo the connection setup (foreign_keys = OFF), so its
    # connection is closed afterwards instead of being reused. The mirror
    # hears of a schema change as of a write, because it changes no rows.
    entry.release_statement_connection(
        connection, discard=keyword == "PRAGMA", changed_schema=keyword in _SCHEMA_KEYWORDS
    )


_SCHEMA_KEYWORDS = frozenset({"CREATE", "DROP", "ALTER"})


class AsyncCursor:
    """The async form of :class:`Cursor`: ``async for row in cursor``.

    SQLite calls run in a worker thread, :data:`ASYNC_BATCH_ROWS` rows at a
    time, so a long result does not block the event loop.
    """

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    @classmethod
    async def execute(cls, entry: TenantEngines, sql: str, params: Sequence[Any]) -> AsyncCursor:
        cursor = await asyncio.to_thread(Cursor.execute, entry, sql, params)
        return cls(cursor)

    @property
    def tenant(self) -> str:
        return self._cursor.tenant

    @property
    def tenant(self) -> str:
        """The tenant the statement ran on."""
        return self._entry.tenant

    @property
    def column_names(self) -> tuple[str, ...]:
        return self._cursor.column_names

    @property
    def rows_read(self) -> int:
        return self._cursor.rows_read

    @property
    def rows_written(self) -> int:
        return self._cursor.rows_written

    def __aiter__(self) -> AsyncIterator[Row]:
        return self._batches(raw=False)

    def raw(self) -> AsyncIterator[tuple[Any, ...]]:
        """Iterate asynchronously over the remaining rows as tuples."""
        return self._batches(raw=True)

    async def _batches(self, *, raw: bool) -> AsyncIterator[Any]:
        while True:
            rows = await asyncio.to_thread(self._cursor.fetchmany, ASYNC_BATCH_ROWS, raw=raw)
            for row in rows:
                yield row
            if not rows:
                return

    async def all(self) -> list[Row]:
        return [row async for row in self]

    async def first(self) -> Row | None:
        return await asyncio.to_thread(self._cursor.first)

    async def one(self) -> Row:
        return await asyncio.to_thread(self._cursor.one)

    async def scalar(self) -> Any:
        return await asyncio.to_thread(self._cursor.scalar)

    async def close(self) -> None:
        await asyncio.to_thread(self._cursor.close)

    async def __aenter__(self) -> AsyncCursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
