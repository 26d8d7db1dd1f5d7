"""Engines for migrating a database file outside the registry.

The Alembic command line and the template database need an engine set up like
a tenant engine: pysqlite in driver autocommit, foreign keys on, a busy
timeout, and ``BEGIN IMMEDIATE`` for every transaction. With that setup,
SAVEPOINT and transactional DDL work, and writers wait for each other instead
of failing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from dorm_sqlalchemy.connections import enable_wal

__all__ = ["create_migration_engine"]


def create_migration_engine(
    url: str | URL, *, busy_timeout: float = 30.0, wal: bool = True
) -> Engine:
    """Create a SQLite engine for running migrations on one database file.

    ``busy_timeout`` is how long, in seconds, a statement waits for another
    writer's lock. ``wal`` switches the file to write-ahead logging like a
    tenant file; a template database uses ``wal=False`` so that it stays one
    self-contained file. The engine uses ``NullPool``, so disposing of it
    closes every file it opened.
    """
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"expected a sqlite:// URL, got {url.render_as_string()!r}")

    engine = create_engine(url, poolclass=NullPool)
    timeout_ms = int(busy_timeout * 1000)
    journal_mode = "wal" if wal else "delete"

    @event.listens_for(engine, "connect")
    def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # Driver autocommit: pysqlite must not begin or commit on its own,
        # so that the "begin" listener below owns every transaction.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        if url.database not in (None, "", ":memory:"):
            if wal:
                # Retries while another process switches the same new file.
                enable_wal(dbapi_connection.cursor(), busy_timeout)
            else:
                dbapi_connection.execute(f"PRAGMA journal_mode = {journal_mode}")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
