"""The mirror worker: a background thread that moves outbox entries to aggregates.

Writers only mark a tenant dirty (a set insert); the worker then, per tenant:

1. opens one read transaction on the tenant and reads the schema version;
   only when it moved since the last pass are the capture triggers
   reconciled and the table shapes read again;
2. summarises a batch of outbox entries after the aggregate's position, and
   reads the current rows of their keys with one joined query per table;
3. applies the batch to each aggregate in one aggregate transaction that also
   moves the tenant's position, with fixed SQL and ``executemany``;
4. deletes the outbox entries every aggregate has applied, now and then.

A failure leaves the outbox untouched; the tenant is retried with
exponential backoff and the error is logged with the tenant and aggregate.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MirrorError
from ..naming import TenantName
from . import capture
from .aggregate import (
    Aggregate,
    AggregateFileReplaced,
    AggregatePositionBehind,
    AttachedTenant,
    Batch,
    TableAction,
)
from .capture import DROPPED, SNAPSHOT, RowQueries, TableShape

__all__ = ["MirrorWorker", "TenantProgress"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000
RETRY_FIRST = 0.2
RETRY_MAX = 10.0

BATCH_DELAY = 0.1
"""Seconds a notified tenant waits, so that commits close together share one batch.

The worker shares the interpreter lock with the application, so fewer,
larger batches cost writers less. With 0.1 s, benchmarks/mirror.py measured
a lag p99 of 103 to 200 ms in three runs at 500 commits/s over 10 tenants,
on 2 CPUs shared with other jobs (200 ms at load average 4). The goal is
under 250 ms; 0.05 s gave 52 to 63 ms but cost writers more."""

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
        locate: Callable[[TenantName], Path | None],
        tenants: Callable[[], Iterable[TenantName]],
        *,
        exclude: Collection[str],
        tenant_column: str,
    ) -> None:
        self.aggregates = aggregates
        self._connect = connect
        self._exists = exists
        self._identify = identify
        self._locate = locate
        self._tenants = tenants
        # Used by the worker thread only: a connection and its capture state per tenant.
        self._connections: OrderedDict[TenantName, _TenantState] = OrderedDict()
        self._pruned: dict[TenantName, tuple[int, float]] = {}
        self._positions: dict[tuple[int, TenantName], tuple[str, int]] = {}
        self._whole: set[tuple[int, TenantName]] = set()
        """Tenants to copy whole to an aggregate, whatever position it records."""
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
                _, state = self._connections.popitem()
                state.connection.close()

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
                        aggregate.release(tenant)
                        aggregate.forget(tenant)
                else:
                    self.sync_tenant(tenant)
            except AggregateFileReplaced as error:
                self._copy_whole(error.aggregate)
                self._failed(kind, tenant, progress, error)
            except AggregatePositionBehind as error:
                key = (id(error.aggregate), tenant)
                self._positions.pop(key, None)
                self._whole.add(key)
                self._failed(kind, tenant, progress, error)
            except Exception as error:  # logged, kept pending and retried
                self._failed(kind, tenant, progress, error)

    def _copy_whole(self, aggregate: Aggregate) -> None:
        """Queue every tenant for a whole copy to ``aggregate``.

        A new file has no positions, and an older copy put back in place
        records positions whose outbox entries may be pruned already.
        """
        for tenant in self._tenants():
            key = (id(aggregate), tenant)
            self._positions.pop(key, None)
            self._whole.add(key)
            self.notify(tenant)

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
            state = self._tenant_state(tenant)
        except sqlite3.OperationalError:
            if self._exists(tenant):
                raise
            logger.debug("mirror: tenant %s: skipped, its database is gone", tenant)
            return
        connection = state.connection
        try:
            applied = min(self._sync_aggregate(state, tenant, a) for a in self.aggregates)
            self.applied[tenant] = applied
            self._prune(connection, tenant, applied)
        except BaseException:
            self._capture_after_failure(state, tenant)
            self._close_connection(tenant)
            if tenant not in self._connections:
                connection.close()
            raise
        if tenant not in self._connections:
            connection.close()

    def _tenant_state(self, tenant: TenantName) -> _TenantState:
        identity = self._identify(tenant)
        cached = self._connections.get(tenant)
        if cached is not None:
            if identity is not None and cached.identity == identity:
                self._connections.move_to_end(tenant)
                return cached
            self._close_connection(tenant)

        state = _TenantState(self._connect(tenant), identity, self._locate(tenant))
        if identity is None:
            # Without a file identity (in-memory tenants) a cached connection
            # could outlive a drop and keep the old database alive.
            return state
        self._connections[tenant] = state
        while len(self._connections) > CACHED_CONNECTIONS:
            self._close_connection(next(iter(self._connections)))
        return state

    def _close_connection(self, tenant: TenantName) -> None:
        cached = self._connections.pop(tenant, None)
        if cached is not None:
            cached.connection.close()

    def _capture_after_failure(self, state: _TenantState, tenant: TenantName) -> None:
        # Passes reconcile the capture only when they reach an aggregate.
        # While one is down, reconciling here still captures writes to new
        # tables, so lag() counts them.
        try:
            if state.connection.execute("PRAGMA schema_version").fetchone()[0] != state.schema_version:
                self._refresh_capture(state, tenant)
        except (sqlite3.Error, MirrorError) as error:  # the original failure is the one raised
            logger.debug("mirror: tenant %s: capture not reconciled: %s", tenant, error)

    def _refresh_capture(self, state: _TenantState, tenant: TenantName) -> None:
        connection = state.connection
        capture.install_capture(
            connection, tenant=tenant, exclude=self._exclude, tenant_column=self._tenant_column
        )
        version, incarnation = capture.capture_state(connection)
        assert incarnation is not None
        # The version the triggers were reconciled with. When the schema
        # moved on meanwhile, the next pass finds another version and reconciles again.
        state.schema_version = version
        state.incarnation = incarnation
        state.tables = frozenset(capture.user_tables(connection))
        state.shapes.clear()
        state.queries.clear()

    def _shape(self, state: _TenantState, table: str, schema: str) -> tuple[TableShape, RowQueries]:
        shape = state.shapes.get(table)
        if shape is None:
            shape = capture.read_shape(state.connection, table)
            state.shapes[table] = shape
        queries = state.queries.get((table, schema))
        if queries is None:
            queries = capture.row_queries(shape, schema)
            state.queries[(table, schema)] = queries
        return shape, queries

    def _prune(self, connection: sqlite3.Connection, tenant: TenantName, applied: int) -> None:
        last_seq, last_time = self._pruned.get(tenant, (0, 0.0))
        now = time.monotonic()
        if applied - last_seq < PRUNE_ENTRIES and now - last_time < PRUNE_INTERVAL:
            return
        if applied > last_seq:
            capture.prune_changes(connection, applied)
        self._pruned[tenant] = (applied, now)

    def _sync_aggregate(self, state: _TenantState, tenant: TenantName, aggregate: Aggregate) -> int:
        """Apply ``tenant``'s outbox to ``aggregate`` batch by batch; return the last applied seq.

        Each batch reads the tenant in one snapshot whose schema version
        matches ``state``, so the cached tables and shapes describe exactly
        what is read. A SQLite aggregate attaches the tenant's file and reads
        it inside its own write transaction; other aggregates (and in-memory
        tenants) get rows read on the tenant's connection.
        """
        # The last position this worker applied is trusted: applying checks it
        # again under the aggregate's lock and fails if another process moved it.
        key = (id(aggregate), tenant)
        while True:
            position = self._positions.get(key)
            # A position read from the aggregate may predate pruned entries
            # (an older copy put back); one this worker applied cannot.
            check_gap = position is None
            if position is None and key not in self._whole:
                position = aggregate.position(tenant)
            try:
                if aggregate.can_attach and state.path is not None:
                    position, entries = self._attached_pass(
                        state, tenant, aggregate, position, check_gap
                    )
                else:
                    position, entries = self._connection_pass(
                        state, tenant, aggregate, position, check_gap
                    )
            except BaseException:
                self._positions.pop(key, None)
                raise
            if position is None:
                # The schema moved since the last check: reconcile, then retry.
                self._refresh_capture(state, tenant)
                continue
            self._positions[key] = position
            self._whole.discard(key)
            # A full batch may have left entries behind; otherwise every
            # entry committed before this pass is applied, and later commits
            # notify the worker again.
            if entries < BATCH_SIZE:
                return position[1]

    def _attached_pass(
        self,
        state: _TenantState,
        tenant: TenantName,
        aggregate: Aggregate,
        position: tuple[str, int] | None,
        check_gap: bool,
    ) -> tuple[tuple[str, int] | None, int]:
        """Run one batch through the tenant attached to ``aggregate``; return the new position and entries.

        Returns a None position when the tenant's schema version moved.
        """
        assert state.path is not None
        with aggregate.attached_transaction(tenant, state.path, state.identity) as source:
            prefix = capture.quote_identifier(source.schema)
            version = source.execute(f"PRAGMA {prefix}.schema_version").fetchone()[0]
            if version != state.schema_version:
                return None, 0
            if source.fresh:
                _check_attached_file(state, tenant, source)
            if _needs_whole_copy(state, position, check_gap, source.cursor, source.schema):
                last = source.execute(f"SELECT max(seq) FROM {prefix}.{capture.OUTBOX}").fetchone()[0]
                batch = self._snapshot_batch(state, tenant, int(last or 0), source)
                aggregate.apply_attached(source, batch)
                self._log_snapshot(tenant, batch, aggregate)
                return (state.incarnation, batch.last_seq), BATCH_SIZE

            last_seq, entries, tables = capture.batch_tables(
                source.cursor, position[1], BATCH_SIZE, schema=source.schema
            )
            if entries:
                batch = Batch(tenant, state.incarnation, last_seq, after_seq=position[1])
                batch.actions = self._actions_for(state, tenant, position[1], last_seq, tables, source)
                aggregate.apply_attached(source, batch)
                position = (state.incarnation, last_seq)
        return position, entries

    def _connection_pass(
        self,
        state: _TenantState,
        tenant: TenantName,
        aggregate: Aggregate,
        position: tuple[str, int] | None,
        check_gap: bool,
    ) -> tuple[tuple[str, int] | None, int]:
        """Run one batch read on the tenant's own connection; return the new position and entries.

        Returns a None position when the tenant's schema version moved.
        """
        connection = state.connection
        connection.execute("BEGIN")
        try:
            version = connection.execute("PRAGMA schema_version").fetchone()[0]
            if version != state.schema_version:
                return None, 0
            if _needs_whole_copy(state, position, check_gap, connection, "main"):
                last, _, _ = capture.outbox_state(connection)
                batch = self._snapshot_batch(state, tenant, last, None)
                aggregate.apply(batch)
                self._log_snapshot(tenant, batch, aggregate)
                return (state.incarnation, batch.last_seq), BATCH_SIZE

            last_seq, entries, tables = capture.batch_tables(connection, position[1], BATCH_SIZE)
            if entries:
                batch = Batch(tenant, state.incarnation, last_seq, after_seq=position[1])
                batch.actions = self._actions_for(state, tenant, position[1], last_seq, tables, None)
                aggregate.apply(batch)
                position = (state.incarnation, last_seq)
            return position, entries
        finally:
            connection.execute("COMMIT")

    def _snapshot_batch(
        self, state: _TenantState, tenant: TenantName, last_seq: int, source: AttachedTenant | None
    ) -> Batch:
        batch = Batch(tenant, state.incarnation, last_seq, reset=True)
        for table in sorted(state.tables):
            if table not in self._exclude:
                batch.actions.append(self._whole_table(state, tenant, table, source))
        return batch

    def _log_snapshot(self, tenant: TenantName, batch: Batch, aggregate: Aggregate) -> None:
        logger.info(
            "mirror: tenant %s: copied %d tables to %s", tenant, len(batch.actions), aggregate.display_url
        )

    def _whole_table(
        self, state: _TenantState, tenant: TenantName, table: str, source: AttachedTenant | None
    ) -> TableAction:
        if source is not None:
            shape, queries = self._shape(state, table, source.schema)
            return TableAction(shape, table, purge=True, selected=(queries.every, (tenant,)))
        shape, queries = self._shape(state, table, "main")
        rows = state.connection.execute(queries.every, (tenant,))
        return TableAction(shape, table, purge=True, rows=rows)

    def _actions_for(
        self,
        state: _TenantState,
        tenant: TenantName,
        after_seq: int,
        last_seq: int,
        tables: dict[str, str],
        source: AttachedTenant | None,
    ) -> list[TableAction]:
        # Rows are read in the same snapshot as the outbox entries, so every
        # key gets the table's current committed state.
        reader: sqlite3.Connection | AttachedTenant = state.connection if source is None else source
        schema = "main" if source is None else source.schema
        actions: list[TableAction] = []
        for table, op in tables.items():
            if table in self._exclude:
                continue
            if op == DROPPED or table not in state.tables:
                actions.append(TableAction(None, table))
                continue
            if op == SNAPSHOT:
                actions.append(self._whole_table(state, tenant, table, source))
                continue
            shape, queries = self._shape(state, table, schema)
            parameters = (tenant, after_seq, last_seq, table)
            removed = reader.execute(queries.removed, parameters).fetchall()
            if source is not None:
                actions.append(TableAction(shape, table, removed=removed, selected=(queries.changed, parameters)))
            else:
                rows = reader.execute(queries.changed, parameters).fetchall()
                actions.append(TableAction(shape, table, rows=rows, removed=removed))
        return actions


def _needs_whole_copy(
    state: _TenantState,
    position: tuple[str, int] | None,
    check_gap: bool,
    reader: sqlite3.Connection | sqlite3.Cursor,
    schema: str,
) -> bool:
    """Tell whether the tenant must be copied whole instead of from ``position`` on.

    ``reader`` reads the tenant's outbox, whose database is ``schema`` on it.
    """
    if position is None or position[0] != state.incarnation:
        return True
    return check_gap and capture.entries_pruned_after(reader, position[1], schema=schema)


def _check_attached_file(state: _TenantState, tenant: TenantName, source: AttachedTenant) -> None:
    """Raise :class:`MirrorError` unless the attached file is the one ``state`` describes."""
    prefix = capture.quote_identifier(source.schema)
    row = source.execute(f"SELECT value FROM {prefix}.{capture.META} WHERE key = 'incarnation'").fetchone()
    if row is None or row[0] != state.incarnation:
        # The file was replaced after the tenant connection was opened: the
        # next attempt opens and attaches the new one.
        raise MirrorError(
            f"tenant {tenant!r}: database file replaced while being mirrored; "
            "the worker retries with the new file",
            tenant=tenant,
        )


@dataclass
class _TenantState:
    """A tenant connection of the worker and the cached state of the tenant's capture.

    Everything after ``path`` is valid for one schema version and reloaded
    when the version moves.
    """

    connection: sqlite3.Connection
    identity: object | None
    path: Path | None
    schema_version: int | None = None
    incarnation: str = ""
    tables: frozenset[str] = frozenset()
    shapes: dict[str, TableShape] = field(default_factory=dict)
    queries: dict[tuple[str, str], RowQueries] = field(default_factory=dict)
    """Row queries per table and schema name of the tenant on the reading connection."""
