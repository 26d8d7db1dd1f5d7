"""Short reads of ``/query/raw`` run on the event loop, without a worker thread.

Handing a request to a worker thread and back costs more than a point query
on SQLite. A bare Starlette endpoint on ``sqlite3`` served about 4,700
requests/s through the thread pool and 10,600 with the query on the event
loop, measured with ``wrk -t2 -c16`` on uvicorn with httptools and uvloop,
on 2 CPUs shared with ``wrk``. So a request of one statement outside an
interactive transaction is first tried on the event loop, within bounds that
keep the loop responsive:

* the tenant is a file, which the registry keeps in WAL mode, where a read
  does not wait for a writer's lock. The tenant is open with an idle
  connection, so the checkout does no I/O;
* the authorizer is read-only, so a write is denied before it changes
  anything. The statement runs in autocommit, which for one read is the same
  as the worker path's ``BEGIN`` and ``COMMIT``;
* only functions from :data:`INLINE_FUNCTIONS` may be called, the progress
  handler stops the statement after :data:`INLINE_SECONDS`, and no string or
  BLOB may be longer than :data:`INLINE_MAX_LENGTH` bytes, so no single step
  of the virtual machine runs long;
* the result has at most :data:`INLINE_MAX_ROWS` rows.

When a bound is hit, or the statement fails in any way, the attempt is undone
and :func:`run_inline` returns ``None``: the request then runs in a worker
thread with the server's normal limits, which also produce any error response.
A read that is stopped this way runs twice, which is safe because it wrote
nothing.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..storage import FileStorage
from .execution import StatementResult
from .protocol import Statement, rows_json, value_size
from .sandbox import (
    TRANSACTION_SCOPED_PRAGMAS,
    Authorizer,
    Deadline,
    single_statement,
)
from .settings import ServerLimits

if TYPE_CHECKING:
    from ..naming import TenantName
    from ..registry import Dorm

__all__ = ["INLINE_MAX_LENGTH", "INLINE_MAX_ROWS", "INLINE_SECONDS", "run_inline"]

INLINE_SECONDS = 0.002
"""Time a statement may run on the event loop before it moves to a worker thread."""

INLINE_MAX_ROWS = 256
"""Rows a result on the event loop may have. Larger results are read in a worker thread."""

INLINE_MAX_LENGTH = 64 * 1024
"""Bytes of the longest string or BLOB a statement on the event loop may read or build."""


def run_inline(
    dorm: Dorm, tenant: TenantName, statement: Statement, limits: ServerLimits
) -> StatementResult | None:
    """Run one read-only statement on the calling thread, or return ``None`` to run it in a worker.

    Raises :class:`ApiError` only for a request that no path can run (several
    statements in ``sql``, VACUUM), exactly as the worker-thread path would.
    """
    sql = single_statement(statement.sql)
    # The registry puts every tenant file in WAL mode and checks it.
    if not isinstance(dorm.storage, FileStorage):
        return None

    with dorm.idle_raw_connection(tenant, authorizer=_READ_AUTHORIZER) as connection:
        if connection is None:
            return None
        return _run(connection, sql, statement, limits)


def _run(
    connection: sqlite3.Connection, sql: str, statement: Statement, limits: ServerLimits
) -> StatementResult | None:
    max_rows = min(INLINE_MAX_ROWS, limits.max_result_rows)
    deadline = Deadline(INLINE_SECONDS)

    length_limit = connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, INLINE_MAX_LENGTH)
    try:
        connection.set_progress_handler(deadline, INLINE_PROGRESS_STEPS)
        deadline.start()
        cursor = connection.execute(sql, statement.params)
        try:
            columns = [column[0] for column in cursor.description or ()]
            rows = cursor.fetchmany(max_rows + 1)
        finally:
            cursor.close()
    except sqlite3.Error:
        return None
    finally:
        connection.set_progress_handler(None, 0)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length_limit)

    if len(rows) > max_rows or _result_size(rows) > limits.max_result_bytes:
        return None
    return StatementResult(columns, rows_json(rows), len(rows), 0)


class _ReadAuthorizer(Authorizer):
    """The read-only authorizer, which also denies setting a transaction-scoped pragma.

    Without a transaction around the statement, SQLite would keep such a
    setting on the pooled connection until its next COMMIT or ROLLBACK.
    """

    def __init__(self) -> None:
        super().__init__(read_only=True)

    def check(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        database: str | None,
        trigger: str | None,
    ) -> str | None:
        if (
            action == sqlite3.SQLITE_PRAGMA
            and arg2 is not None
            and (arg1 or "").lower() in TRANSACTION_SCOPED_PRAGMAS
        ):
            return "a transaction-scoped pragma is set in a worker thread"
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in INLINE_FUNCTIONS:
            return "this function runs in a worker thread"
        return super().check(action, arg1, arg2, database, trigger)


INLINE_FUNCTIONS = frozenset(
    {
        "abs", "avg", "changes", "coalesce", "count", "date", "datetime", "group_concat",
        "hex", "ifnull", "iif", "json", "json_array", "json_array_length", "json_extract",
        "json_group_array", "json_group_object", "json_object", "json_type", "json_valid",
        "julianday", "last_insert_rowid", "length", "likelihood", "likely", "lower", "max",
        "min", "nullif", "octet_length", "quote", "random", "round", "sign", "sqlite_version",
        "strftime", "string_agg", "substr", "substring", "sum", "time", "total",
        "total_changes", "typeof", "unicode", "unixepoch", "unlikely", "upper", "zeroblob",
    }
)
"""Functions a statement on the event loop may call: each takes time in
proportion to its arguments, which the length limit bounds. Any other runs in
a worker thread. Some loop inside one step of SQLite's virtual machine, where
no progress handler can stop them. printf('%.*c', N, 'x') loops N times;
instr, replace, trim with a set of characters, LIKE and GLOB can take the
product of their arguments' lengths."""

INLINE_PROGRESS_STEPS = 100
"""Virtual machine instructions between two checks of the deadline on the event
loop, fewer than in a worker thread, so a query that calls a function a few
times per row still meets its deadline within a few calls."""


_READ_AUTHORIZER = _ReadAuthorizer()
"""One instance for every request: the connections that run reads on the event
loop keep it installed, so their prepared statements stay cached. Its
``denial`` is never read: a denied statement reruns in a worker thread, which
reports the reason."""


def _result_size(rows: list[Any]) -> int:
    return sum(value_size(value) for row in rows for value in row)
