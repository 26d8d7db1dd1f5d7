"""The :class:`Dorm` registry: tenants, their engines, sessions and cursors."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import sessionmaker

from . import lifecycle
from .connections import BEGIN_MODES, SYNCHRONOUS_MODES, ConnectionSettings, engine_with_begin
from .cursor import AsyncCursor, Cursor
from .engines import DEFAULT_MAX_ENGINES, DEFAULT_POOL_SIZE, EngineCache, TenantEngines
from .errors import DormError, MigrationError, RegistryClosed, TenantNotFound
from .fanout import TenantRow, fan_out
from .mirror import Mirror, check_aggregate_url
from .naming import TenantName, canonical_tenant
from .orm import (
    AsyncBackedSession,
    RoutedAsyncBackedSession,
    RoutedSession,
    TenantScope,
    TenantSession,
)
from .storage import FileStorage, TenantStorage, storage_from_url

if TYPE_CHECKING:
    from sqlalchemy.sql import Executable

__all__ = ["Dorm"]

logger = logging.getLogger(__name__)

_PRAGMA_NAME = re.compile(r"[a-z_]+")
_PRAGMA_VALUE = re.compile(r"-?\w+")

# Threads opening different tenants proceed in parallel; two threads opening
# the same tenant serialise on one of these stripes.
_OPEN_LOCK_STRIPES = 64


class Dorm:
    """A registry of tenant databases: one SQLite database per tenant.

    :param url: a URL template with ``{tenant}`` in the file name, followed
        by an extension, such as ``"sqlite:///data/{tenant}.db"``.
        ``sqlite://`` gives in-memory tenants. Without a URL, tenants are
        files ``./dorm-data/{tenant}.db``.
    :param root: a directory of tenant files; a shorthand for
        ``"sqlite:///<root>/{tenant}.db"``.

    :param migrations: an Alembic script directory, DORM-style numbered
        SQL lists ``{1: ["CREATE TABLE ..."], 2: [...]}``, or a migrator from
        :func:`alembic_ext.make_migrator`; every tenant is brought to head
        the first time this process opens it.
    :param mirror: an aggregate database URL (SQLite or PostgreSQL), or a
        list of them, that receives every committed write tagged with its
        tenant; ``dorm.mirror`` is then a :class:`~dorm_sqlalchemy.Mirror`.
    :param mirror_exclude: tables that are not mirrored.
    :param mirror_tenant_column: name of the aggregate tables' tenant column.
    :param create: create a tenant's database on first use (the default);
        with ``False`` unknown tenants raise :class:`TenantNotFound`.
    :param max_engines: tenants whose engines stay open at once (LRU), 64
        by default.
    :param pool_size: connections each tenant engine keeps when idle, 4 by
        default.
    :param busy_timeout: seconds a statement waits for another writer's
        lock before raising :class:`TenantBusy`.
    :param begin: how transactions begin: ``"immediate"`` (default: take
        the write lock at BEGIN, so read-then-write transactions wait for
        each other instead of failing), ``"deferred"`` or ``"exclusive"``.
        One connection can override it with the ``dorm_begin`` execution
        option.
    :param synchronous: ``PRAGMA synchronous`` for WAL databases;
        ``"normal"`` survives application crashes, ``"full"`` also power loss.
    :param pragmas: further ``PRAGMA name = value`` settings for every connection.
    :param engine_options: keyword arguments for ``create_engine``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        migrations: str | os.PathLike[str] | Mapping[int, Sequence[str]] | Any | None = None,
        mirror: str | Sequence[str] | None = None,
        mirror_exclude: Sequence[str] = (),
        mirror_tenant_column: str = "tenant",
        create: bool = True,
        max_engines: int = DEFAULT_MAX_ENGINES,
        pool_size: int = DEFAULT_POOL_SIZE,
        busy_timeout: float = 5.0,
        begin: str = "immediate",
        synchronous: str = "normal",
        pragmas: Mapping[str, int | str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        _check_int("max_engines", max_engines, minimum=1)
        _check_int("pool_size", pool_size, minimum=1)
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ValueError(
                f"invalid busy_timeout {busy_timeout!r}: give the seconds to wait "
                "for a lock as a number >= 0"
            )
        if begin not in BEGIN_MODES:
            raise ValueError(f"invalid begin {begin!r}: use one of {', '.join(BEGIN_MODES)}")
        if synchronous.lower() not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"invalid synchronous {synchronous!r}: use one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        extra_pragmas = _check_pragmas(pragmas or {})
        mirror_urls = _check_mirror(mirror, mirror_exclude, mirror_tenant_column)
        if mirror_urls:
            # REPLACE deletes conflicting rows without firing DELETE triggers
            # unless recursive triggers are on, and the mirror needs to see them.
            extra_pragmas.setdefault("recursive_triggers", "ON")

        self.storage: TenantStorage = storage_from_url(url, root)
        self.create_on_first_use = create
        self.settings = ConnectionSettings(
            busy_timeout=float(busy_timeout),
            begin=begin,  # type: ignore[arg-type]
            synchronous=synchronous.lower(),
            extra_pragmas=extra_pragmas,
        )
        self._pool_size = pool_size
        self._engine_options = dict(engine_options or {})
        self._engines = EngineCache(max_engines)
        self._retired: list[TenantEngines] = []
        self._retired_lock = threading.Lock()
        # Every entry still in use anywhere: an engine or session held by the
        # application keeps its entry alive after the cache let it go, and
        # drop() must stop that one too.
        self._live: weakref.WeakSet[TenantEngines] = weakref.WeakSet()
        self._disposals: set[asyncio.Task[None]] = set()
        self._open_locks = [threading.Lock() for _ in range(_OPEN_LOCK_STRIPES)]
        self._migrator = _make_migrator(migrations)
        self._migrated: set[TenantName] = set()
        self._current: ContextVar[TenantName | None] = ContextVar(
            f"dorm_current_tenant_{id(self):x}", default=None
        )
        self._closed = False

        self.mirror: Mirror | None = None
        """The mirror to aggregate databases, or ``None`` when ``mirror=`` is not set."""
        if mirror_urls:
            self.mirror = Mirror(
                self, mirror_urls, exclude=mirror_exclude, tenant_column=mirror_tenant_column
            )
            self.mirror.start()

    def __repr__(self) -> str:
        return f"Dorm({self.storage.describe()!r}, engines={len(self._engines)})"

    # -- engines -----------------------------------------------------------

    @property
    def max_engines(self) -> int:
        """Tenants whose engines stay open at once (the LRU's bound)."""
        return self._engines.max_engines

    def engine(self, tenant: str) -> Engine:
        """Return the cached sync :class:`~sqlalchemy.Engine` of ``tenant``."""
        return self._open(tenant).engine

    def async_engine(self, tenant: str) -> AsyncEngine:
        """Return the cached :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (aiosqlite) of ``tenant``."""
        return self._open(tenant).async_engine

    def _open(self, tenant: str) -> TenantEngines:
        # Every dorm.exec call starts here, so a name seen before skips the
        # canonical form and the checks. A tenant enters the aliases only once
        # it is cached and migrated, and only under an exact str, because a
        # subclass may compare equal to one name and lower-case to another.
        if type(tenant) is str:
            engines = self._engines
            try:
                entry = engines.aliases[tenant]
                engines.touch(entry.tenant)
            except KeyError:
                pass
            else:
                return entry
        return self._open_named(tenant)

    def _open_named(self, tenant: str) -> TenantEngines:
        name = canonical_tenant(tenant)
        entry = self._engines.get(name)
        if entry is None or (self._migrator is not None and name not in self._migrated):
            entry = self._open_slow(name)
        if type(tenant) is str:
            self._engines.add_alias(tenant, entry)
        return entry

    def _open_slow(
        self, tenant: TenantName, *, create: bool | None = None, upgrade: bool = True
    ) -> TenantEngines:
        self._check_open()
        if create is None:
            create = self.create_on_first_use
        with self._open_lock(tenant):
            entry = self._engines.get(tenant)
            if entry is not None:
                if upgrade:
                    self._upgrade_once(entry)
                return entry

            is_new = not self.storage.exists(tenant)
            if is_new and not create:
                raise TenantNotFound(tenant)
            self.storage.prepare(tenant)
            if is_new and upgrade:
                self._copy_template(tenant)
            entry = TenantEngines(
                tenant,
                self.storage,
                self.settings,
                pool_size=self._pool_size,
                engine_options=self._engine_options,
            )
            if is_new:
                logger.info("tenant %s: created (%s)", tenant, self.path(tenant) or "memory")
            if self.mirror is not None:
                entry.on_write = self.mirror.notify
            if upgrade:
                try:
                    self._upgrade_once(entry)
                    if self.mirror is not None:
                        self.mirror.install(tenant)
                except BaseException:
                    entry.dispose()
                    raise
            with self._retired_lock:
                self._live.add(entry)
            evicted = self._engines.put(entry)

        for old in evicted:
            self._retire(old)
        if self._retired:
            self._sweep_retired()
        return entry

    def _copy_template(self, tenant: TenantName) -> None:
        # A new tenant starts as a copy of a database already at head, so it
        # does not replay the whole migration history.
        if self._migrator is None or not isinstance(self.storage, FileStorage):
            return
        from alembic_ext import copy_template

        try:
            template = self._migrator.template_path(self.storage.directory)
        except MigrationError as error:
            # The template was built for this tenant, so the error names it.
            raise MigrationError(
                f"new tenant {tenant!r} was not created: {error}",
                tenant=tenant,
                revision=error.revision,
            ) from error
        copy_template(template, self.storage.path(tenant))

    def _upgrade_once(self, entry: TenantEngines) -> None:
        if self._migrator is None or entry.tenant in self._migrated:
            return
        self._migrator.upgrade(entry.tenant, entry.engine)
        self._migrated.add(entry.tenant)

    def _retire(self, entry: TenantEngines) -> None:
        logger.debug("tenant %s: engine retired from the cache", entry.tenant)
        entry.retire()
        # Kept while connections are checked out (drop() must see them) and
        # until the async engine, which only a coroutine can close, is disposed.
        if entry.has_async_engine or entry.checked_out > 0:
            with self._retired_lock:
                self._retired.append(entry)

    def _open_lock(self, tenant: TenantName) -> threading.Lock:
        return self._open_locks[hash(tenant) % _OPEN_LOCK_STRIPES]

    def _entries_of(self, tenant: TenantName) -> list[TenantEngines]:
        """Return every engine entry of ``tenant`` still in use: cached, retired or held."""
        with self._retired_lock:
            return [entry for entry in self._live if entry.tenant == tenant]

    def _sweep_retired(self) -> None:
        """Dispose the async engines of retired tenants that have no connection checked out."""
        with self._retired_lock:
            idle = [entry for entry in self._retired if entry.checked_out == 0]
            self._retired = [entry for entry in self._retired if entry.checked_out > 0]
        for entry in idle:
            if entry.has_async_engine:
                self._dispose_async_engine(entry)

    def _dispose_async_engine(self, entry: TenantEngines) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            asyncio.run(entry.async_engine.dispose())
            return
        # Inside a running loop a blocking disposal would stall the loop, so it
        # runs as a task, and aclose() awaits the tasks that are still running.
        task = loop.create_task(entry.async_engine.dispose())
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)

    # -- sessions ----------------------------------------------------------

    def session(self, tenant: str, **options: Any) -> TenantSession:
        """Return a new :class:`~sqlalchemy.orm.Session` bound to ``tenant``.

        ``begin="deferred"`` makes its transactions begin without the write
        lock, for sessions that only read. Other keyword arguments go to
        :class:`~sqlalchemy.orm.Session`.
        """
        entry = self._open(tenant)
        engine = entry.engine_for(options.pop("begin")) if "begin" in options else entry.engine
        return TenantSession(engine, tenant=entry.tenant, **options)

    def async_session(self, tenant: str, **options: Any) -> AsyncSession:
        """Return a new :class:`~sqlalchemy.ext.asyncio.AsyncSession` bound to ``tenant``.

        ``expire_on_commit`` defaults to ``False``, so attributes stay
        readable after ``await session.commit()`` without new I/O.
        """
        name = canonical_tenant(tenant)
        self._check_open()
        options.setdefault("expire_on_commit", False)
        begin = options.pop("begin", None)
        if begin is not None:
            options.setdefault("sync_session_class", AsyncBackedSession)
            return AsyncSession(
                bind=_with_begin(self.async_engine(name), begin), tenant=name, **options
            )
        # The engine is opened at the first statement, in a worker thread, so
        # creating and migrating a new tenant does not block the event loop.
        options.setdefault("sync_session_class", AsyncBackedSession)
        return AsyncSession(dorm=self, tenant=name, **options)

    def sessionmaker(self, **options: Any) -> sessionmaker[RoutedSession]:
        """Return a session factory that routes each session to the current tenant.

        Use it with :meth:`tenant`::

            Session = dorm.sessionmaker()
            with dorm.tenant("acme"), Session() as session:
                ...

        A session belongs to the tenant that is current when it is created,
        or else when it first needs a connection. Using it later under
        another tenant raises :class:`TenantMismatch`. ``begin="deferred"``
        works as in :meth:`session`.
        """
        _check_begin(options.get("begin"))
        return sessionmaker(class_=RoutedSession, dorm=self, **options)

    def async_sessionmaker(self, **options: Any) -> async_sessionmaker[AsyncSession]:
        """Return an async session factory routed like :meth:`sessionmaker`."""
        _check_begin(options.get("begin"))
        options.setdefault("expire_on_commit", False)
        return async_sessionmaker(
            sync_session_class=RoutedAsyncBackedSession, dorm=self, **options
        )

    def tenant(self, tenant: str) -> TenantScope:
        """Make ``tenant`` the current tenant inside a ``with`` or ``async with`` block.

        The current tenant is a :class:`~contextvars.ContextVar`, so it
        follows asyncio tasks and does not leak between threads.
        """
        return TenantScope(self._current, canonical_tenant(tenant))

    @property
    def current_tenant(self) -> TenantName | None:
        """The tenant set by the innermost :meth:`tenant` block, or ``None``."""
        return self._current.get()

    # -- raw SQL -------------------------------------------------------------

    def exec(self, tenant: str, sql: str, *params: Any) -> Cursor:
        """Run one SQL statement on ``tenant`` and return a streaming :class:`Cursor`.

        Parameters are positional (``?``) values, or one mapping for named
        parameters (``:name``). The statement runs in its own transaction.
        """
        entry = self._open(tenant)
        return Cursor(entry, sql, params)

    async def aexec(self, tenant: str, sql: str, *params: Any) -> AsyncCursor:
        """Run one SQL statement on ``tenant`` and return an :class:`AsyncCursor`."""
        entry = await asyncio.to_thread(self._open, tenant)
        return await AsyncCursor.execute(entry, sql, params)

    def fan_out(
        self,
        statement: str | Executable,
        *params: Any,
        tenants: Sequence[str] | None = None,
        max_workers: int = 8,
    ) -> list[TenantRow]:
        """Run one read-only query on many tenants at once and tag each row with its tenant.

        ``tenants=None`` means every existing tenant. At most ``max_workers``
        tenants are queried at the same time. Rows come back grouped by
        tenant, in the order of ``tenants`` (sorted when ``None``); each row's
        first field is ``tenant``. Unknown tenants raise :class:`TenantNotFound`.
        """
        if isinstance(tenants, str):
            raise TypeError(
                f"tenants must be a list of names, not the string {tenants!r}: "
                f"write tenants=[{tenants!r}]"
            )
        names = list(self.tenants()) if tenants is None else [canonical_tenant(t) for t in tenants]
        for name in names:
            if not self.storage.exists(name) and name not in self._engines:
                raise TenantNotFound(name, "fan_out() reads existing tenants only")
        return fan_out(self._open, statement, params, names, max_workers=max_workers)

    async def afan_out(
        self,
        statement: str | Executable,
        *params: Any,
        tenants: Sequence[str] | None = None,
        max_workers: int = 8,
    ) -> list[TenantRow]:
        """Async form of :meth:`fan_out`; the queries run in worker threads."""
        return await asyncio.to_thread(
            self.fan_out, statement, *params, tenants=tenants, max_workers=max_workers
        )

    # -- tenant lifecycle ----------------------------------------------------

    def tenants(self) -> Iterator[TenantName]:
        """Iterate over existing tenant names, sorted, without opening their databases."""
        return self.storage.tenants()

    def exists(self, tenant: str) -> bool:
        """Tell whether ``tenant`` has a database."""
        return self.storage.exists(canonical_tenant(tenant))

    def create(self, tenant: str, *, exist_ok: bool = False) -> TenantName:
        """Create ``tenant``'s database now (and migrate it to head); return its canonical name."""
        return lifecycle.create(self, canonical_tenant(tenant), exist_ok=exist_ok)

    def drop(self, tenant: str, *, missing_ok: bool = False) -> None:
        """Close ``tenant``'s engines and delete its database with its -wal and -shm files."""
        lifecycle.drop(self, canonical_tenant(tenant), missing_ok=missing_ok)

    def size(self, tenant: str) -> int:
        """Return the bytes ``tenant``'s database takes (the file plus its WAL)."""
        return lifecycle.size(self, canonical_tenant(tenant))

    def path(self, tenant: str) -> Path | None:
        """Return the database file of ``tenant``, or ``None`` for in-memory tenants."""
        if isinstance(self.storage, FileStorage):
            return self.storage.path(canonical_tenant(tenant))
        return None

    def backup(self, tenant: str, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy ``tenant``'s database to ``path`` with SQLite's online backup API.

        The copy is one consistent snapshot even while writers run, and
        appears at ``path`` atomically. Returns the path written.
        """
        return lifecycle.backup(self, canonical_tenant(tenant), Path(path), overwrite=overwrite)

    def migrate(self, tenants: Sequence[str] | None = None, **options: Any) -> Any:
        """Bring ``tenants`` (every tenant when ``None``) to head; return a per-tenant report.

        ``jobs`` (default 4) tenants are handled at once; ``progress=True``
        shows a progress bar (default: when stderr is a terminal). Returns an
        :class:`alembic_ext.MigrationReport`; tenants that failed are in
        ``report.failed`` and the others are still upgraded.
        """
        return lifecycle.migrate(self, tenants, **options)

    def migration_status(self, tenants: Sequence[str] | None = None, **options: Any) -> Any:
        """Return each tenant's revision against head (read-only) as an :class:`alembic_ext.StatusReport`."""
        return lifecycle.migration_status(self, tenants, **options)

    @contextmanager
    def raw_connection(self, tenant: str) -> Iterator[sqlite3.Connection]:
        """Check out a configured ``sqlite3`` connection of ``tenant`` for the block.

        The connection is in autocommit mode with the registry's pragmas.
        When the block ends, an open transaction is rolled back and any
        authorizer, progress handler or trace callback set on the connection
        is removed, so no per-connection state outlives the block.
        """
        entry = self._open(tenant)
        connection = entry.acquire_statement_connection()
        version = _schema_version(entry, connection)
        try:
            yield connection
        finally:
            _release_raw(entry, connection, version)

    @contextmanager
    def idle_raw_connection(
        self, tenant: str, *, authorizer: Callable[..., int] | None = None
    ) -> Iterator[sqlite3.Connection | None]:
        """:meth:`raw_connection` for code that must not block, such as an event loop.

        Yields ``None`` instead of opening, creating or migrating the tenant,
        or opening a connection: only a tenant that is open and migrated,
        with an idle connection, yields a connection.

        ``authorizer``, a ``sqlite3`` authorizer callback that denies every
        write, is installed on the connection and stays installed for the
        next call with the same callback, so the statements SQLite prepared
        under it stay cached. Installing an authorizer otherwise makes SQLite
        prepare every statement again.
        """
        entry = self._open_entry(tenant)
        if entry is None:
            yield None
            return
        if authorizer is None:
            connection = entry.acquire_idle_statement_connection()
        else:
            connection = entry.acquire_idle_reader(authorizer)
        if connection is None:
            yield None
            return

        version = _schema_version(entry, connection) if authorizer is None else None
        try:
            yield connection
        finally:
            if authorizer is None:
                _release_raw(entry, connection, version)
            else:
                connection.set_progress_handler(None, 0)
                connection.set_trace_callback(None)
                entry.release_reader(connection, authorizer)

    def _open_entry(self, tenant: str) -> TenantEngines | None:
        """Return the cached, migrated entry of ``tenant``, or ``None``; never opens it."""
        entry = self._engines.aliases.get(tenant) if type(tenant) is str else None
        if entry is not None:
            return entry
        entry = self._engines.get(canonical_tenant(tenant))
        if entry is None or (self._migrator is not None and entry.tenant not in self._migrated):
            return None
        return entry

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """Dispose every engine and connection; the registry cannot be used afterwards.

        From inside a running event loop with async engines open, use
        :meth:`aclose` instead.
        """
        if self._closed:
            return
        if self._has_async_engines() and _loop_is_running():
            raise DormError(
                "Dorm.close() cannot dispose async engines from inside a running "
                "event loop: use `await dorm.aclose()` or `async with Dorm(...)`"
            )
        self._closed = True
        if self.mirror is not None:
            self.mirror.close()
        for entry in self._take_all_entries():
            entry.dispose()
        self.storage.close()

    async def aclose(self) -> None:
        """Dispose every engine and connection, awaiting the async engines."""
        if self._closed:
            return
        self._closed = True
        if self.mirror is not None:
            await asyncio.to_thread(self.mirror.close)
        if self._disposals:
            await asyncio.gather(*self._disposals, return_exceptions=True)
        for entry in self._take_all_entries():
            await entry.adispose()
        self.storage.close()

    def _has_async_engines(self) -> bool:
        with self._retired_lock:
            retired = list(self._retired)
        return any(entry.has_async_engine for entry in [*self._engines.entries(), *retired])

    def _take_all_entries(self) -> list[TenantEngines]:
        entries = self._engines.pop_all()
        with self._retired_lock:
            entries.extend(self._retired)
            self._retired = []
        return entries

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryClosed()

    def __enter__(self) -> Dorm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Dorm:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _schema_version(entry: TenantEngines, connection: sqlite3.Connection) -> int | None:
    """Return the schema version of a raw connection's database, when the mirror needs it."""
    if entry.on_write is None:
        return None
    return int(connection.execute("PRAGMA schema_version").fetchone()[0])


def _release_raw(
    entry: TenantEngines, connection: sqlite3.Connection, schema_version: int | None
) -> None:
    connection.set_authorizer(None)
    connection.set_progress_handler(None, 0)
    connection.set_trace_callback(None)
    # A schema change alone changes no rows, so the mirror hears of it here.
    changed_schema = False
    if schema_version is not None:
        try:
            changed_schema = _schema_version(entry, connection) != schema_version
        except sqlite3.Error:
            changed_schema = True
    entry.release_statement_connection(connection, changed_schema=changed_schema)


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _with_begin(engine: AsyncEngine, begin: str | None) -> AsyncEngine:
    if begin is None:
        return engine
    _check_begin(begin)
    return AsyncEngine(engine_with_begin(engine.sync_engine, begin))


def _check_begin(begin: object) -> None:
    if begin is not None and begin not in BEGIN_MODES:
        raise ValueError(f"invalid begin mode {begin!r}: use one of {', '.join(BEGIN_MODES)}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"invalid {name} {value!r}: give an integer >= {minimum}")


# Pragmas the library sets and verifies itself, through Dorm's own options.
_MANAGED_PRAGMAS = {
    "foreign_keys": "foreign keys are always on",
    "journal_mode": "file tenants always use WAL",
    "busy_timeout": "use Dorm(busy_timeout=seconds)",
    "synchronous": "use Dorm(synchronous=...)",
}


def _check_pragmas(pragmas: Mapping[str, int | str]) -> dict[str, int | str]:
    checked: dict[str, int | str] = {}
    for name, value in pragmas.items():
        if not isinstance(name, str) or not _PRAGMA_NAME.fullmatch(name):
            raise ValueError(f"invalid pragma name {name!r}: use a bare SQLite pragma name")
        if name in _MANAGED_PRAGMAS:
            raise ValueError(
                f"pragma {name} cannot be set through pragmas=: {_MANAGED_PRAGMAS[name]}"
            )
        if not _PRAGMA_VALUE.fullmatch(str(value)):
            raise ValueError(
                f"invalid value {value!r} for pragma {name}: use an integer or a bare keyword"
            )
        checked[name] = value
    return checked


def _check_mirror(
    mirror: str | Sequence[str] | None, exclude: Sequence[str], tenant_column: str
) -> list[str]:
    if mirror is None:
        return []
    urls = [mirror] if isinstance(mirror, str) else list(mirror)
    for url in urls:
        check_aggregate_url(url)
    if isinstance(exclude, str):
        raise TypeError(f"mirror_exclude must be a list of table names, not the string {exclude!r}")
    if not isinstance(tenant_column, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tenant_column):
        raise ValueError(
            f"invalid mirror_tenant_column {tenant_column!r}: use a plain identifier such as 'tenant'"
        )
    return urls


def _make_migrator(migrations: Any) -> Any:
    if migrations is None:
        return None
    from alembic_ext import AlembicMigrator, DictMigrator, make_migrator

    # A migrator built by make_migrator() carries options such as
    # stamp_unversioned, which the other forms cannot.
    if isinstance(migrations, (AlembicMigrator, DictMigrator)):
        return migrations
    return make_migrator(migrations)
