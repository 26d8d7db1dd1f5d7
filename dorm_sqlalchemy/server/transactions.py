"""Interactive transactions: a SQLite transaction that outlives one request.

``POST /{tenant}/api/db/transaction`` takes a dedicated connection of the
tenant, runs ``BEGIN IMMEDIATE`` (or ``BEGIN DEFERRED``) on it and returns an
id. Requests that carry ``X-Dorm-Transaction: <id>`` run on that connection
until ``/transaction/<id>/commit`` or ``/rollback`` ends it. The state lives
in one :class:`TransactionManager` per application:

* each transaction belongs to one tenant and to the SHA-256 of the
  ``Authorization`` header that began it; another tenant or token gets 404;
* requests on one transaction run one at a time (an :class:`asyncio.Lock`);
  a request that waits longer than :data:`LOCK_WAIT` seconds gets 409;
* every request resets the idle timeout. A background task rolls back
  transactions idle past it and gives their connections back, so a client
  that crashed holds the tenant's write lock for at most that long;
* an unknown, expired or already ended id gets 410;
* :meth:`TransactionManager.close` rolls back everything still open at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from starlette.concurrency import run_in_threadpool

from .errors import ApiError
from .execution import TenantConnection, translate_error
from .settings import ServerLimits
from .write_gates import WriteGates

if TYPE_CHECKING:
    from ..registry import Dorm

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "InteractiveTransaction",
    "MAX_IDLE_TIMEOUT",
    "TRANSACTION_HEADER",
    "TransactionManager",
    "token_hash",
]

logger = logging.getLogger(__name__)

TRANSACTION_HEADER = "X-Dorm-Transaction"

DEFAULT_IDLE_TIMEOUT = 30.0
"""Seconds a transaction may stay without requests before the server rolls it back."""

MAX_IDLE_TIMEOUT = 300.0

MODES = {"deferred": "BEGIN DEFERRED", "immediate": "BEGIN IMMEDIATE"}

LOCK_WAIT = 30.0
"""Seconds a request waits for the previous request of the same transaction (409 after)."""

SWEEP_INTERVAL = 0.25
"""Seconds between two looks for transactions past their idle timeout."""


def token_hash(authorization: str | None) -> bytes:
    """Return the SHA-256 of an ``Authorization`` header, so no token is kept in memory."""
    return hashlib.sha256((authorization or "").encode("latin-1")).digest()


@dataclass(eq=False)
class InteractiveTransaction:
    """One open transaction: its connection, owner, lock and idle deadline."""

    id: str
    tenant: str
    owner: bytes
    idle_timeout: float
    connection: sqlite3.Connection
    resources: contextlib.ExitStack
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expires_at: float = 0.0
    ended: bool = False
    holds_write_lock: bool = True
    """False for a deferred transaction until a statement that may write has run in it."""

    def touch(self) -> None:
        """Restart the idle timeout from now."""
        self.expires_at = time.monotonic() + self.idle_timeout

    def end(self, *, commit: bool) -> None:
        """Commit or roll back, then give the connection back; blocks, so run it in a worker thread.

        Raises :class:`ApiError` when COMMIT fails (a deferred foreign key,
        for example); the transaction is rolled back then.
        """
        connection = self.connection
        try:
            if commit:
                try:
                    connection.execute("COMMIT")
                except sqlite3.Error as error:
                    api_error = translate_error(
                        error, tenant=self.tenant, authorizer=None, deadline=None
                    )
                    raise ApiError(
                        api_error.status,
                        f"COMMIT failed, so the transaction was rolled back: {api_error.message}",
                        tenant=self.tenant,
                        headers=api_error.headers,
                    ) from error
        finally:
            try:
                if connection.in_transaction:
                    connection.rollback()
            finally:
                self.resources.close()


class TransactionManager:
    """The open interactive transactions of one application, and their idle-timeout sweeper."""

    def __init__(
        self, dorm: Dorm, limits: ServerLimits, write_gates: WriteGates | None = None
    ) -> None:
        self.dorm = dorm
        self.limits = limits
        self.write_gates = write_gates or WriteGates(dorm.settings.busy_timeout)
        self._open: dict[str, InteractiveTransaction] = {}
        self._starting = 0
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the background task that rolls back idle transactions."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        """Stop the sweeper and roll back every open transaction."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        records = list(self._open.values())
        if records:
            logger.info("rolling back %d open interactive transaction(s) at shutdown", len(records))
        for record in records:
            self._forget(record, "rolled back at shutdown")
            await self._end_quietly(record)

    # -- begin, use, end -----------------------------------------------------

    async def begin(
        self, tenant: str, owner: bytes, *, mode: str, idle_timeout: float
    ) -> InteractiveTransaction:
        """Open a connection of ``tenant``, begin a transaction on it and register it."""
        if len(self._open) + self._starting >= self.limits.max_transactions:
            raise ApiError(
                503,
                f"the server already has {self.limits.max_transactions} interactive "
                "transactions open, its limit: retry shortly, or raise "
                "ServerLimits.max_transactions",
                tenant=tenant,
                headers={"Retry-After": "1"},
            )

        self._starting += 1
        try:
            # Shielded, so a cancelled request cannot leave a connection behind.
            with anyio.CancelScope(shield=True):
                if mode == "deferred":
                    record = await run_in_threadpool(
                        self._open_transaction, tenant, owner, MODES[mode], idle_timeout
                    )
                else:
                    # BEGIN IMMEDIATE waits for the write lock.
                    async with self.write_gates.enter(tenant):
                        record = await run_in_threadpool(
                            self._open_transaction, tenant, owner, MODES[mode], idle_timeout
                        )
        finally:
            self._starting -= 1
        record.touch()
        self._open[record.id] = record
        logger.debug("tenant %s: interactive transaction began (%s)", tenant, mode)
        return record

    def _open_transaction(
        self, tenant: str, owner: bytes, begin: str, idle_timeout: float
    ) -> InteractiveTransaction:
        resources = contextlib.ExitStack()
        tenant_connection = TenantConnection(self.dorm, tenant)
        connection = tenant_connection.open()
        resources.callback(tenant_connection.close)
        try:
            connection.execute(begin)
        except sqlite3.Error as error:
            resources.close()
            raise translate_error(error, tenant=tenant, authorizer=None, deadline=None) from error
        except BaseException:
            resources.close()
            raise
        return InteractiveTransaction(
            id=secrets.token_urlsafe(16),
            tenant=tenant,
            owner=owner,
            idle_timeout=idle_timeout,
            connection=connection,
            resources=resources,
            holds_write_lock=begin != MODES["deferred"],
        )

    async def acquire(self, transaction_id: str, tenant: str, owner: bytes) -> InteractiveTransaction:
        """Wait for the transaction's lock and return the transaction, or raise 404, 409 or 410.

        Call :meth:`release` when the request is done with the connection.
        """
        record = self._lookup(transaction_id, tenant, owner)
        try:
            async with asyncio.timeout(LOCK_WAIT):
                await record.lock.acquire()
        except TimeoutError:
            raise ApiError(
                409,
                f"transaction {transaction_id!r} is busy: another request of it ran for more "
                f"than {LOCK_WAIT:g} s; send the requests of one transaction one after another",
                tenant=tenant,
            ) from None

        if not record.ended and time.monotonic() >= record.expires_at:
            # Past its idle timeout, and the sweeper has not come by yet.
            self._forget(record, "expired")
            await self._end_quietly(record)
        if record.ended:
            record.lock.release()
            raise gone(transaction_id, tenant)
        record.touch()
        return record

    async def release(self, record: InteractiveTransaction) -> None:
        """Release the lock taken by :meth:`acquire`; end the transaction if SQLite already did."""
        try:
            if not record.ended and not record.connection.in_transaction:
                # SQLite rolls back the whole transaction after an interrupted
                # write (a time limit) and after some I/O errors.
                self._forget(record, "rolled back by SQLite after an error")
                await self._end_quietly(record)
        finally:
            record.touch()
            record.lock.release()

    async def finish(self, transaction_id: str, tenant: str, owner: bytes, *, commit: bool) -> None:
        """Commit or roll back a transaction and give its connection back."""
        record = await self.acquire(transaction_id, tenant, owner)
        try:
            self._forget(record, "committed" if commit else "rolled back")
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(record.end, commit=commit)
        finally:
            record.lock.release()

    # -- expiry --------------------------------------------------------------

    async def sweep(self) -> None:
        """Roll back every transaction idle past its timeout whose lock is free."""
        now = time.monotonic()
        expired = [
            record
            for record in self._open.values()
            if now >= record.expires_at and not record.lock.locked()
        ]
        for record in expired:
            self._forget(record, "expired")
            logger.info(
                "tenant %s: interactive transaction rolled back after %g s without requests",
                record.tenant,
                record.idle_timeout,
            )
            await self._end_quietly(record)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.sweep()
            except Exception:
                logger.exception("rolling back idle interactive transactions failed")

    # -- helpers -------------------------------------------------------------

    def _lookup(self, transaction_id: str, tenant: str, owner: bytes) -> InteractiveTransaction:
        record = self._open.get(transaction_id)
        if record is None:
            raise gone(transaction_id, tenant)
        if record.tenant != tenant or not hmac.compare_digest(record.owner, owner):
            raise ApiError(
                404,
                f"no transaction {transaction_id!r} for tenant {tenant!r} and this token: "
                "use the tenant and token that began it",
                tenant=tenant,
            )
        return record

    def _forget(self, record: InteractiveTransaction, reason: str) -> None:
        # Synchronous, so no request can take the record between the check and the removal.
        self._open.pop(record.id, None)
        record.ended = True
        logger.debug("tenant %s: interactive transaction %s", record.tenant, reason)

    async def _end_quietly(self, record: InteractiveTransaction) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(record.end, commit=False)
        except (sqlite3.Error, ApiError, OSError) as error:
            logger.error(
                "tenant %s: rolling back an interactive transaction failed: %s",
                record.tenant,
                error,
            )


def gone(transaction_id: str, tenant: str) -> ApiError:
    """Return the 410 error for an unknown, expired or already ended transaction."""
    return ApiError(
        410,
        f"transaction {transaction_id!r} expired or unknown; it was rolled back: begin a "
        "new transaction and run its statements again",
        tenant=tenant,
    )
