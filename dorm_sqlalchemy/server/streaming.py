"""``/query/stream``: one statement's rows as NDJSON, in constant memory.

The response is ``application/x-ndjson``, one JSON document per line::

    {"metadata": {"columnNames": ["id", "name"]}}
    {"row": {"id": 1, "name": "Ada"}}
    {"row": {"id": 2, "name": "Grace"}}
    {"metadata": {"rowsRead": 2, "rowsWritten": 0}}

This is DORM's format. With ``?rows=array`` each row is a list in column
order, ``{"row": [1, "Ada"]}``, which keeps every column when two have the
same name (a JSON object keeps only the last of them). Values use the
encoding of :mod:`dorm_sqlalchemy.server.protocol`. An error after the first
line (the status is already 200 then) ends the stream with
``{"error": "..."}`` and no closing ``metadata`` line, so a client knows the
stream is complete only when it reads that closing line.

Rows come from the ``sqlite3`` cursor in batches, each fetched in a worker
thread, and each batch is sent before the next is read, so memory stays flat
on any result size. The statement runs in a transaction that commits after
the last row. A client that disconnects rolls it back, and so does a client
that reads nothing for ``ServerLimits.stream_stall_timeout``. The connection
goes back to the tenant's pool either way. Inside an interactive transaction
the statement runs in a savepoint on the transaction's connection instead, and
a client that disconnects rolls back to that savepoint.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from .errors import ApiError
from .execution import (
    REQUEST_SAVEPOINT,
    TenantConnection,
    translate_error,
    undo_request_savepoint,
)
from .protocol import Statement, dumps, row_lines
from .sandbox import PROGRESS_STEPS, Authorizer, Deadline, single_statement
from .settings import ServerLimits

if TYPE_CHECKING:
    from ..registry import Dorm

__all__ = ["NDJSON_MEDIA_TYPE", "NDJSONResponse", "StatementStream"]

logger = logging.getLogger(__name__)

NDJSON_MEDIA_TYPE = "application/x-ndjson"

# A batch of row lines is one join: {"row":<row>}\n{"row":<row>}\n...
_ROW_START = b'{"row":'
_ROW_SEPARATOR = b'}\n{"row":'
_ROW_END = b"}\n"


class StatementStream:
    """One statement running on a tenant connection, read batch by batch.

    Every method blocks and is meant for a worker thread. :meth:`close`
    may be called at any time and more than once; it rolls back what has not
    been committed and gives the connection back.
    """

    def __init__(
        self,
        dorm: Dorm,
        tenant: str,
        statement: Statement,
        *,
        read_only: bool,
        limits: ServerLimits,
        rows_as_arrays: bool,
        connection: sqlite3.Connection | None = None,
    ) -> None:
        """``connection`` is that of an open interactive transaction: the statement
        then runs in the savepoint :data:`REQUEST_SAVEPOINT` on it instead of a
        transaction of its own, and the connection is not given back."""
        self.tenant = tenant
        self.columns: list[str] = []
        self.rows_read = 0
        self.rows_written = 0
        self._statement = statement
        self._sql = single_statement(statement.sql)
        self._limits = limits
        self._rows_as_arrays = rows_as_arrays
        self._tenant_connection = TenantConnection(dorm, tenant)
        self._connection: sqlite3.Connection | None = None
        self._shared_connection = connection
        self._savepoint_open = False
        self._cursor: sqlite3.Cursor | None = None
        self._authorizer = Authorizer(read_only=read_only)
        self._deadline = Deadline(limits.statement_timeout)
        self._changes_before = 0

    def open(self) -> bytes:
        """Begin the transaction, run the statement and return the first NDJSON line.

        Raises :class:`ApiError` when the statement cannot run, so the
        endpoint can still return an error status.
        """
        if self._shared_connection is not None:
            connection = self._shared_connection
            begin = f"SAVEPOINT {REQUEST_SAVEPOINT}"
        else:
            connection = self._tenant_connection.open()
            begin = "BEGIN"
        self._connection = connection
        try:
            connection.execute(begin)
            self._savepoint_open = self._shared_connection is not None
            connection.set_authorizer(self._authorizer)
            connection.set_progress_handler(self._deadline, PROGRESS_STEPS)
            self._changes_before = connection.total_changes
            self._deadline.start()
            self._cursor = connection.execute(self._sql, self._statement.params)
        except sqlite3.Error as error:
            api_error = self._translate(error)
            self.close()
            raise api_error from error
        except BaseException:
            self.close()
            raise
        self.columns = [column[0] for column in self._cursor.description or ()]
        return _line({"metadata": {"columnNames": self.columns}})

    def next_lines(self) -> bytes | None:
        """Return the NDJSON lines of the next batch of rows, or ``None`` after the last row.

        After the last row the transaction is committed. Raises
        :class:`ApiError` when SQLite fails midway.
        """
        cursor = self._cursor
        if cursor is None:
            return None
        try:
            self._deadline.start()
            batch = cursor.fetchmany(self._limits.stream_batch_rows)
            if not batch:
                self._commit()
                return None
        except sqlite3.Error as error:
            api_error = self._translate(error)
            self.close()
            raise api_error from error

        self.rows_read += len(batch)
        columns = None if self._rows_as_arrays else self.columns
        return row_lines(batch, columns, start=_ROW_START, separator=_ROW_SEPARATOR, end=_ROW_END)

    def closing_line(self) -> bytes:
        return _line({"metadata": {"rowsRead": self.rows_read, "rowsWritten": self.rows_written}})

    def _commit(self) -> None:
        connection = self._connection
        assert connection is not None and self._cursor is not None
        self._cursor.close()
        self._cursor = None
        self.rows_written = connection.total_changes - self._changes_before
        _unguard(connection)
        if self._shared_connection is not None:
            connection.execute(f"RELEASE {REQUEST_SAVEPOINT}")
            self._savepoint_open = False
        else:
            connection.execute("COMMIT")

    def _translate(self, error: sqlite3.Error) -> ApiError:
        return translate_error(
            error, tenant=self.tenant, authorizer=self._authorizer, deadline=self._deadline
        )

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._cursor is not None:
                self._cursor.close()
                self._cursor = None
            _unguard(connection)
            if self._shared_connection is not None:
                if self._savepoint_open:
                    self._savepoint_open = False
                    undo_request_savepoint(connection)
            elif connection.in_transaction:
                connection.rollback()
        finally:
            if self._shared_connection is None:
                self._tenant_connection.close()


def _unguard(connection: sqlite3.Connection) -> None:
    connection.set_authorizer(None)
    connection.set_progress_handler(None, 0)


SEND_PIECE_BYTES = 64 * 1024
"""The largest body of one ``send()`` of a stream, the unit that the stall timeout covers."""


def _pieces(message: Message) -> list[Message]:
    """Split a response body message into messages of at most :data:`SEND_PIECE_BYTES`."""
    body = message.get("body", b"")
    if message["type"] != "http.response.body" or len(body) <= SEND_PIECE_BYTES:
        return [message]
    more_body = message.get("more_body", False)
    starts = range(0, len(body), SEND_PIECE_BYTES)
    return [
        {
            "type": "http.response.body",
            "body": body[start : start + SEND_PIECE_BYTES],
            "more_body": more_body or start + SEND_PIECE_BYTES < len(body),
        }
        for start in starts
    ]


def _line(document: Any) -> bytes:
    return dumps(document) + b"\n"


class NDJSONResponse(StreamingResponse):
    """The streaming response of an opened :class:`StatementStream`.

    The response owns the stream: however the response ends (last row, error,
    or the client going away), the stream is closed and its connection given
    back, from a worker thread and shielded from cancellation.
    """

    media_type = NDJSON_MEDIA_TYPE

    def __init__(
        self,
        stream: StatementStream,
        first_line: bytes,
        headers: dict[str, str] | None = None,
        *,
        stall_timeout: float,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._stream = stream
        self._first_line = first_line
        self._stall_timeout = stall_timeout
        self._on_close = on_close
        super().__init__(self._lines(), headers=headers)

    async def _lines(self) -> AsyncIterator[bytes]:
        stream = self._stream
        yield self._first_line
        while True:
            try:
                lines = await run_in_threadpool(stream.next_lines)
            except ApiError as error:
                logger.info("tenant %s: stream stopped: %s", stream.tenant, error.message)
                yield _line({"error": error.message})
                return
            if lines is None:
                break
            yield lines
        yield stream.closing_line()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stall_timeout = self._stall_timeout

        async def send_in_time(message: Message) -> None:
            # A client that stops reading makes send() wait for buffer room.
            # A batch goes out in pieces, so a slow client that keeps reading
            # makes progress within the timeout on each piece.
            for piece in _pieces(message):
                with anyio.fail_after(stall_timeout):
                    await send(piece)

        try:
            await super().__call__(scope, receive, send_in_time)
        except TimeoutError:
            logger.warning(
                "tenant %s: stream closed and rolled back: the client read nothing for %g s",
                self._stream.tenant,
                stall_timeout,
            )
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await run_in_threadpool(self._stream.close)
                finally:
                    if self._on_close is not None:
                        await self._on_close()
