"""Running the SQL of one request on a tenant's connection, inside the sandbox.

Everything here blocks, so the endpoints call it in a worker thread. Each
request runs in one transaction on one connection from
:meth:`Dorm.raw_connection`: a single statement in ``BEGIN`` (deferred, so
concurrent readers do not wait for each other in WAL mode), a transaction array in
``BEGIN IMMEDIATE`` (it takes the write lock first, so read-then-write
statements wait for other writers instead of failing). Any failure, a
statement error, a limit or a client that goes away, rolls the whole
request back.

Inside an interactive transaction (:mod:`.transactions`), the request runs on
the transaction's connection in a savepoint instead, and a failure rolls back
to that savepoint only.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import exc as sa_exc

from ..connections import is_busy_error
from ..errors import (
    DormError,
    InvalidTenantName,
    MigrationError,
    TenantBusy,
    TenantNotFound,
)
from .errors import ApiError
from .protocol import Statement, join_json_arrays, rows_json, value_size
from .sandbox import PROGRESS_STEPS, Authorizer, Deadline, leading_keyword, single_statement
from .settings import ServerLimits

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ..registry import Dorm

__all__ = [
    "REQUEST_SAVEPOINT",
    "StatementResult",
    "TenantConnection",
    "run_statements",
    "run_statements_in_transaction",
    "translate_error",
    "undo_request_savepoint",
]

logger = logging.getLogger(__name__)

FETCH_ROWS = 256

REQUEST_SAVEPOINT = "_dorm_request"
"""The savepoint around each request of an interactive transaction; clients cannot touch it."""

SAVEPOINT_KEYWORDS = frozenset({"SAVEPOINT", "RELEASE", "ROLLBACK"})

# Extended result codes of SQLite constraint violations (sqlite3.h).
_CONFLICT_CODES = {
    1555: "PRIMARY KEY",
    2067: "UNIQUE",
    787: "FOREIGN KEY",
    2579: "ROWID",
}
_INVALID_VALUE_CODES = {
    275: "CHECK",
    1299: "NOT NULL",
    3091: "DATATYPE",
    1811: "trigger",
}
_SQLITE_ERROR = 1
_SQLITE_INTERRUPT = 9
_SQLITE_TOOBIG = 18
_SQLITE_CONSTRAINT = 19
_SQLITE_MISMATCH = 20
_SQLITE_AUTH = 23
_SQLITE_RANGE = 25


@dataclass
class StatementResult:
    """The columns, rows and counts of one statement, with the rows already encoded as JSON."""

    columns: list[str]
    rows_json: bytes
    """The JSON array of the rows, in the encoding of :mod:`.protocol`."""
    rows_read: int
    rows_written: int

    def to_json(self) -> dict[str, Any]:
        """Return the result in the StarbaseDB shape that Outerbase Studio reads."""
        return {
            "columns": self.columns,
            "rows": orjson.Fragment(self.rows_json),
            "meta": {"rows_read": self.rows_read, "rows_written": self.rows_written},
        }


class TenantConnection:
    """A connection of one tenant taken from :meth:`Dorm.raw_connection` and given back later.

    :meth:`open` and :meth:`close` may run in different worker threads, which
    a streaming response needs. Registry errors become :class:`ApiError`.
    """

    def __init__(self, dorm: Dorm, tenant: str) -> None:
        self.tenant = tenant
        self._dorm = dorm
        self._manager: AbstractContextManager[sqlite3.Connection] | None = None

    def open(self) -> sqlite3.Connection:
        manager = self._dorm.raw_connection(self.tenant)
        try:
            connection = manager.__enter__()
        except DormError as error:
            raise _registry_error(error, self.tenant) from error
        except (sqlite3.Error, sa_exc.DBAPIError) as error:
            # Opening a new connection sets pragmas, which fails on a damaged
            # file; the registry may report that as SQLAlchemy's DBAPIError.
            driver_error = error.orig if isinstance(error, sa_exc.DBAPIError) else error
            if not isinstance(driver_error, sqlite3.Error):
                raise
            raise translate_error(
                driver_error, tenant=self.tenant, authorizer=None, deadline=None
            ) from error
        self._manager = manager
        return connection

    def close(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.__exit__(None, None, None)


def _registry_error(error: DormError, tenant: str) -> ApiError:
    if isinstance(error, TenantNotFound):
        return ApiError(404, str(error), tenant=tenant)
    if isinstance(error, InvalidTenantName):
        return ApiError(400, str(error), tenant=tenant)
    if isinstance(error, TenantBusy):
        return ApiError(503, str(error), tenant=tenant, headers={"Retry-After": "1"})
    if isinstance(error, MigrationError):
        logger.error(
            "tenant %s: migration failed while opening it for a request: %s", tenant, error
        )
        return ApiError(
            500,
            f"tenant {tenant!r} could not be brought to the head revision: {error}",
            tenant=tenant,
        )
    logger.error("tenant %s: opening the database failed: %s", tenant, error)
    return ApiError(500, f"tenant {tenant!r} could not be opened: {error}", tenant=tenant)


# -- one request --------------------------------------------------------------------


def run_statements(
    dorm: Dorm,
    tenant: str,
    statements: Sequence[Statement],
    *,
    is_transaction: bool,
    read_only: bool,
    limits: ServerLimits,
) -> list[StatementResult]:
    """Run ``statements`` on ``tenant`` in one transaction and return their results.

    Raises :class:`ApiError` for any failure, after rolling back.
    """
    checked = [_checked_sql(statement, len(statements), is_transaction) for statement in statements]

    tenant_connection = TenantConnection(dorm, tenant)
    connection = tenant_connection.open()
    try:
        run = _Run(connection, tenant, read_only=read_only, limits=limits)
        begin = "BEGIN IMMEDIATE" if is_transaction and not read_only else "BEGIN"
        return run.execute_all(
            statements, checked, begin=begin, end="COMMIT", undo=_rollback_if_open
        )
    finally:
        tenant_connection.close()


def run_statements_in_transaction(
    connection: sqlite3.Connection,
    tenant: str,
    statements: Sequence[Statement],
    *,
    read_only: bool,
    limits: ServerLimits,
) -> list[StatementResult]:
    """Run ``statements`` inside the interactive transaction open on ``connection``.

    The request runs in the savepoint :data:`REQUEST_SAVEPOINT`, so a failure
    undoes the whole request and leaves the transaction open. A request of
    one SAVEPOINT, RELEASE or ROLLBACK TO statement runs without it, because
    releasing the request's savepoint would also release the client's.
    Raises :class:`ApiError` for any failure.
    """
    checked = [_checked_sql(statement, len(statements), len(statements) > 1) for statement in statements]
    run = _Run(connection, tenant, read_only=read_only, limits=limits, allow_savepoints=True)

    controls = [leading_keyword(sql) in SAVEPOINT_KEYWORDS for sql in checked]
    if any(controls):
        if len(statements) > 1:
            raise ApiError(
                400,
                "SAVEPOINT, RELEASE and ROLLBACK TO must be sent alone, one per request, "
                'not inside a "transaction" list',
                tenant=tenant,
            )
        return run.execute_all(statements, checked, begin=None, end=None, undo=_keep_open)

    return run.execute_all(
        statements,
        checked,
        begin=f"SAVEPOINT {REQUEST_SAVEPOINT}",
        end=f"RELEASE {REQUEST_SAVEPOINT}",
        undo=undo_request_savepoint,
    )


def undo_request_savepoint(connection: sqlite3.Connection) -> None:
    """Roll back to :data:`REQUEST_SAVEPOINT` and release it, keeping the transaction open.

    When SQLite has already rolled back the whole transaction (it does so
    after an interrupted write, or on a full disk), there is nothing to undo.
    """
    if not connection.in_transaction:
        return
    try:
        connection.execute(f"ROLLBACK TO {REQUEST_SAVEPOINT}")
        connection.execute(f"RELEASE {REQUEST_SAVEPOINT}")
    except sqlite3.Error as error:
        # Without the savepoint the request's writes cannot be told apart
        # from the earlier ones, so the whole transaction has to go.
        logger.warning("rolling back to the request savepoint failed (%s): rolling back the transaction", error)
        connection.rollback()


def _rollback_if_open(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.rollback()


def _keep_open(connection: sqlite3.Connection) -> None:
    pass


def _checked_sql(statement: Statement, count: int, is_transaction: bool) -> str:
    try:
        return single_statement(statement.sql)
    except ApiError as error:
        if is_transaction:
            raise ApiError(
                error.status,
                f"statement {statement.position} of {count} was rejected, so nothing ran: {error.message}",
            ) from error
        raise


class _Run:
    """The sandboxed execution of a request's statements on one connection."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        tenant: str,
        *,
        read_only: bool,
        limits: ServerLimits,
        allow_savepoints: bool = False,
    ) -> None:
        self.connection = connection
        self.tenant = tenant
        self.limits = limits
        self.authorizer = Authorizer(read_only=read_only, allow_savepoints=allow_savepoints)
        self.deadline = Deadline(limits.statement_timeout)
        self._rows = 0
        self._bytes = 0

    def execute_all(
        self,
        statements: Sequence[Statement],
        sqls: Sequence[str],
        *,
        begin: str | None,
        end: str | None,
        undo: Callable[[sqlite3.Connection], None],
    ) -> list[StatementResult]:
        """Run ``begin``, the statements and ``end``; call ``undo`` if anything fails."""
        connection = self.connection
        if begin is not None:
            self._execute_plain(begin)
        finished = False
        try:
            connection.set_authorizer(self.authorizer)
            connection.set_progress_handler(self.deadline, PROGRESS_STEPS)
            self.deadline.start()
            results = []
            for statement, sql in zip(statements, sqls, strict=True):
                results.append(self._execute(statement, sql, len(statements)))

            _unguard(connection)
            if end is not None:
                self._execute_plain(end)
            finished = True
            return results
        finally:
            _unguard(connection)
            if not finished:
                undo(connection)

    def _execute(self, statement: Statement, sql: str, count: int) -> StatementResult:
        connection = self.connection
        self.authorizer.denial = None
        changes_before = connection.total_changes
        try:
            cursor = connection.execute(sql, statement.params)
            try:
                columns = [column[0] for column in cursor.description or ()]
                rows_json, rows_read = self._fetch_all(cursor)
            finally:
                cursor.close()
        except sqlite3.Error as error:
            raise self._error(error, statement, count) from error
        return StatementResult(columns, rows_json, rows_read, connection.total_changes - changes_before)

    def _fetch_all(self, cursor: sqlite3.Cursor) -> tuple[bytes, int]:
        limits = self.limits
        batches: list[bytes] = []
        rows_read = 0
        while True:
            batch = cursor.fetchmany(FETCH_ROWS)
            if not batch:
                return join_json_arrays(batches), rows_read
            rows_read += len(batch)
            self._rows += len(batch)
            if self._rows > limits.max_result_rows:
                raise ApiError(
                    400,
                    f"the result has more than {limits.max_result_rows} rows, the limit of "
                    "/query/raw, so the request was rolled back: add a LIMIT (and page with "
                    "OFFSET or a WHERE on the key), or read it with /query/stream",
                    tenant=self.tenant,
                )
            for row in batch:
                self._bytes += sum(value_size(value) for value in row)
            if self._bytes > limits.max_result_bytes:
                raise ApiError(
                    400,
                    f"the result is larger than {limits.max_result_bytes} bytes, the limit of "
                    "/query/raw, so the request was rolled back: select fewer rows or "
                    "columns, or read it with /query/stream",
                    tenant=self.tenant,
                )
            batches.append(rows_json(batch))

    def _execute_plain(self, sql: str) -> None:
        # BEGIN and COMMIT are the server's own statements: they run with no
        # authorizer, and a failing COMMIT (a deferred foreign key) is the
        # failure of the whole request.
        try:
            self.connection.execute(sql)
        except sqlite3.Error as error:
            raise translate_error(
                error, tenant=self.tenant, authorizer=None, deadline=self.deadline
            ) from error

    def _error(self, error: sqlite3.Error, statement: Statement, count: int) -> ApiError:
        api_error = translate_error(
            error, tenant=self.tenant, authorizer=self.authorizer, deadline=self.deadline
        )
        if statement.position is None:
            return api_error
        return ApiError(
            api_error.status,
            f"statement {statement.position} of {count} failed, so the transaction was "
            f"rolled back: {api_error.message}",
            tenant=self.tenant,
            headers=api_error.headers,
        )


def _unguard(connection: sqlite3.Connection) -> None:
    connection.set_authorizer(None)
    connection.set_progress_handler(None, 0)


# -- errors ---------------------------------------------------------------------------


def translate_error(
    error: sqlite3.Error,
    *,
    tenant: str,
    authorizer: Authorizer | None,
    deadline: Deadline | None,
) -> ApiError:
    """Turn a ``sqlite3`` error into the :class:`ApiError` the client receives.

    The decision uses SQLite's result code, the authorizer's recorded denial
    and the deadline's state, never the text of the message. Errors that are
    not the client's doing become 500 and are logged with the tenant.
    """
    if authorizer is not None and authorizer.denial is not None:
        return ApiError(403, authorizer.denial, tenant=tenant)
    if deadline is not None and deadline.expired:
        return ApiError(
            408,
            f"the SQL ran longer than the limit of {deadline.seconds:g} s and was stopped, "
            "so the request was rolled back: add an index or a LIMIT, or read long "
            "results with /query/stream",
            tenant=tenant,
        )
    if is_busy_error(error):
        return ApiError(
            503,
            f"tenant {tenant!r} is locked by another writer and the lock was not released "
            "within the busy timeout: retry the request",
            tenant=tenant,
            headers={"Retry-After": "1"},
        )

    code: int | None = getattr(error, "sqlite_errorcode", None)
    if str(error).startswith("Could not decode to UTF-8"):
        # Python's sqlite3 reads TEXT as UTF-8 and refuses other bytes.
        return ApiError(
            422,
            f"{error}: the value is TEXT that is not valid UTF-8; read it as a BLOB "
            "with CAST(column AS BLOB) or hex(column)",
            tenant=tenant,
        )
    if code is None:
        # sqlite3's own checks (parameter binding, statement text) have no SQLite code.
        if isinstance(error, (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)):
            return ApiError(400, f"invalid statement or parameters: {error}", tenant=tenant)
        return _server_fault(error, tenant)

    primary = code & 0xFF
    if primary == _SQLITE_CONSTRAINT:
        return _constraint_error(error, code, tenant)
    if primary in (_SQLITE_ERROR, _SQLITE_RANGE, _SQLITE_TOOBIG):
        return ApiError(400, f"SQL error: {error}", tenant=tenant)
    if primary == _SQLITE_MISMATCH:
        return ApiError(422, f"invalid value: {error}", tenant=tenant)
    if primary == _SQLITE_AUTH:
        return ApiError(403, f"not allowed: {error}", tenant=tenant)
    if primary == _SQLITE_INTERRUPT:
        return ApiError(
            503, "the statement was interrupted on the server: retry the request", tenant=tenant
        )
    return _server_fault(error, tenant)


def _constraint_error(error: sqlite3.Error, code: int, tenant: str) -> ApiError:
    if code in _INVALID_VALUE_CODES:
        return ApiError(
            422,
            f"{error}: the {_INVALID_VALUE_CODES[code]} constraint rejects the value; "
            "change the value and send the request again",
            tenant=tenant,
        )
    kind = _CONFLICT_CODES.get(code, "a")
    return ApiError(
        409,
        f"{error}: the write conflicts with existing rows ({kind} constraint); "
        "change the key or update the existing row",
        tenant=tenant,
    )


def _server_fault(error: sqlite3.Error, tenant: str) -> ApiError:
    logger.error(
        "tenant %s: SQLite failed on the server side: %s (%s)",
        tenant,
        error,
        getattr(error, "sqlite_errorname", type(error).__name__),
    )
    return ApiError(500, f"the database of tenant {tenant!r} failed: {error}", tenant=tenant)
