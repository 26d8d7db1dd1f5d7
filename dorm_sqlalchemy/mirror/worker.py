"""The mirror worker: a background thread that moves outbox entries to aggregates.

Writers only mark a tenant dirty (a set insert); the worker then, per tenant:

1. reconciles the capture triggers with the schema (a no-op read when the
   schema has not changed);
2. opens one read transaction on the tenant, reads a batch of outbox entries
   after the aggregate's position and the current rows for their keys;
3. applies the batch to each aggregate in one aggregate transaction that also
   moves the tenant's position;
4. deletes the outbox entries every aggregate has applied.

A failure leaves the outbox untouched; the tenant is retried with
exponential backoff and the error is logged with the tenant and aggregate.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from ..naming import TenantName
from . import capture
from .aggregate import Aggregate, Batch, TableAction
from .capture import DROPPED, KEY_CHANGED, SNAPSHOT, ChangeRow, TableShape

__all__ = ["MirrorWorker", "TenantProgress"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000
RETRY_FIRST = 0.2
RETRY_MAX = 10.0

BATCH_DELAY = 0.05
"""Seconds a notified tenant waits, so that commits close together share one batch.

The worker shares the interpreter lock with the application, so fewer,
larger batches cost writers less; 0.05 s keeps the lag under 250 ms."""

PRUNE_ENTRIES = 1000
PRUNE_INTERVAL = 1.0
"""Applied outbox entries are deleted once this many pile up or this many seconds pass,
because each deletion takes the tenant's write lock away from the application."""

CACHED_CONNECTIONS = 16


@dataclass
class TenantProgress:
    """The worker's bookkeeping for one tenant that needs attention."""

    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None


class MirrorWorker:
    """Applies tenants' outboxes to a list of aggregates in a background thread."""

    def __init__(
        self,
        aggregates: list[Aggregate],
        connect: Callable[[TenantName], sqlite3.Connection],
        exists: Callable[[TenantName], bool],
        identify: Callable[[TenantName], object | None],
        *,
        exclude: Collection[str],
        tenant_column: str,
    ) -> None:
        self.aggregates = aggregates
        self._connect = connect
        self._exists = exists
        self._identify = identify
        # Used by the worker thread only: (connection, file identity) per tenant.
        self._connections: OrderedDict[TenantName, tuple[sqlite3.Connection, object]] = OrderedDict()
        self._pruned: dict[TenantName, tuple[int, float]] = {}
        self._positions: dict[tuple[int, TenantName], tuple[str, int]] = {}
        self.applied: dict[TenantName, int] = {}
        """The lowest outbox position every aggregate has applied, per tenant."""
        self._exclude = frozenset(exclude)
        self._tenant_column = tenant_column

        self._condition = threading.Condition()
        self._dirty: dict[TenantName, TenantProgress] = {}
        self._forget: set[TenantName] = set()
        self._busy: TenantName | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dorm-mirror", daemon=True)

    # -- control -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            while self._connections:
                _, (connection, _) = self._connections.popitem()
                connection.close()

    def notify(self, tenant: TenantName) -> None:
        """Mark ``tenant`` as having new changes."""
        with self._condition:
            if tenant not in self._dirty:
                self._dirty[tenant] = TenantProgress(next_attempt=time.monotonic() + BATCH_DELAY)
                self._condition.notify()

    def forget(self, tenant: TenantName) -> None:
        """Remove ``tenant`` from every aggregate (its database was dropped)."""
        with self._condition:
            self._dirty.pop(tenant, None)
            self._forget.add(tenant)
            self._condition.notify()

    def invalidate(self, tenant: TenantName) -> None:
        """Forget the cached aggregate positions of ``tenant`` (another caller changed them)."""
        for aggregate in self.aggregates:
            self._positions.pop((id(aggregate), tenant), None)

    def wait_idle(self, timeout: float | None, *, skip_failing: bool = False) -> bool:
        """Block until nothing is pending; return False on timeout.

        With ``skip_failing``, tenants whose last attempt failed do not count.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._has_work(skip_failing):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def _has_work(self, skip_failing: bool) -> bool:
        if self._forget or self._busy is not None:
            return True
        if skip_failing:
            return any(progress.attempts == 0 for progress in self._dirty.values())
        return bool(self._dirty)

    def pending(self) -> dict[TenantName, TenantProgress]:
        with self._condition:
            pending = dict(self._dirty)
            if self._busy is not None and self._busy not in pending:
                pending[self._busy] = TenantProgress()
            return pending

    # -- loop ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            kind, tenant, progress = job
            try:
                if kind == "forget":
                    self._close_connection(tenant)
                    self._pruned.pop(tenant, None)
                    for aggregate in self.aggregates:
                        self._positions.pop((id(aggregate), tenant), None)
                    self.applied.pop(tenant, None)
                    for aggregate in self.aggregates:
                        aggregate.forget(tenant)
                else:
                    self.sync_tenant(tenant)
            except Exception as error:  # logged, kept pending and retried
                self._failed(kind, tenant, progress, error)

    def _next_job(self) -> tuple[str, TenantName, TenantProgress] | None:
        with self._condition:
            self._busy = None
            self._condition.notify_all()
            while True:
                if self._stopping:
                    return None
                if self._forget:
                    tenant = self._forget.pop()
                    self._busy = tenant
                    return "forget", tenant, TenantProgress()
                now = time.monotonic()
                ready = next((t for t, p in self._dirty.items() if p.next_attempt <= now), None)
                if ready is not None:
                    self._busy = ready
                    return "sync", ready, self._dirty.pop(ready)
                waits = [p.next_attempt - now for p in self._dirty.values()]
                self._condition.wait(min(waits) if waits else None)

    def _failed(self, kind: str, tenant: TenantName, progress: TenantProgress, error: Exception) -> None:
        if kind == "sync" and not self._exists(tenant):
            # Dropped while it was being mirrored: the drop queued its removal.
            logger.debug("mirror: tenant %s: dropped during sync (%s)", tenant, error)
            return
        progress.attempts += 1
        delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (progress.attempts - 1))
        progress.next_attempt = time.monotonic() + delay
        progress.last_error = f"{type(error).__name__}: {error}"
        with self._condition:
            if kind == "forget":
                self._forget.add(tenant)
            else:
                # A notification during the attempt keeps the retry schedule.
                self._dirty[tenant] = progress
        if progress.attempts <= 3 or progress.attempts % 10 == 0:
            logger.warning(
                "mirror: tenant %s: attempt %d failed, retry in %.1f s: %s",
                tenant,
                progress.attempts,
                delay,
                progress.last_error,
            )
        if kind == "forget":
            time.sleep(min(delay, 1.0))

    # -- one tenant ----------------------------------------------------------

    def sync_tenant(self, tenant: TenantName) -> None:
        """Bring every aggregate up to date with ``tenant``'s outbox.

        A tenant whose database no longer exists is skipped: dropping it
        queued the removal of its rows.
        """
        try:
            connection = self._tenant_connection(tenant)
        except sqlite3.OperationalError:
            if self._exists(tenant):
                raise
            logger.debug("mirror: tenant %s: skipped, its database is gone", tenant)
            return
        try:
            capture.install_capture(
                connection,
                tenant=tenant,
                exclude=self._exclude,
                tenant_column=self._tenant_column,
            )
            incarnation = capture.incarnation(connection)
            assert incarnation is not None
            applied = min(self._sync_aggregate(connection, tenant, incarnation, a) for a in self.aggregates)
            self.applied[tenant] = applied
            self._prune(connection, tenant, applied)
        except BaseException:
            self._close_connection(tenant)
            if tenant not in self._connections:
                connection.close()
            raise
        if tenant not in self._connections:
            connection.close()

    def _tenant_connection(self, tenant: TenantName) -> sqlite3.Connection:
        identity = self._identify(tenant)
        cached = self._connections.get(tenant)
        if cached is not None:
            if identity is not None and cached[1] == identity:
                self._connections.move_to_end(tenant)
                return cached[0]
            self._close_connection(tenant)

        connection = self._connect(tenant)
        if identity is None:
            # Without a file identity (in-memory tenants) a cached connection
            # could outlive a drop and keep the old database alive.
            return connection
        self._connections[tenant] = (connection, identity)
        while len(self._connections) > CACHED_CONNECTIONS:
            self._close_connection(next(iter(self._connections)))
        return connection

    def _close_connection(self, tenant: TenantName) -> None:
        cached = self._connections.pop(tenant, None)
        if cached is not None:
            cached[0].close()

    def _prune(self, connection: sqlite3.Connection, tenant: TenantName, applied: int) -> None:
        last_seq, last_time = self._pruned.get(tenant, (0, 0.0))
        now = time.monotonic()
        if applied - last_seq < PRUNE_ENTRIES and now - last_time < PRUNE_INTERVAL:
            return
        if applied > last_seq:
            capture.prune_changes(connection, applied)
        self._pruned[tenant] = (applied, now)

    def _sync_aggregate(
        self, connection: sqlite3.Connection, tenant: TenantName, incarnation: str, aggregate: Aggregate
    ) -> int:
        # The last position this worker applied is trusted: apply() checks it
        # again under the aggregate's lock and fails if another process moved it.
        position = self._positions.get((id(aggregate), tenant)) or aggregate.position(tenant)
        if position is None or position[0] != incarnation:
            last_seq = self._apply_snapshot(connection, tenant, incarnation, aggregate)
        else:
            last_seq = position[1]

        while True:
            connection.execute("BEGIN")
            try:
                changes = capture.pending_changes(connection, last_seq, BATCH_SIZE)
                if not changes:
                    return last_seq
                batch = Batch(tenant, incarnation, changes[-1].seq)
                batch.actions = self._actions_for(connection, changes)
                try:
                    aggregate.apply(batch)
                except BaseException:
                    self._positions.pop((id(aggregate), tenant), None)
                    raise
            finally:
                connection.execute("COMMIT")
            last_seq = changes[-1].seq
            self._positions[(id(aggregate), tenant)] = (incarnation, last_seq)
            logger.debug("mirror: tenant %s: applied up to %d on %s", tenant, last_seq, aggregate.display_url)

    def _apply_snapshot(
        self, connection: sqlite3.Connection, tenant: TenantName, incarnation: str, aggregate: Aggregate
    ) -> int:
        connection.execute("BEGIN")
        try:
            last_seq, _, _ = capture.outbox_state(connection)
            tables = [t for t in capture.user_tables(connection) if t not in self._exclude]
            shapes = [capture.read_shape(connection, table) for table in tables]
            batch = Batch(tenant, incarnation, last_seq, reset=True)
            batch.actions = [
                TableAction(shape, shape.name, purge=True, rows=capture.iter_rows(connection, shape, None))
                for shape in shapes
            ]
            try:
                aggregate.apply(batch)
            except BaseException:
                self._positions.pop((id(aggregate), tenant), None)
                raise
            self._positions[(id(aggregate), tenant)] = (incarnation, last_seq)
        finally:
            connection.execute("COMMIT")
        logger.info(
            "mirror: tenant %s: copied %d tables to %s", tenant, len(shapes), aggregate.display_url
        )
        return last_seq

    def _actions_for(self, connection: sqlite3.Connection, changes: list[ChangeRow]) -> list[TableAction]:
        # Per table, the last snapshot or drop wins, and keys are deduplicated:
        # rows are read now, inside the same read transaction, so every key
        # gets the table's current committed state.
        plans: dict[str, tuple[str | None, dict[tuple[object, ...], None]]] = {}
        for change in changes:
            whole, keys = plans.get(change.table, (None, {}))
            if change.op in (SNAPSHOT, DROPPED):
                plans[change.table] = (change.op, {})
            elif change.op == KEY_CHANGED:
                keys[change.key] = None
                plans[change.table] = (whole, keys)

        existing = set(capture.user_tables(connection))
        actions: list[TableAction] = []
        for table, (whole, keys) in plans.items():
            if table in self._exclude:
                continue
            if whole == DROPPED or table not in existing:
                actions.append(TableAction(None, table))
                continue
            shape = capture.read_shape(connection, table)
            if whole == SNAPSHOT:
                actions.append(TableAction(shape, table, purge=True, rows=capture.iter_rows(connection, shape, None)))
            else:
                actions.append(TableAction(shape, table, rows=_materialise(connection, shape, keys)))
        return actions


def _materialise(
    connection: sqlite3.Connection, shape: TableShape, keys: dict[tuple[object, ...], None]
) -> Iterator[tuple[tuple[object, ...], tuple[object, ...] | None]]:
    return capture.iter_rows(connection, shape, iter(keys))
