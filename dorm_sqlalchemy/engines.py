"""The engine cache: one sync engine (and, on demand, one async engine) per tenant.

Engines are created lazily and kept in a bounded LRU. Each pooled connection
to a WAL database keeps descriptors open for the database and its ``-wal`` file,
plus one ``-shm`` per tenant (measured with SQLite 3.40), so an unbounded
cache runs out of descriptors after a few hundred tenants. When the cache is full, the least recently used tenant
is *retired*: its idle connections are closed at once, and connections still
checked out (by a session in the middle of a transaction, say) are closed
when they are checked in. A retired engine keeps working for whoever still
holds it; it just stops keeping connections.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .connections import (
    ConnectionSettings,
    configure_dbapi_connection,
    engine_with_begin,
    install_connection_events,
    is_busy_error,
)
from .errors import TenantBusy, TenantNotFound
from .naming import TenantName
from .pool import (
    AsyncTenantPool,
    CheckoutTracker,
    TenantPool,
    track_detached,
    track_with_events,
)
from .storage import TenantStorage

__all__ = ["DEFAULT_MAX_ENGINES", "DEFAULT_POOL_SIZE", "EngineCache", "TenantEngines"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ENGINES = 64
"""Tenants whose engines stay open at once; with the default pool size, idle
sync connections of a full cache hold about 64 x (4 x 2 + 1) = 576 file
descriptors (measured: 768 with sync sessions and dorm.exec together)."""

DEFAULT_POOL_SIZE = 4
"""Connections each tenant engine keeps open when idle."""

STATEMENT_CONNECTIONS = 2
"""Idle DBAPI connections kept per tenant for ``Dorm.exec`` and the HTTP API.
Each costs two file descriptors for each of the ``max_engines`` cached tenants."""

READER_CONNECTIONS = 2
"""Idle read-only connections kept per tenant, each with its authorizer set
(see :meth:`TenantEngines.acquire_idle_reader`). An event loop uses one at a
time, since its reads run one after another."""


class TenantEngines:
    """The engines of one tenant and the connections checked out of them."""

    def __init__(
        self,
        tenant: TenantName,
        storage: TenantStorage,
        settings: ConnectionSettings,
        *,
        pool_size: int,
        engine_options: dict[str, Any],
    ) -> None:
        self.tenant = tenant
        self.storage = storage
        self.settings = settings
        self.retired = False
        self.dropped = False
        # One element per checked-out statement connection or reader: list
        # append and pop are atomic in CPython, so counting needs no lock.
        self._held: list[None] = []
        self._trackers: list[CheckoutTracker] = []

        self.on_write: Callable[[TenantName], None] | None = None
        """Called after a connection that changed rows is checked in (the mirror's hook)."""

        self._pool_size = pool_size
        self._engine_options = engine_options
        self._changes_at_checkout: dict[int, int] = {}
        self._create_lock = threading.Lock()
        self._async_engine: AsyncEngine | None = None
        self._engines_by_begin: dict[str, Engine] = {}
        self._statement_connections: deque[sqlite3.Connection] = deque()
        self._readers: deque[sqlite3.Connection] = deque()
        self._reader_authorizer: Callable[..., int] | None = None

        self.file_exists = not storage.in_memory and storage.exists(tenant)
        """Whether the tenant's file existed once; from then on no connection creates it."""

        self.engine = self._create_sync_engine(storage.sync_url(tenant))

    # -- engines ---------------------------------------------------------

    def _pool_options(self, poolclass: type[TenantPool]) -> dict[str, Any]:
        options: dict[str, Any] = dict(self._engine_options)
        if "poolclass" not in options and "pool" not in options:
            options["poolclass"] = poolclass
            options.setdefault("pool_size", self._pool_size)
            options.setdefault("max_overflow", 16)
        return options

    def _create_sync_engine(self, url: URL) -> Engine:
        engine = create_engine(url, **self._pool_options(TenantPool))
        self._install_events(engine)
        return engine

    @property
    def async_engine(self) -> AsyncEngine:
        if self._async_engine is None:
            with self._create_lock:
                if self._async_engine is None:
                    options = self._pool_options(AsyncTenantPool)
                    engine = create_async_engine(self.storage.async_url(self.tenant), **options)
                    self._install_events(engine.sync_engine)
                    self._async_engine = engine
        return self._async_engine

    def engine_for(self, begin: str | None) -> Engine:
        """Return the engine whose transactions begin with ``begin`` (None: the default)."""
        if begin is None or begin == self.settings.begin:
            return self.engine
        engine = self._engines_by_begin.get(begin)
        if engine is None:
            engine = engine_with_begin(self.engine, begin)
            self._engines_by_begin[begin] = engine
        return engine

    @property
    def has_async_engine(self) -> bool:
        return self._async_engine is not None

    def _install_events(self, engine: Engine) -> None:
        watch = install_connection_events(
            engine, self.settings, tenant=self.tenant, in_memory=self.storage.in_memory
        )
        tracker = CheckoutTracker(self, watch)
        self._trackers.append(tracker)
        if isinstance(engine.pool, TenantPool):
            engine.pool.tracker = tracker
        else:
            track_with_events(engine, tracker)
        track_detached(engine, tracker)

        @event.listens_for(engine, "do_connect")
        def _on_connect_attempt(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
            # Someone may still hold the engine of a dropped tenant, and
            # opening a connection would create the file again.
            if self.dropped:
                raise TenantNotFound.dropped(self.tenant)
            if self.file_exists and not cparams.get("uri"):
                # Opened with mode=rw, a file that drop() (or anyone) deleted
                # in the meantime is reported instead of being created empty.
                cargs[0] = _read_write_uri(cargs[0])
                cparams["uri"] = True
            return None

        @event.listens_for(engine, "handle_error")
        def _on_error(context: ExceptionContext) -> BaseException | None:
            opening = context.connection is None
            if opening and self.file_exists and not self.storage.exists(self.tenant):
                return TenantNotFound(self.tenant, _MISSING_FILE)
            return None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            self.file_exists = not self.storage.in_memory

    @property
    def checked_out(self) -> int:
        """Connections of this tenant currently checked out (pools, statements, readers)."""
        return len(self._held) + sum(tracker.count for tracker in self._trackers)

    # -- statement connections -------------------------------------------

    def acquire_statement_connection(self) -> sqlite3.Connection:
        """Take a DBAPI connection for one ``Dorm.exec`` statement.

        A pool checkout costs about twice a point query on SQLite, so
        ``Dorm.exec`` keeps its own small stack of configured connections.
        """
        # Counted first, then checked, as in CheckoutTracker.check_dropped().
        self._held.append(None)
        if self.dropped:
            self._held.pop()
            raise TenantNotFound.dropped(self.tenant)
        try:
            connection = self._statement_connections.pop()
        except IndexError:
            try:
                connection = self._open_statement_connection()
            except BaseException:
                self._held.pop()
                raise
        if self.on_write is not None:
            self._changes_at_checkout[id(connection)] = connection.total_changes
        return connection

    def acquire_idle_statement_connection(self) -> sqlite3.Connection | None:
        """Take an idle statement connection, or return ``None`` when none is idle.

        Never opens a connection, so it does no I/O: for callers on an event loop.
        """
        connection = self._take_idle(self._statement_connections)
        if connection is not None and self.on_write is not None:
            self._changes_at_checkout[id(connection)] = connection.total_changes
        return connection

    def acquire_idle_reader(self, authorizer: Callable[..., int]) -> sqlite3.Connection | None:
        """Take an idle connection with ``authorizer`` installed, or ``None``; never opens one.

        Installing an authorizer makes SQLite prepare every statement of the
        connection again, which costs more than a point query. So a reader
        keeps its authorizer between uses, and its prepared statements stay
        cached. When no reader is idle, an idle statement connection becomes
        one. ``authorizer`` must deny every write, because readers never
        notify the mirror.
        """
        if authorizer is self._reader_authorizer:
            connection = self._take_idle(self._readers)
            if connection is not None:
                return connection
        else:
            self._reader_authorizer = authorizer
            _close_all(self._readers)

        connection = self._take_idle(self._statement_connections)
        if connection is not None:
            connection.set_authorizer(authorizer)
        return connection

    def _take_idle(self, idle: deque[sqlite3.Connection]) -> sqlite3.Connection | None:
        # Counted first, then checked, as in CheckoutTracker.check_dropped().
        self._held.append(None)
        if not self.dropped:
            try:
                return idle.pop()
            except IndexError:
                pass
        self._held.pop()
        return None

    def release_reader(self, connection: sqlite3.Connection, authorizer: Callable[..., int]) -> None:
        """Return a connection taken by :meth:`acquire_idle_reader`."""
        if connection.in_transaction:
            connection.rollback()
        keep = (
            authorizer is self._reader_authorizer
            and not self.retired
            and len(self._readers) < READER_CONNECTIONS
        )
        if keep:
            self._readers.append(connection)
        else:
            connection.close()
        self._held.pop()

    def _open_statement_connection(self) -> sqlite3.Connection:
        try:
            connection = self.storage.connect(self.tenant, create=not self.file_exists)
        except sqlite3.OperationalError as error:
            if not self.storage.exists(self.tenant):
                raise TenantNotFound(self.tenant, _MISSING_FILE) from error
            raise
        self.file_exists = not self.storage.in_memory
        try:
            configure_dbapi_connection(
                connection, self.settings, tenant=self.tenant, in_memory=self.storage.in_memory
            )
        except sqlite3.Error as error:
            connection.close()
            if is_busy_error(error):
                raise TenantBusy(self.tenant, self.settings.busy_timeout) from error
            if not self.storage.exists(self.tenant):
                raise TenantNotFound(
                    self.tenant, "it was dropped while a connection to it was being opened"
                ) from error
            raise sa_exc.DBAPIError.instance(
                "connection setup", None, error, sqlite3.Error, hide_parameters=True
            ) from error
        except BaseException:
            connection.close()
            raise
        return connection

    def release_statement_connection(
        self, connection: sqlite3.Connection, discard: bool = False, changed_schema: bool = False
    ) -> None:
        """Return a connection taken by :meth:`acquire_statement_connection`.

        ``discard`` closes it instead, for a connection whose settings a
        statement may have changed. ``changed_schema`` reports a statement
        that may have changed the schema to the mirror, as a write.
        """
        if connection.in_transaction:
            connection.rollback()
        if self.on_write is not None:
            before = self._changes_at_checkout.pop(id(connection), None)
            if changed_schema or (before is not None and connection.total_changes != before):
                self.on_write(self.tenant)
        if discard or self.retired or len(self._statement_connections) >= STATEMENT_CONNECTIONS:
            connection.close()
        else:
            self._statement_connections.append(connection)
        self._held.pop()

    # -- disposal ----------------------------------------------------------

    def mark_dropped(self) -> int:
        """Refuse new checkouts and return how many connections are still checked out."""
        self.dropped = True
        return self.checked_out

    def unmark_dropped(self) -> None:
        self.dropped = False

    def retire(self) -> None:
        """Close idle connections now and every other one when it is checked in."""
        self.retired = True
        self.engine.dispose()
        self._close_statement_connections()

    def _close_statement_connections(self) -> None:
        _close_all(self._statement_connections)
        _close_all(self._readers)

    def dispose(self) -> None:
        """Close every connection of both engines (the async one from sync code)."""
        self.retire()
        if self._async_engine is not None:
            _run_coroutine(self._async_engine.dispose())

    async def adispose(self) -> None:
        self.retire()
        if self._async_engine is not None:
            await self._async_engine.dispose()


_MISSING_FILE = "its database file is gone (dropped, or deleted by another process)"


def _read_write_uri(path: str) -> str:
    """Return the SQLite URI that opens the database file at ``path`` without creating it."""
    return Path(path).as_uri() + "?mode=rw"


def _close_all(connections: deque[sqlite3.Connection]) -> None:
    while True:
        try:
            connection = connections.pop()
        except IndexError:
            return
        connection.close()


def _run_coroutine(coroutine: Any) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    coroutine.close()
    raise RuntimeError(
        "an async engine cannot be disposed from inside a running event loop "
        "with a blocking call: use `await dorm.aclose()` or `async with Dorm(...)`"
    )


_ALIASES_PER_ENGINE = 8
"""Bound on :attr:`EngineCache.aliases`, which is emptied when it fills."""


class EngineCache:
    """A bounded LRU of :class:`TenantEngines`, safe to share between threads."""

    def __init__(self, max_engines: int) -> None:
        self.max_engines = max_engines
        self._entries: OrderedDict[TenantName, TenantEngines] = OrderedDict()
        self._lock = threading.Lock()

        self.aliases: dict[str, TenantEngines] = {}
        """Names as callers passed them ("Acme", "acme"), mapped to cached entries.

        Looking a name up here skips canonicalising it; an entry leaving the
        cache takes its aliases with it.
        """

        self.touch = self._entries.move_to_end
        """Mark a tenant as used now (raises KeyError when it is not cached)."""

    def get(self, tenant: TenantName) -> TenantEngines | None:
        # No lock: each OrderedDict call is atomic under the GIL, and a tenant
        # evicted between the two calls only makes move_to_end miss.
        entry = self._entries.get(tenant)
        if entry is not None:
            try:
                self._entries.move_to_end(tenant)
            except KeyError:
                pass
        return entry

    def put(self, entry: TenantEngines) -> list[TenantEngines]:
        """Add ``entry`` and return the entries pushed out of the cache."""
        evicted: list[TenantEngines] = []
        with self._lock:
            self._entries[entry.tenant] = entry
            self._entries.move_to_end(entry.tenant)
            while len(self._entries) > self.max_engines:
                _, old = self._entries.popitem(last=False)
                evicted.append(old)
            if evicted:
                self._drop_aliases(evicted)
        return evicted

    def add_alias(self, name: str, entry: TenantEngines) -> None:
        """Let :attr:`aliases` resolve ``name`` to ``entry`` while it stays cached."""
        with self._lock:
            if self._entries.get(entry.tenant) is not entry:
                return
            if len(self.aliases) >= _ALIASES_PER_ENGINE * self.max_engines:
                self.aliases = {}
            self.aliases[name] = entry

    def _drop_aliases(self, entries: list[TenantEngines]) -> None:
        # A new dict rather than deletions, so lock-free readers never see
        # one that changes size under them.
        removed = {id(entry) for entry in entries}
        self.aliases = {
            name: entry for name, entry in self.aliases.items() if id(entry) not in removed
        }

    def pop(self, tenant: TenantName) -> TenantEngines | None:
        with self._lock:
            entry = self._entries.pop(tenant, None)
            if entry is not None:
                self._drop_aliases([entry])
            return entry

    def entries(self) -> list[TenantEngines]:
        with self._lock:
            return list(self._entries.values())

    def pop_all(self) -> list[TenantEngines]:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            self.aliases = {}
        return entries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tenant: object) -> bool:
        return tenant in self._entries
