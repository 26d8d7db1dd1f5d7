"""The one SQLite transaction that an upgrade runs in.

SQLite rebuilds a table to change most constraints: Alembic's batch mode
creates ``_alembic_tmp_<table>``, copies the rows, drops the old table and
renames the new one. With foreign keys on, ``DROP TABLE`` first deletes every
row of the dropped table, and that delete fires the ``ON DELETE`` actions of
child tables: rebuilding a parent table would cascade-delete its children.
``PRAGMA defer_foreign_keys`` does not help, because it defers the checks but
not the actions (checked with SQLite 3.40).

So :func:`migration_transaction` follows the procedure that the SQLite manual
gives for schema changes (https://www.sqlite.org/lang_altertable.html, "Making
Other Kinds Of Table Schema Changes"). It switches foreign keys off while no
transaction is open, because the pragma is a no-op inside one. The whole
upgrade then runs in one ``BEGIN IMMEDIATE`` transaction. The caller runs
``PRAGMA foreign_key_check`` before commit, and the pragma is restored
afterwards.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from dorm_sqlalchemy.connections import BEGIN_OPTION
from dorm_sqlalchemy.errors import MigrationError

from .inspection import Query

__all__ = ["migration_transaction", "raise_on_foreign_key_violations"]

logger = logging.getLogger(__name__)

# How many foreign key violations an error message lists before "...".
_MAX_REPORTED_VIOLATIONS = 5


@contextmanager
def migration_transaction(engine: Engine, tenant: str) -> Iterator[Connection]:
    """Yield a connection with foreign keys off, inside one write transaction.

    The transaction begins with ``BEGIN IMMEDIATE``, so the write lock is taken
    before the caller reads the version. A second process waits here, then
    reads the revisions that the first one committed. The transaction commits when
    the block ends and rolls back if it raises. The connection's
    ``foreign_keys`` setting is restored before it returns to the pool, and a
    connection whose setting cannot be restored is invalidated.
    """
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        if not isinstance(driver, sqlite3.Connection):
            raise TypeError(
                f"tenant {tenant!r}: expected a pysqlite engine, got a "
                f"{type(driver).__name__} driver connection"
            )
        if driver.in_transaction:
            raise MigrationError(
                f"tenant {tenant!r}: the pooled connection is already inside a "
                "transaction, so foreign keys cannot be switched off for the "
                "upgrade; make sure the engine's connect event leaves no "
                "transaction open",
                tenant=tenant,
            )

        # Registry engines begin transactions in the mode this execution option
        # names, which may be configured as "deferred" for the application.
        connection.execution_options(**{BEGIN_OPTION: "immediate"})

        foreign_keys_before = driver.execute("PRAGMA foreign_keys").fetchone()[0]
        _set_foreign_keys(driver, False)
        try:
            with connection.begin():
                _ensure_write_lock(connection, driver)
                yield connection
        finally:
            _restore_foreign_keys(connection, driver, bool(foreign_keys_before), tenant)


def raise_on_foreign_key_violations(
    query: Query, tenant: str, revision: str | None
) -> None:
    """Raise MigrationError if ``PRAGMA foreign_key_check`` finds orphan rows.

    Foreign keys are off during the upgrade, so a revision can leave rows that
    point nowhere. This check runs before commit, and its error rolls the whole
    upgrade back.
    """
    violations = query("PRAGMA foreign_key_check", ())
    if not violations:
        return

    listed = [
        f"{table} rowid {rowid} -> {parent}"
        for table, rowid, parent, _constraint in violations[:_MAX_REPORTED_VIOLATIONS]
    ]
    more = ", ..." if len(violations) > _MAX_REPORTED_VIOLATIONS else ""
    raise MigrationError(
        f"upgrade of tenant {tenant!r} to revision {revision or 'base'} left "
        f"{len(violations)} row(s) that break a foreign key ({', '.join(listed)}{more}); "
        "the upgrade was rolled back: fix the data migration in the revision "
        "so that every child row has its parent, then open the tenant again",
        tenant=tenant,
        revision=revision,
    )


def _set_foreign_keys(driver: sqlite3.Connection, enabled: bool) -> None:
    driver.execute(f"PRAGMA foreign_keys = {'ON' if enabled else 'OFF'}")
    actual = driver.execute("PRAGMA foreign_keys").fetchone()[0]
    if bool(actual) != enabled:
        raise sqlite3.OperationalError(
            f"PRAGMA foreign_keys = {int(enabled)} had no effect (still {actual})"
        )


def _ensure_write_lock(connection: Connection, driver: sqlite3.Connection) -> None:
    # Tenant engines emit BEGIN IMMEDIATE from their "begin" event. A plain
    # pysqlite engine emits nothing, and pysqlite would run DDL outside any
    # transaction, so the upgrade begins the transaction itself.
    if not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _restore_foreign_keys(
    connection: Connection, driver: sqlite3.Connection, enabled: bool, tenant: str
) -> None:
    try:
        _set_foreign_keys(driver, enabled)
    except sqlite3.Error as exc:
        logger.warning(
            "tenant %s: could not restore PRAGMA foreign_keys=%d after the "
            "upgrade (%s); discarding the connection",
            tenant,
            int(enabled),
            exc,
        )
        connection.invalidate(exc)
