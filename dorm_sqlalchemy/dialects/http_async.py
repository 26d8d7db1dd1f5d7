r"""The ``dorm+http_async`` and ``dorm+https_async`` dialects: ``dorm+http`` for asyncio.

Connecting
----------

The URL, its options and ``connect_args`` are those of ``dorm+http``
(:mod:`dorm_sqlalchemy.dialects.http`); only the driver name changes::

    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine("dorm+http_async://:s3cret@127.0.0.1:8787/acme/api/db")
    engine = create_async_engine("dorm+https_async://:s3cret@db.example.com/acme/api/db")

How it works
------------

The dialect drives the blocking DB-API driver of ``dorm+http``
(:mod:`dorm_sqlalchemy.dialects.dbapi`) from worker threads. Each call that
sends a request runs in the connection's own worker thread: execute,
fetching from a server-side cursor, commit, rollback and close. So the event
loop does not wait on the network. The exception is a connection that the
garbage collector finds unclosed: SQLAlchemy terminates it outside the event
loop, and closing it rolls back its transaction in the calling thread.

A connection runs one call at a time. Cancelling a task while its statement
is in flight therefore does not stop the request, and the next call on that
connection waits for it to finish.

Each connection has a thread of its own because, in asyncio's shared
default executor, connections waiting for a tenant's write lock could take
every thread, and the connection holding the lock could not send its
COMMIT.

Transactions, isolation levels (``"SERIALIZABLE"``, the default, and
``"AUTOCOMMIT"``), server-side cursors (``AsyncConnection.stream()``,
``stream_results``, ``yield_per``) and errors behave as in ``dorm+http``.
The pool is :class:`~sqlalchemy.pool.AsyncAdaptedQueuePool`.

Registering
-----------

Installed from the distribution, the entry points ``dorm.http_async`` and
``dorm.https_async`` make the URLs work. Without them::

    from sqlalchemy.dialects import registry
    registry.register(
        "dorm.http_async", "dorm_sqlalchemy.dialects.http_async", "DormHTTPAsyncDialect"
    )
    registry.register(
        "dorm.https_async", "dorm_sqlalchemy.dialects.http_async", "DormHTTPSAsyncDialect"
    )
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

from sqlalchemy import pool
from sqlalchemy.connectors.asyncio import (
    AsyncAdapt_dbapi_connection,
    AsyncAdapt_dbapi_cursor,
    AsyncAdapt_dbapi_module,
    AsyncAdapt_dbapi_ss_cursor,
    AsyncAdapt_terminate,
)
from sqlalchemy.engine import URL
from sqlalchemy.util.concurrency import await_

from . import dbapi as dorm_dbapi
from .http import DormHTTPDialect

__all__ = ["DormHTTPAsyncDialect", "DormHTTPSAsyncDialect", "dialect"]

_T = TypeVar("_T")


# -- asyncio wrappers of the blocking driver ----------------------------------------


class AsyncConnection:
    """An awaitable face of one :class:`dorm_dbapi.Connection`.

    Every call that may send a request runs in a worker thread while holding
    :attr:`lock`, so two such calls never overlap on one connection, even
    after a task awaiting a call was cancelled.
    """

    def __init__(self, connection: dorm_dbapi.Connection) -> None:
        self.sync_connection = connection
        self.lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dorm-http-async")

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """Call ``function(*args)`` in the connection's worker thread, one call at a time."""
        call = functools.partial(contextvars.copy_context().run, self.run_blocking, function, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def run_blocking(self, function: Callable[..., _T], *args: Any) -> _T:
        with self.lock:
            return function(*args)

    def cursor(self, server_side: bool = False) -> AsyncCursor:
        return AsyncCursor(self, self.sync_connection.cursor(server_side=server_side))

    async def commit(self) -> None:
        await self.run(self.sync_connection.commit)

    async def rollback(self) -> None:
        await self.run(self.sync_connection.rollback)

    async def close(self) -> None:
        try:
            await self.run(self.sync_connection.close)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Let the worker thread end once its calls are done."""
        self._executor.shutdown(wait=False)


class AsyncCursor:
    """An awaitable face of one cursor of the blocking driver.

    A plain cursor contains its whole result after ``execute()``, so only
    ``execute()`` and ``executemany()`` leave the event loop. A server-side
    cursor also fetches and closes in a worker thread, because those calls
    read from the HTTP response or end it.
    """

    def __init__(self, connection: AsyncConnection, cursor: dorm_dbapi.Cursor) -> None:
        self.connection = connection
        self.sync_cursor = cursor
        self.server_side = isinstance(cursor, dorm_dbapi.StreamingCursor)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self.sync_cursor.description

    @property
    def rowcount(self) -> int:
        return self.sync_cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self.sync_cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self.sync_cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self.sync_cursor.arraysize = value

    async def execute(
        self, operation: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> AsyncCursor:
        await self.connection.run(self.sync_cursor.execute, operation, parameters)
        return self

    async def executemany(
        self, operation: str, seq_of_parameters: Sequence[Sequence[Any] | Mapping[str, Any]]
    ) -> AsyncCursor:
        await self.connection.run(self.sync_cursor.executemany, operation, seq_of_parameters)
        return self

    async def fetchone(self) -> tuple[Any, ...] | None:
        if self.server_side:
            return await self.connection.run(self.sync_cursor.fetchone)
        return self.sync_cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        if self.server_side:
            return await self.connection.run(self.sync_cursor.fetchmany, size)
        return self.sync_cursor.fetchmany(size)

    async def fetchall(self) -> list[tuple[Any, ...]]:
        if self.server_side:
            return await self.connection.run(self.sync_cursor.fetchall)
        return self.sync_cursor.fetchall()

    async def setinputsizes(self, *sizes: Any) -> None:
        """Do nothing, as PEP 249 allows."""

    async def nextset(self) -> None:
        """Return ``None``: a statement has one result set."""

    async def close(self) -> None:
        if self.server_side:
            await self.connection.run(self.sync_cursor.close)
        else:
            self.sync_cursor.close()

    def __aiter__(self) -> AsyncCursor:
        return self

    async def __anext__(self) -> tuple[Any, ...]:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row


# -- SQLAlchemy's asyncio adaptation ------------------------------------------------


class AsyncAdapt_dorm_cursor(AsyncAdapt_dbapi_cursor):
    __slots__ = ()


class AsyncAdapt_dorm_ss_cursor(AsyncAdapt_dbapi_ss_cursor):
    __slots__ = ()

    def _make_new_cursor(self, connection: Any) -> Any:
        return connection.cursor(server_side=True)


class AsyncAdapt_dorm_connection(AsyncAdapt_terminate, AsyncAdapt_dbapi_connection):
    """The DB-API connection that SQLAlchemy uses: blocking methods that await inside its greenlet."""

    __slots__ = ()

    _cursor_cls = AsyncAdapt_dorm_cursor
    _ss_cursor_cls = AsyncAdapt_dorm_ss_cursor
    _connection: AsyncConnection

    # The dialect reads and sets these like on the blocking connection; none sends a request.

    @property
    def autocommit(self) -> bool:
        return self._connection.sync_connection.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._connection.sync_connection.autocommit = value

    @property
    def transactions_supported(self) -> bool | None:
        return self._connection.sync_connection.transactions_supported

    @property
    def in_transaction(self) -> bool:
        return self._connection.sync_connection.in_transaction

    @property
    def closed(self) -> bool:
        return self._connection.sync_connection.closed

    async def _terminate_graceful_close(self) -> None:
        await self._connection.close()

    def _terminate_force_close(self) -> None:
        # Called outside any greenlet (garbage collection) or after the graceful
        # close failed, so it blocks: close() rolls back an open transaction.
        try:
            self._connection.run_blocking(self._connection.sync_connection.close)
        finally:
            self._connection.shutdown()


class AsyncAdapt_dorm_dbapi(AsyncAdapt_dbapi_module):
    """The DB-API module that SQLAlchemy uses: :mod:`dorm_dbapi`, with asyncio-adapted connections."""

    def __init__(self) -> None:
        super().__init__(dorm_dbapi, dbapi_module=dorm_dbapi)
        for name in dorm_dbapi.__all__:
            if name not in ("Connection", "Cursor", "StreamingCursor", "connect"):
                setattr(self, name, getattr(dorm_dbapi, name))

    def connect(self, *args: Any, **kwargs: Any) -> AsyncAdapt_dorm_connection:
        # Building the httpx client loads the TLS trust store, which reads files.
        sync_connection = await_(asyncio.to_thread(dorm_dbapi.connect, *args, **kwargs))
        return AsyncAdapt_dorm_connection(self, AsyncConnection(sync_connection))


# -- the dialects --------------------------------------------------------------------


class DormHTTPAsyncDialect(DormHTTPDialect):
    """The ``dorm+http`` dialect for ``create_async_engine()``."""

    driver = "http_async"
    is_async = True
    has_terminate = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return AsyncAdapt_dorm_dbapi()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def get_driver_connection(self, connection: Any) -> AsyncConnection:
        return connection._connection  # type: ignore[no-any-return]

    def do_terminate(self, dbapi_connection: Any) -> None:
        dbapi_connection.terminate()


class DormHTTPSAsyncDialect(DormHTTPAsyncDialect):
    """The ``dorm+https_async`` dialect: the same as ``dorm+http_async`` over TLS."""

    driver = "https_async"
    scheme = "https"
    supports_statement_cache = True


dialect = DormHTTPAsyncDialect
