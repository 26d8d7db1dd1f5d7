"""Counting and screening the connections a tenant engine checks out.

Each tenant engine counts its checked-out connections, because a tenant
cannot be dropped while one is in use. It also screens each connection at
checkin. The mirror hears about writes, and a connection that ran a setting
PRAGMA, or that belongs to a retired engine, is closed instead of going back
to the pool.

Engines with the default pool do this in their pool class,
:class:`TenantPool`. SQLAlchemy's ``checkout`` and ``checkin`` pool events
could do the same, but dispatching the two listeners costs about 2% of a
``session.get()`` on SQLite (measured). Engines whose pool the application
chose use the events (:func:`track_with_events`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, QueuePool
from sqlalchemy.util.concurrency import in_greenlet

from .errors import TenantNotFound

if TYPE_CHECKING:
    from .connections import SettingsWatch
    from .engines import TenantEngines

__all__ = [
    "AsyncTenantPool",
    "CheckoutTracker",
    "TenantPool",
    "total_changes",
    "track_detached",
    "track_with_events",
]


class CheckoutTracker:
    """The connections one engine of a tenant has checked out."""

    def __init__(self, owner: TenantEngines, watch: SettingsWatch | None) -> None:
        self.owner = owner
        self.watch = watch
        """The sync engine's settings watch, or ``None`` for an async engine."""

        self.records: set[int] = set()
        """``id()`` of each entry a :class:`TenantPool` has handed out."""

        self.held: list[None] = []
        """One element per checkout that pool events reported."""

        self.detached: list[None] = []
        """One element per detached connection that is still open."""

    @property
    def count(self) -> int:
        """Connections of this engine in use now."""
        return len(self.records) + len(self.held) + len(self.detached)

    def check_dropped(self) -> None:
        """Raise TenantNotFound if the tenant was dropped (called after counting a checkout).

        drop() sets its flag first, then counts, so either the checkout
        fails here or drop() finds it counted.
        """
        if self.owner.dropped:
            raise TenantNotFound.dropped(self.owner.tenant)

    def screen(self, record: ConnectionPoolEntry) -> None:
        """Report the writes of a connection being checked in, and close it if it must not be reused."""
        owner = self.owner
        dbapi_connection = record.dbapi_connection
        if dbapi_connection is None:
            # Invalidated or detached: its writes can no longer be counted.
            if owner.on_write is not None:
                owner.on_write(owner.tenant)
            return
        watch = self.watch
        # A table change alone changes no rows, so the watch reports it.
        changed_schema = (
            watch is not None and watch.schema_changed and watch.pop_schema_changed(dbapi_connection)
        )
        if owner.on_write is not None:
            self._report_changes(record, dbapi_connection)
            if changed_schema:
                owner.on_write(owner.tenant)

        if watch is None:
            # An aiosqlite connection can be closed only from a greenlet of
            # the event loop, which is where AsyncSession and AsyncConnection
            # check connections in. A garbage-collected one is left to SQLAlchemy.
            if owner.retired and in_greenlet():
                record.close()
        elif owner.retired or (watch.changed and watch.pop_changed(dbapi_connection)):
            # A statement may have run PRAGMA foreign_keys = OFF: such a
            # connection is closed instead of going back to the pool.
            record.close()

    def _report_changes(self, record: ConnectionPoolEntry, dbapi_connection: Any) -> None:
        # The pool entry's info lives as long as its DBAPI connection, so a
        # new connection starts again from zero changes.
        changes = total_changes(dbapi_connection)
        if changes != record.info.get("dorm_changes", 0):
            record.info["dorm_changes"] = changes
            self.owner.on_write(self.owner.tenant)  # type: ignore[misc]


class TenantPool(QueuePool):
    """A :class:`~sqlalchemy.pool.QueuePool` that reports to a :class:`CheckoutTracker`."""

    tracker: CheckoutTracker
    """Set right after the engine is created, before its first checkout."""

    def _do_get(self) -> ConnectionPoolEntry:
        record = QueuePool._do_get(self)
        records = self.tracker.records
        key = id(record)
        # QueuePool retries by calling _do_get() again, so the entry may
        # have been counted by the inner call already.
        if key in records:
            return record
        records.add(key)
        try:
            self.tracker.check_dropped()
        except BaseException:
            records.discard(key)
            QueuePool._do_return_conn(self, record)
            raise
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        records = self.tracker.records
        key = id(record)
        try:
            if key in records:
                self.tracker.screen(record)
        finally:
            records.discard(key)
            QueuePool._do_return_conn(self, record)

    def recreate(self) -> QueuePool:
        pool = super().recreate()
        assert isinstance(pool, TenantPool)
        pool.tracker = self.tracker
        return pool


class AsyncTenantPool(TenantPool, AsyncAdaptedQueuePool):
    """The :class:`TenantPool` of an async engine."""


def track_detached(engine: Engine, tracker: CheckoutTracker) -> None:
    """Count the connections detached from ``engine``'s pool until they are closed.

    NOTE: SQLAlchemy reports no close for a detached connection that is
    garbage-collected without ``close()``, so that one stays counted and
    ``drop()`` keeps raising TenantInUse in this process.
    """
    pooled = isinstance(engine.pool, TenantPool)

    @event.listens_for(engine, "detach")
    def _on_detach(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # A TenantPool stopped counting the entry when detach() gave it back.
        # Pool events see no checkin for it, so its checkout is moved here.
        tracker.detached.append(None)
        if not pooled:
            tracker.held.pop()

    @event.listens_for(engine, "close_detached")
    def _on_close_detached(dbapi_connection: Any) -> None:
        tracker.detached.pop()
        owner = tracker.owner
        if owner.on_write is not None:
            owner.on_write(owner.tenant)


def track_with_events(engine: Engine, tracker: CheckoutTracker) -> None:
    """Report the checkouts of an engine whose pool is not a :class:`TenantPool`.

    Pools such as StaticPool hand the same entry to several checkouts at
    once, so these are counted one by one rather than by entry. SQLAlchemy
    sends a checkin even for a checkout that a listener failed.

    NOTE: with two overlapping StaticPool checkouts, SQLAlchemy checks in only
    the first ("Double checkin attempted"), so one checkout stays counted.
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        tracker.held.append(None)
        tracker.check_dropped()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        try:
            tracker.screen(record)
        finally:
            tracker.held.pop()


def total_changes(dbapi_connection: Any) -> int:
    """Return the rows a DBAPI connection has changed since it was opened."""
    # SQLAlchemy's aiosqlite adapter wraps aiosqlite's connection, whose
    # total_changes property reads the sqlite3 connection's counter.
    connection = getattr(dbapi_connection, "_connection", dbapi_connection)
    return int(connection.total_changes)
