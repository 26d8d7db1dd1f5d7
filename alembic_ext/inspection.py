"""Read-only queries on a tenant database: its tables and its recorded revisions.

Two kinds of reader share the helpers here. :func:`read_only_query` runs on a
pooled DBAPI connection outside any transaction, so a version check never
takes the write lock and never writes. :func:`connection_query` runs on a
SQLAlchemy connection, inside the migration transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

__all__ = [
    "ALEMBIC_VERSION_TABLE",
    "Query",
    "read_only_query",
    "connection_query",
    "read_tables",
    "user_tables",
    "read_alembic_versions",
    "require_sync_sqlite",
]

ALEMBIC_VERSION_TABLE = "alembic_version"

# Tables that belong to SQLite or to dorm-sqlalchemy itself. A database whose
# only tables are these counts as empty when deciding whether it is unversioned.
_INTERNAL_TABLE_PREFIXES = ("sqlite_", "_dorm_")

Query: TypeAlias = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""A function that runs one SQL statement with parameters and returns all rows."""


def require_sync_sqlite(engine: Engine) -> None:
    """Raise TypeError unless ``engine`` is a synchronous SQLite engine."""
    dialect = getattr(engine, "dialect", None)
    if dialect is None or dialect.name != "sqlite" or dialect.is_async:
        raise TypeError(
            f"expected a synchronous SQLite Engine, got {engine!r}: migrations "
            "run on the pysqlite engine of a tenant, even for async applications"
        )


@contextmanager
def read_only_query(engine: Engine) -> Iterator[Query]:
    """Yield a :data:`Query` on a pooled DBAPI connection, outside any transaction.

    SQLAlchemy's ``begin`` event does not fire on a raw DBAPI connection, so
    the ``BEGIN IMMEDIATE`` that tenant engines emit there is skipped and the
    reads take no write lock. pysqlite never begins a transaction implicitly
    before a SELECT, whatever its ``isolation_level``.
    """
    raw = engine.raw_connection()
    try:

        def query(sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            cursor = raw.cursor()
            try:
                cursor.execute(sql, tuple(parameters))
                return [tuple(row) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                # Raw DBAPI errors get SQLAlchemy's wrapper, as on a Connection.
                raise DBAPIError.instance(sql, parameters, exc, sqlite3.Error) from exc
            finally:
                cursor.close()

        yield query
    finally:
        raw.close()


def connection_query(connection: Connection) -> Query:
    """Return a :data:`Query` that runs on ``connection`` in its current transaction."""

    def query(sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        result = connection.exec_driver_sql(sql, tuple(parameters))
        if not result.returns_rows:
            return []
        return [tuple(row) for row in result.fetchall()]

    return query


def read_tables(query: Query) -> frozenset[str]:
    """Return the names of all tables in the main schema."""
    rows = query("SELECT name FROM sqlite_master WHERE type = 'table'", ())
    return frozenset(row[0] for row in rows)


def user_tables(tables: frozenset[str], version_table: str) -> list[str]:
    """Return the sorted tables that neither SQLite, the library nor versioning own."""
    return sorted(
        name
        for name in tables
        if name != version_table and not name.startswith(_INTERNAL_TABLE_PREFIXES)
    )


def read_alembic_versions(
    query: Query, tables: frozenset[str] | None = None
) -> tuple[str, ...] | None:
    """Return the revisions stored in ``alembic_version``, or None without that table.

    An empty tuple means the table exists but is empty, which is where
    ``alembic downgrade base`` leaves a database.
    """
    if tables is None:
        tables = read_tables(query)
    if ALEMBIC_VERSION_TABLE not in tables:
        return None
    rows = query(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}", ())
    return tuple(sorted(str(row[0]) for row in rows))
