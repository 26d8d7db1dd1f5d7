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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    inspect,
    select,
    types,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, make_url

from .capture import ROWID_KEY, TableShape

__all__ = ["TableAction", "Batch", "Aggregate", "create_aggregate"]

logger = logging.getLogger(__name__)

STATE_TABLE = "_dorm_mirror_state"
INSERT_CHUNK = 500


@dataclass
class TableAction:
    """The changes of one batch to one aggregate table."""

    shape: TableShape | None
    table: str
    purge: bool = False
    """Delete every row of the tenant first (snapshot, dropped table)."""

    rows: Iterable[tuple[tuple[object, ...], tuple[object, ...] | None]] = ()
    """``(key, row)`` pairs; a ``None`` row deletes the key."""


@dataclass
class Batch:
    """One atomic step of the mirror for one tenant."""

    tenant: str
    incarnation: str
    last_seq: int
    reset: bool = False
    """Remove every row of the tenant from every aggregate table first."""

    actions: list[TableAction] = field(default_factory=list)


class Aggregate:
    """One aggregate database reached through a SQLAlchemy engine."""

    def __init__(self, url: str | URL, *, tenant_column: str) -> None:
        self.url = make_url(url) if isinstance(url, str) else url
        self.tenant_column = tenant_column
        self.engine = self._create_engine()
        self._tables: dict[str, Table] = {}
        self._known_columns: dict[str, set[str]] = {}
        self._metadata = MetaData()
        self._state = Table(
            STATE_TABLE,
            self._metadata,
            Column("tenant", String(63), primary_key=True),
            Column("incarnation", String(64), nullable=False),
            Column("last_seq", BigInteger, nullable=False),
        )
        self._ready = False

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _create_engine(self) -> Engine:
        if self.url.get_backend_name() == "sqlite":
            engine = create_engine(self.url)

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, record: Any) -> None:
                dbapi_connection.isolation_level = None
                dbapi_connection.execute("PRAGMA busy_timeout = 10000")
                if self.url.database not in (None, "", ":memory:"):
                    dbapi_connection.execute("PRAGMA journal_mode = WAL")

            @event.listens_for(engine, "begin")
            def _on_begin(connection: Connection) -> None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        return create_engine(self.url, pool_pre_ping=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    # -- state ---------------------------------------------------------------

    def _ensure_ready(self, connection: Connection) -> None:
        if self._ready:
            return
        self._state.create(connection, checkfirst=True)
        self._ready = True

    def positions(self) -> dict[str, tuple[str, int]]:
        """Return each mirrored tenant's ``(incarnation, last applied seq)``."""
        with self.engine.begin() as connection:
            self._ensure_ready(connection)
            rows = connection.execute(select(self._state)).all()
        return {row.tenant: (row.incarnation, int(row.last_seq)) for row in rows}

    def position(self, tenant: str) -> tuple[str, int] | None:
        with self.engine.begin() as connection:
            self._ensure_ready(connection)
            row = connection.execute(
                select(self._state.c.incarnation, self._state.c.last_seq).where(
                    self._state.c.tenant == tenant
                )
            ).first()
        return None if row is None else (row[0], int(row[1]))

    # -- applying ------------------------------------------------------------

    def apply(self, batch: Batch) -> bool:
        """Apply ``batch`` atomically; return False when it was applied before."""
        try:
            return self._apply(batch)
        except BaseException:
            # The aggregate may have changed under this process: reflect again.
            self._known_columns.clear()
            self._tables.clear()
            raise

    def _apply(self, batch: Batch) -> bool:
        with self.engine.begin() as connection:
            self._ensure_ready(connection)
            state = self._lock_state(connection, batch.tenant)
            if not batch.reset:
                if state is None or state[0] != batch.incarnation:
                    raise RuntimeError(
                        f"tenant {batch.tenant!r}: aggregate position is missing or of "
                        "another incarnation; a reset batch is needed"
                    )
                if state[1] >= batch.last_seq:
                    return False
            else:
                self._purge_tenant(connection, batch.tenant)

            for action in batch.actions:
                self._apply_action(connection, batch.tenant, action)

            self._save_state(connection, batch, exists=state is not None)
        return True

    def forget(self, tenant: str) -> None:
        """Remove every row of ``tenant`` and its position."""
        with self.engine.begin() as connection:
            self._ensure_ready(connection)
            self._purge_tenant(connection, tenant)
            connection.execute(delete(self._state).where(self._state.c.tenant == tenant))

    def tenants(self) -> list[str]:
        """Return every tenant with a position or with rows in an aggregate table."""
        names = set(self.positions())
        with self.engine.begin() as connection:
            for name in self._aggregate_tables(connection):
                column = self._table(connection, name).c[self.tenant_column]
                names.update(connection.execute(select(column).distinct()).scalars())
        return sorted(names)

    def _lock_state(self, connection: Connection, tenant: str) -> tuple[str, int] | None:
        query = select(self._state.c.incarnation, self._state.c.last_seq).where(
            self._state.c.tenant == tenant
        )
        if not self.is_sqlite:
            query = query.with_for_update()
        row = connection.execute(query).first()
        return None if row is None else (row[0], int(row[1]))

    def _save_state(self, connection: Connection, batch: Batch, *, exists: bool) -> None:
        values = {"incarnation": batch.incarnation, "last_seq": batch.last_seq}
        if exists:
            connection.execute(
                self._state.update().where(self._state.c.tenant == batch.tenant).values(**values)
            )
        else:
            connection.execute(self._state.insert().values(tenant=batch.tenant, **values))

    def _purge_tenant(self, connection: Connection, tenant: str) -> None:
        for name in self._aggregate_tables(connection):
            table = self._table(connection, name)
            connection.execute(delete(table).where(table.c[self.tenant_column] == tenant))

    def _aggregate_tables(self, connection: Connection) -> list[str]:
        names = []
        for name in inspect(connection).get_table_names():
            if name == STATE_TABLE:
                continue
            columns = {column["name"] for column in inspect(connection).get_columns(name)}
            if self.tenant_column in columns:
                names.append(name)
        return names

    def _apply_action(self, connection: Connection, tenant: str, action: TableAction) -> None:
        if action.shape is None:
            if action.table in self._aggregate_tables(connection):
                table = self._table(connection, action.table)
                connection.execute(delete(table).where(table.c[self.tenant_column] == tenant))
            return

        table = self._ensure_table(connection, action.shape)
        tenant_column = table.c[self.tenant_column]
        if action.purge:
            connection.execute(delete(table).where(tenant_column == tenant))

        key_names = list(action.shape.key)
        column_names = _row_columns(action.shape)
        declared_types = dict(zip(action.shape.columns, action.shape.declared_types))
        converters = [self._converter(declared_types.get(name)) for name in column_names]
        delete_statement = delete(table).where(
            tenant_column == tenant,
            *(table.c[name] == _bind(name) for name in key_names),
        )

        pending: list[dict[str, object]] = []
        deletions: list[dict[str, object]] = []
        for key, row in action.rows:
            if not action.purge:
                deletions.append({f"key_{name}": value for name, value in zip(key_names, key)})
            if row is not None:
                values = {self.tenant_column: tenant}
                for name, convert, value in zip(column_names, converters, row):
                    values[name] = convert(value) if convert is not None else value
                pending.append(values)
            if len(pending) >= INSERT_CHUNK or len(deletions) >= INSERT_CHUNK:
                self._flush(connection, table, delete_statement, deletions, pending)
                pending, deletions = [], []
        self._flush(connection, table, delete_statement, deletions, pending)

    @staticmethod
    def _flush(
        connection: Connection,
        table: Table,
        delete_statement: Any,
        deletions: list[dict[str, object]],
        pending: list[dict[str, object]],
    ) -> None:
        if deletions:
            connection.execute(delete_statement, deletions)
        if pending:
            connection.execute(table.insert(), pending)

    # -- schema --------------------------------------------------------------

    def _table(self, connection: Connection, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            metadata = MetaData()
            table = Table(name, metadata, autoload_with=connection)
            if self.is_sqlite:
                table = _untyped(table)
            self._tables[name] = table
        return table

    def _ensure_table(self, connection: Connection, shape: TableShape) -> Table:
        columns = _row_columns(shape)
        known = self._known_columns.get(shape.name)
        if known is not None and known.issuperset(columns):
            # Reflection costs more than a small batch, so it runs only when
            # a table or column is new to this process.
            return self._table(connection, shape.name)

        inspector = inspect(connection)
        types_by_column = dict(zip(shape.columns, shape.declared_types))
        if not inspector.has_table(shape.name):
            self._create_table(connection, shape, columns, types_by_column)
            self._tables.pop(shape.name, None)
        else:
            existing = {column["name"] for column in inspector.get_columns(shape.name)}
            missing = [column for column in columns if column not in existing]
            for column in missing:
                declared = types_by_column.get(column, "INTEGER")
                ddl_type = self._ddl_type(declared)
                connection.exec_driver_sql(
                    f"ALTER TABLE {self._quote(shape.name)} ADD COLUMN {self._quote(column)} {ddl_type}"
                )
                logger.info("aggregate %s: added column %s.%s", self.display_url, shape.name, column)
            if missing:
                self._tables.pop(shape.name, None)
        self._known_columns[shape.name] = {self.tenant_column, *columns}
        return self._table(connection, shape.name)

    def _create_table(
        self,
        connection: Connection,
        shape: TableShape,
        columns: Sequence[str],
        types_by_column: dict[str, str],
    ) -> None:
        parts = [f"{self._quote(self.tenant_column)} {self._ddl_type('TEXT')} NOT NULL"]
        for column in columns:
            declared = types_by_column.get(column, "INTEGER")
            parts.append(f"{self._quote(column)} {self._ddl_type(declared)}")
        key = ", ".join(self._quote(name) for name in (self.tenant_column, *shape.key))
        parts.append(f"PRIMARY KEY ({key})")
        connection.exec_driver_sql(
            f"CREATE TABLE {self._quote(shape.name)} (\n    " + ",\n    ".join(parts) + "\n)"
        )
        logger.info("aggregate %s: created table %s", self.display_url, shape.name)

    def _quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote_identifier(name)

    def _ddl_type(self, declared: str) -> str:
        if self.is_sqlite:
            # The aggregate keeps SQLite's own declared type, so values keep
            # the same affinity and storage class as in the tenant.
            return declared if _SAFE_TYPE.fullmatch(declared) else ""
        return _portable_type(declared).compile(dialect=self.engine.dialect)

    def _converter(self, declared: str | None) -> Any:
        """Return the function that turns a raw SQLite value into a Python value, if any.

        A SQLite aggregate takes raw values unchanged. Another database gets
        the values SQLAlchemy's SQLite types produce (``datetime`` from a
        DATETIME string, ``Decimal`` from NUMERIC), so they fit its typed columns.
        """
        if self.is_sqlite or declared is None:
            return None
        source_type = _sqlite_type(declared)
        if isinstance(source_type, types.NullType):
            return _untyped_to_text
        return source_type.result_processor(sqlite_dialect.dialect(), None)

    def dispose(self) -> None:
        self.engine.dispose()


_SAFE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?")


def _untyped_to_text(value: object) -> object:
    # A column without a declared type can hold any storage class; outside
    # SQLite it becomes TEXT, with BLOBs as hexadecimal.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _row_columns(shape: TableShape) -> list[str]:
    if shape.uses_rowid:
        return [ROWID_KEY, *shape.columns]
    return list(shape.columns)


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(f"key_{name}")


def _untyped(table: Table) -> Table:
    """Copy ``table`` with untyped columns, so values reach SQLite unchanged."""
    metadata = MetaData()
    columns = [
        Column(column.name, types.NullType(), primary_key=column.primary_key)
        for column in table.columns
    ]
    return Table(table.name, metadata, *columns)


def _sqlite_type(declared: str) -> types.TypeEngine[Any]:
    dialect = sqlite_dialect.dialect()
    try:
        return dialect._resolve_type_affinity(declared)  # type: ignore[attr-defined]
    except Exception:  # an unparseable declared type keeps no affinity
        return types.NullType()


def _portable_type(declared: str) -> types.TypeEngine[Any]:
    """Map a SQLite declared type to a type another database can store losslessly."""
    resolved = _sqlite_type(declared)
    if isinstance(resolved, types.Integer) and not isinstance(resolved, types.Boolean):
        return BigInteger()
    if isinstance(resolved, (types.Float,)):
        return types.Double()
    if isinstance(resolved, types.Numeric):
        return types.Numeric(resolved.precision, resolved.scale)
    for generic in (types.DateTime, types.Date, types.Time, types.Boolean, types.JSON):
        if isinstance(resolved, generic):
            return generic()
    if isinstance(resolved, types.LargeBinary):
        return LargeBinary()
    return Text()


def create_aggregate(url: str | URL, *, tenant_column: str) -> Aggregate:
    return Aggregate(url, tenant_column=tenant_column)

