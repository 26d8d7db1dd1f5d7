"""The aggregate side of the mirror: schema and atomic application of batches.

An aggregate table has the tenant table's columns plus a tenant column, and
its primary key is ``(tenant, <tenant table's primary key>)``; tables without
a primary key are keyed by their rowid in an extra ``_rowid`` column. No
other constraint is copied, because uniqueness within one tenant does not
hold across tenants.

Each batch is applied in one aggregate transaction together with the
tenant's position in ``_dorm_mirror_state``, so a batch is applied exactly
once even when the process dies between the aggregate commit and the outbox
cleanup, or when two processes mirror the same tenant.

SQLAlchemy creates the engine and its pool. The statements are fixed
strings from :mod:`.statements`, run on the DB-API connection: building
SQLAlchemy statements for every batch held the interpreter lock longer than
the rest of the mirror, and the application's threads wait for that lock.

A SQLite aggregate attaches the tenant's database file to its own
connection, so rows are copied by one ``INSERT ... SELECT`` inside SQLite.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import PoolProxiedConnection

from ..errors import MirrorError
from .capture import ROWID_KEY, TableShape
from .column_types import Converter, ddl_type, value_converter
from .statements import STATE_TABLE, AggregateSql, SqliteSql, sql_for_dialect

__all__ = ["Aggregate", "AttachedTenant", "Batch", "TableAction", "create_aggregate", "row_columns"]

logger = logging.getLogger(__name__)

Row = Sequence[object]


@dataclass
class TableAction:
    """The changes of one batch to one aggregate table."""

    shape: TableShape | None
    """The tenant table's shape, or None when the table was dropped."""

    table: str
    purge: bool = False
    """Delete every row of the tenant first (snapshot, dropped table)."""

    rows: Iterable[Row] = ()
    """Rows to store, each ``(tenant, *values)`` in the order of :func:`row_columns`."""

    removed: Sequence[Row] = ()
    """Keys of rows to delete, each ``(tenant, *key values)``."""

    selected: tuple[str, Sequence[object]] | None = None
    """A query and its parameters that return more rows to store, run on the
    aggregate's own connection, where the tenant database is attached."""


@dataclass
class Batch:
    """One atomic step of the mirror for one tenant."""

    tenant: str
    incarnation: str
    last_seq: int
    reset: bool = False
    """Remove every row of the tenant from every aggregate table first."""

    after_seq: int | None = None
    """The position the batch continues from, or ``None`` for a reset batch."""

    actions: list[TableAction] = field(default_factory=list)


@dataclass(frozen=True)
class _TableWriter:
    """The statements and value conversions for one tenant table shape."""

    store: str
    store_selected: str | None
    delete: str
    purge: str
    convert_row: Callable[[Row], Row] | None
    convert_key: Callable[[Row], Row] | None


class Aggregate:
    """One aggregate database reached through a SQLAlchemy engine.

    :meth:`apply` keeps one DB-API connection checked out between calls and
    must be called from one thread at a time (the mirror worker). The other
    methods check out a connection of their own and may run in any thread.
    """

    def __init__(self, url: str | URL, *, tenant_column: str) -> None:
        self.url = make_url(url) if isinstance(url, str) else url
        self.display_url = self.url.render_as_string(hide_password=True)
        self.tenant_column = tenant_column
        self.engine = self._create_engine()
        dialect = self.engine.dialect
        self.sql: AggregateSql = sql_for_dialect(
            dialect.name, dialect.dbapi.paramstyle, tenant_column, self.display_url  # type: ignore[union-attr]
        )
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._columns: dict[str, frozenset[str]] = {}
        """Columns each aggregate table is known to have. A table missing here is reflected."""

        self._writers: dict[TableShape, _TableWriter] = {}
        self._connection: PoolProxiedConnection | None = None
        self._attached: OrderedDict[str, tuple[str, object]] = OrderedDict()
        """Tenants attached to the worker's connection: schema name and file identity."""

        self._ready = False
        self._file = self._file_path()
        """The SQLite aggregate's file, or ``None`` for other aggregates and in-memory ones."""

        self._file_identity: tuple[int, int] | None = None
        """Device and inode of the file the worker's connection opened."""

    def _file_path(self) -> Path | None:
        database = self.url.database
        if self.url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
            return None
        if database.startswith("file:"):
            # A URI file name: its path is not compared.
            return None
        return Path(database)

    def _read_file_identity(self) -> tuple[int, int] | None:
        assert self._file is not None
        try:
            status = os.stat(self._file)
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def check_file(self) -> None:
        """Raise :class:`AggregateFileReplaced` if the worker's file was deleted or replaced.

        A connection keeps writing to a deleted file, so the worker would
        apply changes that no other connection can read. Worker thread only.
        """
        if self._file is None or self._connection is None:
            return
        if self._read_file_identity() == self._file_identity:
            return
        self._discard_worker_connection()
        self.engine.dispose()
        self._columns.clear()
        self._writers.clear()
        self._ready = False
        raise AggregateFileReplaced(self)

    def _create_engine(self) -> Engine:
        if self.url.get_backend_name() == "sqlite":
            # URI file names let ATTACH open a tenant without creating it.
            engine = create_engine(self.url, connect_args={"uri": True})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, record: Any) -> None:
                # Autocommit at the driver level, so the mirror issues its
                # own BEGIN (see statements.SqliteSql).
                dbapi_connection.isolation_level = None
                dbapi_connection.execute("PRAGMA busy_timeout = 10000")
                if self.url.database not in (None, "", ":memory:"):
                    dbapi_connection.execute("PRAGMA journal_mode = WAL")

            return engine
        return create_engine(self.url, pool_pre_ping=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    # -- connections ---------------------------------------------------------

    @contextmanager
    def _transaction(self, connection: Any) -> Iterator[Any]:
        """Run the block in one transaction on a DB-API connection; yield a cursor."""
        cursor = connection.cursor()
        try:
            if self.sql.begin is not None:
                cursor.execute(self.sql.begin)
            if not self._ready:
                cursor.execute(self.sql.create_state)
            yield cursor
            connection.commit()
            self._ready = True
        except BaseException:
            _rollback(connection, self._dbapi_error, self.display_url)
            raise
        finally:
            cursor.close()

    @contextmanager
    def _checkout(self) -> Iterator[Any]:
        """Check out a pool connection for one transaction; yield a cursor."""
        connection = self.engine.raw_connection()
        try:
            with self._transaction(connection.dbapi_connection) as cursor:
                yield cursor
        finally:
            connection.close()

    def _worker_connection(self) -> Any:
        if self._connection is None:
            self._connection = self.engine.raw_connection()
            if self._file is not None:
                self._file_identity = self._read_file_identity()
        return self._connection.dbapi_connection

    def _discard_worker_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._attached.clear()
        if connection is not None:
            # After a failure the connection may be broken (a PostgreSQL
            # restart): the pool opens a fresh one next time.
            connection.invalidate()

    # -- state ---------------------------------------------------------------

    def positions(self) -> dict[str, tuple[str, int]]:
        """Return each mirrored tenant's ``(incarnation, last applied seq)``."""
        with self._checkout() as cursor:
            cursor.execute(self.sql.select_positions)
            rows = cursor.fetchall()
        return {tenant: (incarnation, int(last_seq)) for tenant, incarnation, last_seq in rows}

    def read_positions(self) -> tuple[dict[str, tuple[str, int]] | None, str | None]:
        """Return :meth:`positions`, or ``None`` and the error when the aggregate cannot be read."""
        try:
            return self.positions(), None
        except (self._dbapi_error, sa_exc.DBAPIError) as error:
            return None, f"aggregate {self.display_url} could not be read: {error}"

    def position(self, tenant: str) -> tuple[str, int] | None:
        """Return ``tenant``'s ``(incarnation, last applied seq)``, or None if never mirrored."""
        with self._checkout() as cursor:
            cursor.execute(self.sql.select_position, (tenant,))
            row = cursor.fetchone()
        return None if row is None else (row[0], int(row[1]))

    # -- applying ------------------------------------------------------------

    def apply(self, batch: Batch) -> bool:
        """Apply ``batch`` atomically; return False when it was applied before."""
        self.check_file()
        try:
            # BEGIN IMMEDIATE would lock attached tenants too.
            for tenant in list(self._attached):
                self.release(tenant)
            with self._transaction(self._worker_connection()) as cursor:
                return self._apply(cursor, batch)
        except BaseException:
            # The aggregate may have changed under this process: reflect again.
            self._columns.clear()
            self._discard_worker_connection()
            raise

    def _apply(self, cursor: Any, batch: Batch) -> bool:
        cursor.execute(self.sql.lock_position, (batch.tenant,))
        state = cursor.fetchone()
        if not batch.reset:
            if state is None or state[0] != batch.incarnation:
                raise RuntimeError(
                    f"tenant {batch.tenant!r}: aggregate position is missing or of "
                    "another incarnation; a reset batch is needed"
                )
            if int(state[1]) >= batch.last_seq:
                return False
            if batch.after_seq is not None and int(state[1]) < batch.after_seq:
                # An older copy of the aggregate was put back in place: the
                # entries in between may be pruned, so the tenant is copied whole.
                raise AggregatePositionBehind(self, batch.tenant, int(state[1]), batch.after_seq)
        else:
            self._purge_tenant(cursor, batch.tenant)

        for action in batch.actions:
            self._apply_action(cursor, batch.tenant, action)

        if state is None:
            cursor.execute(self.sql.insert_position, (batch.tenant, batch.incarnation, batch.last_seq))
        else:
            cursor.execute(self.sql.update_position, (batch.incarnation, batch.last_seq, batch.tenant))
        return True

    def _apply_action(self, cursor: Any, tenant: str, action: TableAction) -> None:
        if action.shape is None:
            if action.table in self._tenant_tables(cursor):
                cursor.execute(self.sql.purge(action.table), (tenant,))
            return

        self._ensure_table(cursor, action.shape)
        writer = self._writer(action.shape)
        if action.purge:
            cursor.execute(writer.purge, (tenant,))

        if action.removed:
            removed: Iterable[Row] = action.removed
            if writer.convert_key is not None:
                removed = map(writer.convert_key, removed)
            cursor.executemany(writer.delete, removed)

        rows = action.rows
        if writer.convert_row is not None:
            rows = map(writer.convert_row, rows)
        cursor.executemany(writer.store, rows)

        if action.selected is not None:
            # The rows go from the attached tenant to the aggregate inside
            # SQLite, in one call that releases the interpreter lock.
            query, parameters = action.selected
            assert writer.store_selected is not None
            cursor.execute(f"{writer.store_selected} {query}", parameters)

    def forget(self, tenant: str) -> None:
        """Remove every row of ``tenant`` and its position."""
        with self._checkout() as cursor:
            self._purge_tenant(cursor, tenant)
            cursor.execute(self.sql.delete_position, (tenant,))

    def tenants(self) -> list[str]:
        """Return every tenant with a position or with rows in an aggregate table."""
        names = set(self.positions())
        with self._checkout() as cursor:
            for table in self._tenant_tables(cursor):
                column = self.sql.quote(self.tenant_column, parameters=False)
                cursor.execute(f"SELECT DISTINCT {column} FROM {self.sql.table(table, parameters=False)}")
                names.update(value for (value,) in cursor.fetchall())
        return sorted(names)

    def _purge_tenant(self, cursor: Any, tenant: str) -> None:
        for table in self._tenant_tables(cursor):
            cursor.execute(self.sql.purge(table), (tenant,))

    def _tenant_tables(self, cursor: Any) -> list[str]:
        # Read from the database every time: these paths are rare, and
        # another process may have created tables since.
        cursor.execute(self.sql.select_tenant_tables, (self.tenant_column,))
        return sorted({name for (name,) in cursor.fetchall() if name != STATE_TABLE})

    # -- attached tenants (SQLite aggregates) --------------------------------

    @property
    def can_attach(self) -> bool:
        """Whether tenant databases can be attached to this aggregate's connection."""
        return isinstance(self.sql, SqliteSql)

    @contextmanager
    def attached_transaction(self, tenant: str, path: Path, identity: object) -> Iterator[AttachedTenant]:
        """Attach ``tenant``'s database file to the worker's connection and open a write transaction.

        Reads of the tenant in the block see one snapshot, and batches
        applied with :meth:`apply_attached` commit with the aggregate's
        position at the end of the block. Worker thread only, like :meth:`apply`.
        """
        assert isinstance(self.sql, SqliteSql)
        self.check_file()
        try:
            if not self._ready:
                with self._checkout():
                    pass
            connection = self._worker_connection()
            schema, fresh = self._attach(connection, tenant, path, identity)
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN")
                cursor.execute(self.sql.lock_aggregate, (tenant,))
                yield AttachedTenant(schema, cursor, fresh)
                connection.commit()
            except BaseException:
                _rollback(connection, self._dbapi_error, self.display_url)
                raise
            finally:
                cursor.close()
        except BaseException:
            self._columns.clear()
            self._discard_worker_connection()
            raise

    def apply_attached(self, source: AttachedTenant, batch: Batch) -> bool:
        """Apply ``batch`` in the transaction of :meth:`attached_transaction`; False when applied before."""
        return self._apply(source.cursor, batch)

    def release(self, tenant: str) -> None:
        """Detach ``tenant``'s database from the worker's connection. Worker thread only."""
        entry = self._attached.pop(tenant, None)
        if entry is not None and self._connection is not None:
            self._connection.dbapi_connection.execute(f"DETACH DATABASE {self.sql.quote(entry[0])}")

    def _attach(
        self, connection: sqlite3.Connection, tenant: str, path: Path, identity: object
    ) -> tuple[str, bool]:
        """Return the schema name of ``tenant``'s file on ``connection``, and whether it was attached now."""
        entry = self._attached.get(tenant)
        if entry is not None:
            if entry[1] == identity:
                self._attached.move_to_end(tenant)
                return entry[0], False
            # Dropped and created again: the attached file is the old one.
            self.release(tenant)

        limit = connection.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)
        while self._attached and len(self._attached) >= limit:
            self.release(next(iter(self._attached)))
        used = {schema for schema, _ in self._attached.values()}
        schema = next(f"_dorm_tenant_{index}" for index in range(limit + 1) if f"_dorm_tenant_{index}" not in used)
        # mode=rw: a tenant dropped meanwhile fails to attach instead of
        # coming back as an empty file.
        connection.execute(f"ATTACH DATABASE ? AS {self.sql.quote(schema)}", (path.as_uri() + "?mode=rw",))
        self._attached[tenant] = (schema, identity)
        return schema, True

    # -- schema --------------------------------------------------------------

    def _writer(self, shape: TableShape) -> _TableWriter:
        writer = self._writers.get(shape)
        if writer is None:
            writer = self._build_writer(shape)
            self._writers[shape] = writer
        return writer

    def _build_writer(self, shape: TableShape) -> _TableWriter:
        columns = row_columns(shape)
        declared_types = dict(zip(shape.columns, shape.declared_types))
        dialect = self.engine.dialect
        converters = [value_converter(declared_types.get(name), dialect) for name in columns]
        key_converters = [converters[columns.index(name)] for name in shape.key]
        store_selected = None
        if isinstance(self.sql, SqliteSql):
            store_selected = self.sql.store_selected(shape.name, columns)
        return _TableWriter(
            store=self.sql.store_rows(shape.name, columns, shape.key),
            store_selected=store_selected,
            delete=self.sql.delete_keys(shape.name, shape.key),
            purge=self.sql.purge(shape.name),
            convert_row=_tuple_converter(converters),
            convert_key=_tuple_converter(key_converters),
        )

    def _ensure_table(self, cursor: Any, shape: TableShape) -> None:
        columns = row_columns(shape)
        known = self._columns.get(shape.name)
        if known is not None and known.issuperset(columns):
            # Reflection costs more than a small batch, so it runs only when
            # a table or column is new to this process.
            return

        cursor.execute(self.sql.select_columns, (shape.name,))
        existing = {name for (name,) in cursor.fetchall()}
        types_by_column = dict(zip(shape.columns, shape.declared_types))
        dialect = self.engine.dialect
        if not existing:
            definitions = [
                (name, ddl_type(types_by_column.get(name, "INTEGER"), dialect)) for name in columns
            ]
            cursor.execute(self.sql.create_table(shape.name, definitions, shape.key))
            existing = {self.tenant_column, *columns}
            logger.info("aggregate %s: created table %s", self.display_url, shape.name)
        else:
            for column in columns:
                if self._has_column(existing, column):
                    # Remembered in the tenant's spelling, for the check above.
                    existing.add(column)
                    continue
                declared = ddl_type(types_by_column.get(column, "INTEGER"), dialect)
                cursor.execute(self.sql.add_column(shape.name, column, declared))
                existing.add(column)
                logger.info("aggregate %s: added column %s.%s", self.display_url, shape.name, column)
        self._columns[shape.name] = frozenset(existing)

    def _has_column(self, existing: set[str], column: str) -> bool:
        if column in existing:
            return True
        if self.url.get_backend_name() != "sqlite":
            return False
        # SQLite compares names ignoring the case of ASCII letters only, so
        # "Total" in one tenant and "total" in another are one column.
        folded = column.translate(_ASCII_LOWER)
        return any(name.translate(_ASCII_LOWER) == folded for name in existing)

    def dispose(self) -> None:
        """Return the worker's connection and close every pooled connection."""
        connection, self._connection = self._connection, None
        self._attached.clear()
        if connection is not None:
            # Closed, not returned to the pool, because tenants may be attached to it.
            connection.invalidate()
        self.engine.dispose()


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class AggregatePositionBehind(MirrorError):
    """An aggregate records an older position for a tenant than the mirror applied."""

    def __init__(self, aggregate: Aggregate, tenant: str, recorded: int, applied: int) -> None:
        super().__init__(
            f"aggregate {aggregate.display_url}: tenant {tenant!r} is at outbox entry "
            f"{recorded}, behind the {applied} this mirror applied (an older copy of the "
            "aggregate?); the tenant is copied to it whole again",
            tenant=tenant,
        )
        self.aggregate = aggregate


class AggregateFileReplaced(MirrorError):
    """The SQLite aggregate's file was deleted or replaced under the mirror."""

    def __init__(self, aggregate: Aggregate) -> None:
        super().__init__(
            f"aggregate {aggregate.display_url}: its file was deleted or replaced while "
            "the mirror ran; every tenant is copied to it whole again"
        )
        self.aggregate = aggregate


@dataclass(frozen=True)
class AttachedTenant:
    """A tenant database attached to an aggregate's connection, inside an open transaction."""

    schema: str
    """The tenant database's schema name on the aggregate's connection."""

    cursor: Any
    fresh: bool = False
    """Whether the file was attached for this transaction (and may be another file
    than the one the worker's tenant connection has open)."""

    def execute(self, query: str, parameters: Sequence[object] = ()) -> Any:
        return self.cursor.execute(query, parameters)


def row_columns(shape: TableShape) -> list[str]:
    """Return the aggregate columns of a tenant table after the tenant column, in row order."""
    if shape.uses_rowid:
        return [ROWID_KEY, *shape.columns]
    return list(shape.columns)


def _tuple_converter(converters: Sequence[Converter | None]) -> Callable[[Row], Row] | None:
    """Return a function converting ``(tenant, *values)`` with one converter per value, if any."""
    pairs = [(index + 1, convert) for index, convert in enumerate(converters) if convert is not None]
    if not pairs:
        return None

    def convert_row(row: Row) -> Row:
        values = list(row)
        for index, convert in pairs:
            value = values[index]
            if value is not None:
                values[index] = convert(value)
        return values

    return convert_row


def _rollback(connection: Any, dbapi_error: type[Exception], display_url: str) -> None:
    # A rollback on a broken connection fails too. The original error is
    # the one to raise, and the caller discards the connection.
    try:
        connection.rollback()
    except dbapi_error as error:  # logged, then the original error propagates
        logger.debug("aggregate %s: rollback failed: %s", display_url, error)


def create_aggregate(url: str | URL, *, tenant_column: str) -> Aggregate:
    return Aggregate(url, tenant_column=tenant_column)
