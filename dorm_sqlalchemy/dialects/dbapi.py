"""A DB-API 2.0 (PEP 249) driver for the HTTP API of ``dorm serve``, built on httpx.

>>> from dorm_sqlalchemy.dialects import dbapi
>>> connection = dbapi.connect("http://127.0.0.1:8787/acme/api/db", secret="s3cret")  # doctest: +SKIP
>>> cursor = connection.cursor()                                                      # doctest: +SKIP
>>> cursor.execute("SELECT id, name FROM users WHERE id = ?", (7,)).fetchall()        # doctest: +SKIP
[(7, 'Ada')]

Every statement is one ``POST {url}/query/raw`` request. Unless the
connection is in autocommit mode, the first statement begins an interactive
transaction on the server (``POST {url}/transaction``) and every request
carries its id in the ``X-Dorm-Transaction`` header until :meth:`Connection.commit`
or :meth:`Connection.rollback`. SAVEPOINT, RELEASE and ROLLBACK TO work inside
it; BEGIN, COMMIT and ROLLBACK as SQL raise :class:`NotSupportedError`. A
server that returns 404 or 405 for the begin request has no interactive
transactions: the connection then runs in autocommit mode, and ``rollback()``
warns with :class:`RollbackIgnoredWarning` when writes ran.

``executemany()`` sends all its rows as one ``transaction`` array, which the
server runs atomically. A cursor from ``connection.cursor(server_side=True)``
reads its rows from ``POST {url}/query/stream`` as they arrive, in bounded memory.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import (
    AuthenticationError,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NetworkError,
    NotSupportedError,
    OperationalError,
    PermissionDeniedError,
    ProgrammingError,
    RollbackIgnoredWarning,
    TransactionExpiredError,
    Warning,
    error_for_status,
)
from .wire import (
    DML_KEYWORDS,
    TRANSACTION_KEYWORDS,
    WRITE_KEYWORDS,
    decode_row,
    encode_parameters,
    leading_keyword,
)

__all__ = [
    "AuthenticationError",
    "BINARY",
    "Binary",
    "Connection",
    "Cursor",
    "DATETIME",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NUMBER",
    "NetworkError",
    "NotSupportedError",
    "OperationalError",
    "PermissionDeniedError",
    "ProgrammingError",
    "ROWID",
    "RollbackIgnoredWarning",
    "STRING",
    "StreamingCursor",
    "TRANSACTION_HEADER",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "TransactionExpiredError",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "sqlite_version_info",
    "threadsafety",
]

logger = logging.getLogger(__name__)

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

sqlite_version_info: tuple[int, int, int] = (3, 35, 0)
"""The SQLite version the dialect assumes before it queries the server.

SQLAlchemy's SQLite dialect reads this when it is built; the ``dorm+http``
dialect then runs ``SELECT sqlite_version()`` on its first connection.
"""

DEFAULT_TIMEOUT = 30.0

# -- type objects and constructors (PEP 249) ---------------------------------------
# SQLite has no date or time storage class: SQLAlchemy's SQLite types store
# them as ISO 8601 text, so these constructors are only for completeness.

Binary = bytes
Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 - the name PEP 249 requires
    return datetime.date.fromtimestamp(ticks)


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802
    return datetime.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802
    return datetime.datetime.fromtimestamp(ticks)


class _TypeObject:
    """PEP 249 type object. The driver reports no column types, so no column type equals one."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<dbapi type {self.name}>"


STRING = _TypeObject("STRING")
BINARY = _TypeObject("BINARY")
NUMBER = _TypeObject("NUMBER")
DATETIME = _TypeObject("DATETIME")
ROWID = _TypeObject("ROWID")

# Runs after a DML statement in the same request, on the same server
# connection and transaction, so it reports that statement's own counts.
# changes() leaves out rows written by triggers, as sqlite3's rowcount does;
# the server's rows_written counts them (mirroring adds triggers).
_COUNTS_SQL = "SELECT changes(), last_insert_rowid()"


def connect(
    url: str,
    *,
    secret: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    verify: bool | str = True,
    autocommit: bool = False,
    transaction_idle_timeout: float | None = None,
    transaction_mode: str = "immediate",
) -> Connection:
    """Open a connection to the SQL API of one tenant.

    :param url: the tenant's API root, ``http://host:port/TENANT/api/db``.
    :param secret: the bearer token; ``None`` for a server without authentication.
    :param timeout: seconds to wait for the server on each network operation.
    :param headers: more HTTP headers to send with every request.
    :param verify: TLS certificate verification, as httpx takes it: ``True``,
        ``False`` or the path of a CA bundle.
    :param autocommit: commit each statement on its own instead of opening a
        server transaction at the first statement.
    :param transaction_idle_timeout: seconds the server keeps an idle
        transaction before rolling it back (the server's default is 30, its maximum 300).
    :param transaction_mode: ``"immediate"`` (take the tenant's write lock at
        the first statement) or ``"deferred"`` (at the first write).
    """
    return Connection(
        url,
        secret=secret,
        timeout=timeout,
        headers=headers,
        verify=verify,
        autocommit=autocommit,
        transaction_idle_timeout=transaction_idle_timeout,
        transaction_mode=transaction_mode,
    )


class Connection:
    """DB-API connection to one tenant, with its own ``httpx.Client``.

    Unless :attr:`autocommit` is true, the first statement after a commit or
    rollback begins an interactive transaction on the server, and later
    statements run in it until :meth:`commit` or :meth:`rollback`. Against a
    server without interactive transactions (``POST /transaction`` returns 404
    or 405), the connection falls back to autocommit and
    :attr:`transactions_supported` becomes false.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        autocommit: bool = False,
        transaction_idle_timeout: float | None = None,
        transaction_mode: str = "immediate",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InterfaceError(
                f"invalid API URL {url!r}: use http://host:port/TENANT/api/db "
                "or https://host/TENANT/api/db"
            )
        self.url = url.rstrip("/")
        self.tenant = parts.path.strip("/").split("/", 1)[0] or None
        request_headers = dict(headers or {})
        if secret:
            request_headers["Authorization"] = f"Bearer {secret}"
        self._client: httpx.Client | None = httpx.Client(
            headers=request_headers, timeout=timeout, verify=verify
        )
        self._writes_since_commit = 0
        self._streams: set[StreamingCursor] = set()
        self._autocommit = autocommit
        self._transaction_id: str | None = None
        self._begin_body: dict[str, Any] = {"mode": transaction_mode}
        if transaction_idle_timeout is not None:
            self._begin_body["idle_timeout"] = transaction_idle_timeout
        self.transactions_supported: bool | None = None
        """Whether the server has interactive transactions; ``None`` until the first begin."""

    # -- DB-API surface ------------------------------------------------------

    def cursor(self, server_side: bool = False) -> Cursor:
        """Return a cursor; ``server_side=True`` streams rows from ``/query/stream``."""
        self._check_open()
        if server_side:
            return StreamingCursor(self)
        return Cursor(self)

    @property
    def autocommit(self) -> bool:
        """Whether each statement commits on its own; settable between transactions."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if value and self._transaction_id is not None:
            raise ProgrammingError(
                "cannot switch to autocommit while a transaction is open: call commit() "
                "or rollback() first",
                tenant=self.tenant,
            )
        self._autocommit = bool(value)

    @property
    def in_transaction(self) -> bool:
        """Whether a server transaction is open on this connection."""
        return self._transaction_id is not None

    def commit(self) -> None:
        """Commit the server transaction, if one is open."""
        self._check_open()
        self._writes_since_commit = 0
        transaction_id, self._transaction_id = self._transaction_id, None
        if transaction_id is None:
            return
        self._buffer_streams()
        self._end_transaction(transaction_id, "commit")

    def rollback(self) -> None:
        """Roll back the server transaction, if one is open.

        Without server transactions (autocommit, or a server that has none),
        there is nothing to roll back; against a server without transactions
        it warns with :class:`RollbackIgnoredWarning` when writes ran since the
        last commit.
        """
        self._check_open()
        writes, self._writes_since_commit = self._writes_since_commit, 0
        transaction_id, self._transaction_id = self._transaction_id, None
        if transaction_id is not None:
            self._buffer_streams()
            self._end_transaction(transaction_id, "rollback")
            return
        if writes == 0 or self.transactions_supported is not False:
            return
        message = (
            f"rollback() cannot undo {writes} write statement(s) sent to tenant "
            f"{self.tenant!r} since the last commit: the server at {self.url} has no "
            "interactive transactions, so it committed each one when it ran. Put writes "
            "that must succeed or fail together into one executemany() call"
        )
        logger.warning("%s", message)
        warnings.warn(message, RollbackIgnoredWarning, stacklevel=2)

    def close(self) -> None:
        """Roll back an open transaction, close open streams and the HTTP client.

        Closing twice is allowed. When the rollback request fails, the server
        rolls the transaction back after its idle timeout.
        """
        if self._client is None:
            return
        for stream in list(self._streams):
            stream.close()
        transaction_id, self._transaction_id = self._transaction_id, None
        if transaction_id is not None:
            try:
                self._end_transaction(transaction_id, "rollback")
            except Error as error:
                logger.warning(
                    "tenant %s: rolling back the open transaction on close failed: %s",
                    self.tenant,
                    error,
                )
        client, self._client = self._client, None
        client.close()

    @property
    def closed(self) -> bool:
        return self._client is None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------

    def _check_open(self) -> httpx.Client:
        if self._client is None:
            raise ProgrammingError(
                f"the connection to {self.url} is closed: open a new one with connect()"
            )
        return self._client

    def _note_writes(self, count: int) -> None:
        self._writes_since_commit += count

    def _prepare_request(self) -> dict[str, str]:
        """Begin a server transaction if one is due, and return the headers of the next request."""
        self._check_open()
        if self._transaction_id is not None:
            # The server runs one request of a transaction at a time, and an
            # open stream keeps its transaction busy until its last row.
            self._buffer_streams()
        elif not self._autocommit and self.transactions_supported is not False:
            self._begin_transaction()
        if self._transaction_id is None:
            return _JSON_HEADERS
        return {**_JSON_HEADERS, TRANSACTION_HEADER: self._transaction_id}

    def _begin_transaction(self) -> None:
        client = self._check_open()
        url = f"{self.url}/transaction"
        try:
            response = client.post(url, content=_dump(self._begin_body), headers=_JSON_HEADERS)
        except httpx.TransportError as error:
            raise self._network_error(error, url) from error

        if response.status_code == 404 and _names_missing_tenant(response):
            # The server has transactions, but not this tenant yet.
            raise self._error_from_response(404, self._read_json(response, url), url)
        if response.status_code in (404, 405) and self.transactions_supported is None:
            self.transactions_supported = False
            logger.warning(
                "the server at %s has no interactive transactions (HTTP %d from POST "
                "/transaction): every statement commits on its own, and rollback() "
                "cannot undo writes",
                self.url,
                response.status_code,
            )
            return
        document = self._read_json(response, url)
        if response.status_code != 201:
            raise self._error_from_response(response.status_code, document, url)
        self.transactions_supported = True
        self._transaction_id = str(document["id"])
        logger.debug("tenant %s: server transaction began", self.tenant)

    def _end_transaction(self, transaction_id: str, action: str) -> None:
        client = self._check_open()
        url = f"{self.url}/transaction/{transaction_id}/{action}"
        try:
            response = client.post(url)
        except httpx.TransportError as error:
            raise self._network_error(error, url) from error
        if response.status_code == 200:
            return
        if action == "rollback" and response.status_code == 410:
            # The server already rolled it back (idle timeout or restart).
            logger.debug("tenant %s: the transaction had already been rolled back", self.tenant)
            return
        raise self._error_from_response(response.status_code, self._read_json(response, url), url)

    def _buffer_streams(self) -> None:
        for stream in list(self._streams):
            stream._buffer_rest()

    def _post_raw(self, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``/query/raw`` and return the ``result`` of the response."""
        headers = self._prepare_request()
        client = self._check_open()
        url = f"{self.url}/query/raw"
        started = time.perf_counter()
        try:
            response = client.post(url, content=_dump(body), headers=headers)
        except httpx.TransportError as error:
            raise self._network_error(error, url) from error
        logger.debug(
            "POST %s: HTTP %d in %.1f ms",
            url,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )

        document = self._read_json(response, url)
        if response.status_code != 200:
            raise self._error_from_response(response.status_code, document, url)
        if not isinstance(document, dict) or "result" not in document:
            raise InterfaceError(
                f"the response from {url} has no 'result': check that the URL points at a dorm serve SQL API",
                tenant=self.tenant,
            )
        return document["result"]

    def _open_stream(self, body: dict[str, Any]) -> tuple[httpx.Response, str]:
        """POST ``body`` to ``/query/stream`` and return the open response, checked for errors."""
        headers = self._prepare_request()
        client = self._check_open()
        url = f"{self.url}/query/stream"
        request = client.build_request(
            "POST", url, params={"rows": "array"}, content=_dump(body), headers=headers
        )
        try:
            response = client.send(request, stream=True)
        except httpx.TransportError as error:
            raise self._network_error(error, url) from error

        if response.status_code != 200:
            try:
                response.read()
            except httpx.TransportError as error:
                raise self._network_error(error, url) from error
            finally:
                response.close()
            raise self._error_from_response(response.status_code, self._read_json(response, url), url)
        return response, url

    def _read_json(self, response: httpx.Response, url: str) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as error:
            raise InterfaceError(
                f"the response from {url} (HTTP {response.status_code}) is not JSON: check "
                "that the URL points at the SQL API of a dorm serve server",
                tenant=self.tenant,
                status=response.status_code,
            ) from error

    def _error_from_response(self, status: int, document: Any, url: str) -> Error:
        if status == 410:
            self._transaction_id = None
        message = document.get("error") if isinstance(document, dict) else None
        if not isinstance(message, str):
            message = f"the server returned an unexpected error body: {str(document)[:200]}"
        return error_for_status(status, message, url=url, tenant=self.tenant)

    def _network_error(self, error: httpx.TransportError, url: str) -> NetworkError:
        return NetworkError(
            f"the request to {url} failed: {type(error).__name__}: {error}. Check that the "
            "server is running and reachable; a statement in flight may or may not have run",
            tenant=self.tenant,
        )


_JSON_HEADERS = {"Content-Type": "application/json"}

TRANSACTION_HEADER = "X-Dorm-Transaction"


def _dump(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8")


class Cursor:
    """A DB-API cursor whose statements each go out as one ``/query/raw`` request.

    The whole result arrives in the response (the server caps it at
    ``max_result_rows``, 10,000 by default); rows are converted to Python
    values as they are fetched.
    """

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []
        self._position = 0
        self._closed = False

    # -- executing -----------------------------------------------------------

    def execute(
        self, operation: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Cursor:
        """Run one statement on the server and keep its result on the cursor."""
        self._check_open()
        keyword = _checked_keyword(operation, self.connection)
        statement = {"sql": operation, "params": encode_parameters(parameters)}
        self._reset()

        if keyword in DML_KEYWORDS:
            results = self.connection._post_raw(
                {"transaction": [statement, {"sql": _COUNTS_SQL}]}
            )
            self._take_result(results[0])
            changes, last_rowid = results[1]["rows"][0]
            self._take_counts(keyword, changes, last_rowid)
        else:
            result = self.connection._post_raw(statement)
            self._take_result(result)
            rows_written = result["meta"]["rows_written"]
            if keyword == "WITH" and rows_written > 0:
                self.rowcount = rows_written

        if keyword in WRITE_KEYWORDS or self.rowcount > 0:
            self.connection._note_writes(1)
        return self

    def executemany(
        self, operation: str, seq_of_parameters: Sequence[Sequence[Any] | Mapping[str, Any]]
    ) -> Cursor:
        """Run one DML statement once per parameter set, all in one atomic request."""
        self._check_open()
        keyword = _checked_keyword(operation, self.connection)
        if keyword not in DML_KEYWORDS:
            raise ProgrammingError(
                f"executemany() runs INSERT, UPDATE, DELETE or REPLACE, got {keyword or operation!r}: "
                "use execute() for other statements"
            )
        self._reset()

        statements = []
        for parameters in seq_of_parameters:
            statements.append({"sql": operation, "params": encode_parameters(parameters)})
            statements.append({"sql": _COUNTS_SQL})
        if not statements:
            self.rowcount = 0
            return self

        results = self.connection._post_raw({"transaction": statements})
        self.rowcount = 0
        for counts in results[1::2]:
            changes, last_rowid = counts["rows"][0]
            self.rowcount += changes
            if keyword in ("INSERT", "REPLACE") and changes > 0:
                self.lastrowid = last_rowid
        self.connection._note_writes(len(statements) // 2)
        return self

    def _take_result(self, result: Mapping[str, Any]) -> None:
        self.description = _description(result["columns"])
        self._rows = result["rows"]

    def _take_counts(self, keyword: str, changes: int, last_rowid: int) -> None:
        self.rowcount = changes
        if keyword in ("INSERT", "REPLACE") and changes > 0:
            self.lastrowid = last_rowid

    def _reset(self) -> None:
        self.description = None
        self.rowcount = -1
        self._rows = []
        self._position = 0

    # -- fetching ------------------------------------------------------------

    def fetchone(self) -> tuple[Any, ...] | None:
        self._check_open()
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return decode_row(row)

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        self._check_open()
        count = self.arraysize if size is None else size
        end = min(self._position + count, len(self._rows))
        rows = [decode_row(row) for row in self._rows[self._position : end]]
        self._position = end
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        self._check_open()
        rows = [decode_row(row) for row in self._rows[self._position :]]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    # -- the rest of PEP 249 -------------------------------------------------

    def setinputsizes(self, sizes: Any) -> None:
        """Do nothing, as PEP 249 allows."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """Do nothing, as PEP 249 allows."""

    def close(self) -> None:
        self._closed = True
        self._rows = []

    def _check_open(self) -> None:
        if self._closed:
            raise ProgrammingError("the cursor is closed: open a new one with connection.cursor()")
        self.connection._check_open()


class StreamingCursor(Cursor):
    """A cursor that reads one statement's rows from ``/query/stream`` while they arrive.

    Memory stays bounded by the rows the caller keeps plus one network chunk,
    whatever the size of the result. The server's transaction stays open
    until the last row is read; closing the cursor early ends the stream, and
    the server rolls the statement back. ``executemany()`` goes through
    ``/query/raw`` like on a plain cursor.
    """

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._url = ""
        self._keyword = ""

    def execute(
        self, operation: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Cursor:
        """Start the statement on the server and read its column names."""
        self._check_open()
        self._keyword = _checked_keyword(operation, self.connection)
        body = {"sql": operation, "params": encode_parameters(parameters)}
        self._end_stream()
        self._reset()

        response, self._url = self.connection._open_stream(body)
        self._response = response
        self._lines = response.iter_lines()
        self.connection._streams.add(self)

        first = self._next_document()
        metadata = first.get("metadata") if first is not None else None
        if not isinstance(metadata, dict) or "columnNames" not in metadata:
            self._end_stream()
            raise InterfaceError(
                f"the stream from {self._url} did not start with its column names",
                tenant=self.connection.tenant,
            )
        self.description = _description(metadata["columnNames"])
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        self._check_open()
        while self._lines is not None:
            document = self._next_document()
            if document is None:
                self._end_stream()
                raise NetworkError(
                    f"the stream from {self._url} ended before its closing line, so the "
                    "result is incomplete: run the statement again",
                    tenant=self.connection.tenant,
                )
            if "row" in document:
                return self._row(document["row"])
            if "error" in document:
                self._end_stream()
                raise OperationalError(
                    f"{document['error']} (in the stream from {self._url})",
                    tenant=self.connection.tenant,
                )
            metadata = document.get("metadata")
            if isinstance(metadata, dict) and "rowsRead" in metadata:
                self._finish(metadata)
        return None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        count = self.arraysize if size is None else size
        rows = []
        while len(rows) < count and (row := self.fetchone()) is not None:
            rows.append(row)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(iter(self.fetchone, None))

    def close(self) -> None:
        self._end_stream()
        super().close()

    def _row(self, values: Any) -> tuple[Any, ...]:
        if isinstance(values, dict):
            # A server that ignores ?rows=array sends objects; duplicate column
            # names have already lost all but the last value then.
            values = [values.get(column[0]) for column in self.description or ()]
        return decode_row(values)

    def _finish(self, metadata: Mapping[str, Any]) -> None:
        rows_written = metadata.get("rowsWritten", 0)
        if self._keyword in DML_KEYWORDS or (self._keyword == "WITH" and rows_written > 0):
            # NOTE: rowsWritten counts rows written by triggers too, unlike
            # changes(); the stream has no way to ask for changes().
            self.rowcount = rows_written
        if self._keyword in WRITE_KEYWORDS or rows_written > 0:
            self.connection._note_writes(1)
        self._end_stream()

    def _next_document(self) -> dict[str, Any] | None:
        assert self._lines is not None
        try:
            for line in self._lines:
                if line.strip():
                    document = json.loads(line)
                    if isinstance(document, dict):
                        return document
                    raise InterfaceError(
                        f"the stream from {self._url} sent a line that is not a JSON object",
                        tenant=self.connection.tenant,
                    )
        except httpx.TransportError as error:
            self._end_stream()
            raise self.connection._network_error(error, self._url) from error
        except ValueError as error:
            self._end_stream()
            raise InterfaceError(
                f"the stream from {self._url} sent a line that is not JSON: {error}",
                tenant=self.connection.tenant,
            ) from error
        return None

    def _buffer_rest(self) -> None:
        """Read the rest of the stream into memory and end the response.

        Inside a transaction the server serves the next request only after
        this stream's last row, so a stream still open then is read to its end.
        """
        response = self._response
        if response is None or self._lines is None:
            return
        try:
            rest = list(self._lines)
        except httpx.TransportError as error:
            self._end_stream()
            raise self.connection._network_error(error, self._url) from error
        self._response = None
        self.connection._streams.discard(self)
        response.close()
        self._lines = iter(rest)

    def _end_stream(self) -> None:
        response, self._response = self._response, None
        self._lines = None
        self.connection._streams.discard(self)
        if response is not None:
            response.close()


def _checked_keyword(operation: str, connection: Connection) -> str:
    """Return the statement's leading keyword, or raise for transaction control."""
    if not isinstance(operation, str):
        raise ProgrammingError(f"the operation must be a str of SQL, got {type(operation).__name__}")
    keyword = leading_keyword(operation)
    if keyword in TRANSACTION_KEYWORDS and _is_savepoint_statement(operation, keyword):
        if not connection.autocommit and connection.transactions_supported is not False:
            return keyword
    if keyword in TRANSACTION_KEYWORDS and connection.transactions_supported is not False:
        raise NotSupportedError(
            f"{keyword} as SQL is not supported by the dorm+http driver: the driver begins "
            "server transactions itself, so end them with connection.commit() or "
            "rollback(). SAVEPOINT, RELEASE and ROLLBACK TO work outside autocommit mode; "
            "in autocommit mode, send writes that must be atomic in one executemany() call",
            tenant=connection.tenant,
        )
    if keyword in TRANSACTION_KEYWORDS:
        raise NotSupportedError(
            f"{keyword} is not supported by the dorm+http driver against this server: it runs each "
            "request in its own transaction and commits it, so there is no transaction "
            "across requests (no BEGIN, COMMIT, ROLLBACK or SAVEPOINT). Send statements "
            "that must be atomic in one executemany() call",
            tenant=connection.tenant,
        )
    return keyword


_ROLLBACK_TO = re.compile(r"\bROLLBACK\s+(?:TRANSACTION\s+)?TO\b", re.IGNORECASE)


def _is_savepoint_statement(operation: str, keyword: str) -> bool:
    if keyword in ("SAVEPOINT", "RELEASE"):
        return True
    return keyword == "ROLLBACK" and _ROLLBACK_TO.search(operation) is not None


def _description(columns: Sequence[str]) -> tuple[tuple[Any, ...], ...] | None:
    if not columns:
        return None
    return tuple((name, None, None, None, None, None, None) for name in columns)


def _names_missing_tenant(response: httpx.Response) -> bool:
    """Tell whether a 404 is a dorm server's error for a tenant that does not exist."""
    try:
        document = response.json()
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    error = document.get("error")
    return isinstance(error, str) and error.startswith("tenant ") and "does not exist" in error
