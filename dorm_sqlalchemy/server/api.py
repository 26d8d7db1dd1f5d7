"""The SQL endpoints under ``/{tenant}/api/db``: ``POST /query/raw``, ``POST /query/stream``
and the interactive transaction endpoints ``POST /transaction``, ``/transaction/{id}/commit``
and ``/transaction/{id}/rollback``."""

from __future__ import annotations

import sqlite3
from functools import partial
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidTenantName
from ..naming import TenantName, canonical_tenant
from .auth import token_scope_of
from .errors import ApiError
from .execution import StatementResult, run_statements, run_statements_in_transaction
from .inline import run_inline
from .protocol import QueryRequest, dumps, is_decimal, parse_query_request
from .settings import ServerLimits, TokenScope
from .streaming import NDJSONResponse, StatementStream
from .transaction_requests import parse_begin_request
from .transactions import (
    TRANSACTION_HEADER,
    InteractiveTransaction,
    TransactionManager,
    token_hash,
)
from .write_gates import WriteGates, may_write

if TYPE_CHECKING:
    from ..registry import Dorm

__all__ = ["SqlApi", "read_body", "request_tenant"]

ROW_FORMATS = ("object", "array")

_Result = TypeVar("_Result")


class SqlApi:
    """The endpoints of the StarbaseDB-style SQL API for one registry."""

    def __init__(
        self,
        dorm: Dorm,
        limits: ServerLimits,
        transactions: TransactionManager,
        write_gates: WriteGates,
    ) -> None:
        self.dorm = dorm
        self.limits = limits
        self.transactions = transactions
        self.write_gates = write_gates

    async def query_raw(self, request: Request) -> Response:
        """Run one statement or a transaction and return every row at once.

        A short read runs on the event loop (see :mod:`.inline`), anything
        else in a worker thread. With the header ``X-Dorm-Transaction``, the statements run inside
        that interactive transaction instead of a transaction of their own.
        """
        tenant, token_scope = await self._tenant_for_sql(request)
        query = parse_query_request(await read_body(request, self.limits.max_body_bytes))
        transaction_id = request.headers.get(TRANSACTION_HEADER)
        if transaction_id is None:
            if not query.is_transaction:
                result = run_inline(self.dorm, tenant, query.statements[0], self.limits)
                if result is not None:
                    return Response(_result_body(query, [result]), media_type="application/json")
            read_only = token_scope.read_only
            if not may_write(query.statements, is_transaction=query.is_transaction, read_only=read_only):
                body = await run_in_threadpool(self._run_raw, tenant, query, read_only)
                return Response(body, media_type="application/json")
            async with self.write_gates.enter(tenant):
                body = await run_in_threadpool(self._run_raw, tenant, query, read_only)
            return Response(body, media_type="application/json")

        record = await self.transactions.acquire(transaction_id, tenant, _owner(request))
        try:
            with anyio.CancelScope(shield=True):
                if record.holds_write_lock or not may_write(
                    query.statements, is_transaction=False, read_only=token_scope.read_only
                ):
                    body = await run_in_threadpool(
                        self._run_raw, tenant, query, token_scope.read_only, record.connection
                    )
                else:
                    body = await self._first_write(
                        record,
                        partial(
                            self._run_raw, tenant, query, token_scope.read_only, record.connection
                        ),
                    )
        except ApiError as error:
            raise _with_transaction_state(error, record) from error
        finally:
            await self.transactions.release(record)
        return Response(body, media_type="application/json")

    async def _first_write(
        self, record: InteractiveTransaction, run: Callable[[], _Result]
    ) -> _Result:
        """Run the first request that may write in a deferred transaction, through the gate."""
        async with self.write_gates.enter(record.tenant):
            try:
                result = await run_in_threadpool(run)
            except ApiError as error:
                # Only a request that could not get the lock (503) leaves it free.
                record.holds_write_lock = error.status != 503
                raise
        record.holds_write_lock = True
        return result

    def _run_raw(
        self,
        tenant: TenantName,
        query: QueryRequest,
        read_only: bool,
        connection: sqlite3.Connection | None = None,
    ) -> bytes:
        if connection is None:
            results = run_statements(
                self.dorm,
                tenant,
                query.statements,
                is_transaction=query.is_transaction,
                read_only=read_only,
                limits=self.limits,
            )
        else:
            results = run_statements_in_transaction(
                connection, tenant, query.statements, read_only=read_only, limits=self.limits
            )
        return _result_body(query, results)

    async def query_stream(self, request: Request) -> Response:
        """Run one statement and stream its rows as NDJSON."""
        tenant, token_scope = await self._tenant_for_sql(request)
        rows_as_arrays = _rows_as_arrays(request)
        query = parse_query_request(await read_body(request, self.limits.max_body_bytes))
        if query.is_transaction:
            raise ApiError(
                400,
                '/query/stream runs one statement: send {"sql": "...", "params": [...]}, '
                "and send transactions to /query/raw",
            )

        transaction_id = request.headers.get(TRANSACTION_HEADER)
        record = None
        if transaction_id is not None:
            record = await self.transactions.acquire(transaction_id, tenant, _owner(request))
        try:
            stream = StatementStream(
                self.dorm,
                tenant,
                query.statements[0],
                read_only=token_scope.read_only,
                limits=self.limits,
                rows_as_arrays=rows_as_arrays,
                connection=None if record is None else record.connection,
            )
            writes = may_write(
                query.statements, is_transaction=False, read_only=token_scope.read_only
            )
            with anyio.CancelScope(shield=record is not None):
                if record is None and writes:
                    async with self.write_gates.enter(tenant):
                        first_line = await run_in_threadpool(stream.open)
                elif record is not None and writes and not record.holds_write_lock:
                    first_line = await self._first_write(record, stream.open)
                else:
                    first_line = await run_in_threadpool(stream.open)
        except ApiError as error:
            if record is None:
                raise
            await self.transactions.release(record)
            raise _with_transaction_state(error, record) from error
        except BaseException:
            if record is not None:
                await self.transactions.release(record)
            raise

        # The response releases the transaction's lock after the last row.
        on_close = None if record is None else partial(self.transactions.release, record)
        return NDJSONResponse(
            stream, first_line, stall_timeout=self.limits.stream_stall_timeout, on_close=on_close
        )

    async def begin_transaction(self, request: Request) -> Response:
        """Begin an interactive transaction and return its id (201)."""
        tenant, token_scope = await self._tenant_for_sql(request)
        options = parse_begin_request(await read_body(request, self.limits.max_body_bytes))
        # A read-only token cannot write, so it never needs the write lock.
        mode = "deferred" if token_scope.read_only else options.mode
        record = await self.transactions.begin(
            tenant, _owner(request), mode=mode, idle_timeout=options.idle_timeout
        )
        document = {"id": record.id, "idle_timeout": options.idle_timeout}
        return Response(dumps(document), status_code=201, media_type="application/json")

    async def commit_transaction(self, request: Request) -> Response:
        """Commit an interactive transaction and give its connection back."""
        return await self._finish(request, commit=True)

    async def rollback_transaction(self, request: Request) -> Response:
        """Roll back an interactive transaction and give its connection back."""
        return await self._finish(request, commit=False)

    async def _finish(self, request: Request, *, commit: bool) -> Response:
        tenant = request_tenant(request)
        transaction_id = request.path_params["transaction_id"]
        await self.transactions.finish(transaction_id, tenant, _owner(request), commit=commit)
        return Response(dumps({"ok": True}), media_type="application/json")

    async def _tenant_for_sql(self, request: Request) -> tuple[TenantName, TokenScope]:
        tenant = request_tenant(request)
        token_scope = token_scope_of(request.scope)
        if token_scope.read_only and not await run_in_threadpool(self.dorm.exists, tenant):
            # A read-only token never creates a tenant, even when the registry would.
            raise ApiError(404, f"tenant {tenant!r} does not exist", tenant=tenant)
        return tenant, token_scope


def _result_body(query: QueryRequest, results: list[StatementResult]) -> bytes:
    document: dict[str, Any]
    if query.is_transaction:
        document = {
            "result": [result.to_json() for result in results],
            "transaction": {"success": True},
        }
    else:
        document = {"result": results[0].to_json()}
    return dumps(document)


def _owner(request: Request) -> bytes:
    return token_hash(request.headers.get("authorization"))


def _with_transaction_state(error: ApiError, record: InteractiveTransaction) -> ApiError:
    # The caller released the record already or will; ended means SQLite
    # itself rolled back the whole transaction.
    if record.ended or not record.connection.in_transaction:
        return ApiError(
            error.status,
            f"{error.message}; SQLite rolled back the whole interactive transaction, so it "
            "has ended: begin a new one",
            tenant=error.tenant,
            headers=error.headers,
        )
    return error


def request_tenant(request: Request) -> TenantName:
    """Return the canonical tenant of the request path, checked against the token's scope."""
    try:
        tenant = canonical_tenant(request.path_params["tenant"])
    except InvalidTenantName as error:
        raise ApiError(400, str(error)) from error
    if not token_scope_of(request.scope).allows(tenant):
        raise ApiError(
            403,
            f"this token does not grant tenant {tenant!r}: use a token issued for it",
            tenant=tenant,
        )
    return tenant


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read the request body, or raise 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if is_decimal(declared) and int(declared) > max_bytes:
        raise _body_too_large(max_bytes)

    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _body_too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than {max_bytes} bytes, the server's limit: split "
        "the work into smaller requests, or raise the limit (ServerLimits.max_body_bytes, "
        "dorm serve --max-body-bytes)",
    )


def _rows_as_arrays(request: Request) -> bool:
    row_format = request.query_params.get("rows", "object")
    if row_format not in ROW_FORMATS:
        raise ApiError(
            400,
            f"invalid rows={row_format!r}: use rows=object (the default, DORM's format) "
            "or rows=array (keeps columns with the same name)",
        )
    return row_format == "array"
