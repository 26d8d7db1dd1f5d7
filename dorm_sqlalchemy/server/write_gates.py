"""One waiting writer per tenant in the server's worker threads.

A write waits for its tenant's write lock inside SQLite, for up to the busy
timeout, and it waits in one of the server's worker threads, which all
tenants share. Without a limit, the writers of one busy tenant would take
every worker thread, and requests of every other tenant would wait for one.
So a writer first passes its tenant's gate, an ``anyio.Lock``: the others
wait on the event loop, without a thread, for at most the busy timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import logging
import re

import anyio

from ..errors import TenantBusy
from ..naming import TenantName
from .errors import ApiError
from .protocol import Statement
from .sandbox import leading_keyword

__all__ = ["WriteGates", "may_write"]

logger = logging.getLogger(__name__)

# First keywords of statements that only read. A statement that starts with
# one of them and writes anyway still waits for the lock, in its worker thread.
_READING_KEYWORDS = frozenset({"SELECT", "VALUES", "EXPLAIN", "PRAGMA"})
_WRITE_WORD = re.compile(r"\b(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def may_write(statements: Sequence[Statement], *, is_transaction: bool, read_only: bool) -> bool:
    """Tell whether a request may wait for its tenant's write lock."""
    if read_only:
        return False
    if is_transaction:
        # Its BEGIN IMMEDIATE takes the write lock.
        return True
    return any(_statement_may_write(statement.sql) for statement in statements)


def _statement_may_write(sql: str) -> bool:
    keyword = leading_keyword(sql)
    if keyword == "WITH":
        # WITH ... INSERT, UPDATE or DELETE writes. Such a word inside a
        # string literal only makes the request wait its turn.
        return _WRITE_WORD.search(sql) is not None
    return keyword not in _READING_KEYWORDS


class WriteGates:
    """The gate of each tenant that has a writer now; a gate goes away with its last writer."""

    def __init__(self, busy_timeout: float) -> None:
        self.busy_timeout = busy_timeout
        self._gates: dict[TenantName, tuple[anyio.Lock, list[None]]] = {}

    @asynccontextmanager
    async def enter(self, tenant: TenantName) -> AsyncIterator[None]:
        """Let one writer of ``tenant`` at a time into the block; raise 503 after the busy timeout."""
        entry = self._gates.get(tenant)
        if entry is None:
            entry = (anyio.Lock(), [])
            self._gates[tenant] = entry
        gate, users = entry
        users.append(None)
        try:
            with anyio.move_on_after(self.busy_timeout) as waiting:
                await gate.acquire()
            if waiting.cancelled_caught:
                logger.info(
                    "tenant %s: 503, a writer waited %g s for the write lock",
                    tenant,
                    self.busy_timeout,
                )
                busy = TenantBusy(tenant, self.busy_timeout)
                raise ApiError(503, str(busy), tenant=tenant, headers={"Retry-After": "1"})
            try:
                yield
            finally:
                gate.release()
        finally:
            users.pop()
            if not users:
                del self._gates[tenant]
