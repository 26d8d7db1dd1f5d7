"""DORM-style migrations: numbered lists of SQL statements, for users without Alembic.

``{1: ["CREATE TABLE ..."], 2: ["ALTER TABLE ...", "CREATE INDEX ..."]}``
maps a positive version number to the statements that reach it. Versions run
in numeric order, each in its own ``BEGIN IMMEDIATE`` transaction with
foreign keys off and checked before commit, like an Alembic upgrade. Applied
versions are recorded in ``_dorm_migrations``::

    version     INTEGER PRIMARY KEY
    applied_at  TEXT    -- UTC ISO 8601; NULL while the version has not been applied
    error       TEXT    -- the last failure of this version, NULL once it applies
    failed_at   TEXT    -- UTC ISO 8601 time of that failure

A failing version rolls back completely, so the tenant stays at the previous
version. The error is then written to ``_dorm_migrations`` in a transaction of
its own and raised as MigrationError. Statements run one at a time through the
DBAPI's ``execute``, never ``executescript``, because ``executescript``
commits on its own. Each entry must therefore contain exactly one statement.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from dorm_sqlalchemy.errors import DormError, MigrationError

from .inspection import (
    Query,
    connection_query,
    read_only_query,
    read_tables,
    require_sync_sqlite,
    user_tables,
)
from .result import MigrationResult, TenantStatus
from .template_db import ensure_template
from .transaction import migration_transaction, raise_on_foreign_key_violations

__all__ = ["MIGRATIONS_TABLE", "DictMigrator", "validate_migrations"]

logger = logging.getLogger(__name__)

MIGRATIONS_TABLE = "_dorm_migrations"
"""Table that records the applied versions of numbered SQL migrations, and their errors."""

_CREATE_MIGRATIONS_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
    "version INTEGER PRIMARY KEY, applied_at TEXT, error TEXT, failed_at TEXT)"
)
_RECORD_APPLIED = (
    f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at, error, failed_at) "
    "VALUES (?, ?, NULL, NULL) ON CONFLICT (version) DO UPDATE SET "
    "applied_at = excluded.applied_at, error = NULL, failed_at = NULL"
)
_RECORD_FAILED = (
    f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at, error, failed_at) "
    "VALUES (?, NULL, ?, ?) ON CONFLICT (version) DO UPDATE SET "
    "error = excluded.error, failed_at = excluded.failed_at"
)

# Statements that would end or escape the transaction each version runs in,
# or that SQLite ignores inside a transaction.
_REJECTED_KEYWORDS = {
    "BEGIN": "each version already runs in its own transaction",
    "COMMIT": "each version already runs in its own transaction",
    "END": "each version already runs in its own transaction",
    "ROLLBACK": "each version already runs in its own transaction",
    "VACUUM": "VACUUM cannot run inside a transaction",
}

Versions = tuple[tuple[int, tuple[str, ...]], ...]


def validate_migrations(migrations: Mapping[int, Sequence[str]]) -> Versions:
    """Check a migrations dict and return its versions in numeric order.

    Raises MigrationError naming the version and statement at fault.
    """
    if not isinstance(migrations, Mapping):
        raise TypeError(
            f"expected a mapping of version numbers to SQL statement lists, "
            f"got {type(migrations).__name__}"
        )

    versions = []
    for version, statements in migrations.items():
        if isinstance(version, bool) or not isinstance(version, int):
            raise MigrationError(
                f"migration version {version!r} is not an integer: use positive "
                "int keys, as in {1: ['CREATE TABLE ...'], 2: [...]}",
                revision=str(version),
            )
        if version < 1:
            raise MigrationError(
                f"migration version {version} is not positive: versions start at 1",
                revision=str(version),
            )
        if isinstance(statements, (str, bytes)) or not isinstance(statements, Sequence):
            raise MigrationError(
                f"migration version {version} must be a list of SQL statements, "
                f"got {type(statements).__name__}: wrap a single statement in a list",
                revision=str(version),
            )
        for index, statement in enumerate(statements):
            _validate_statement(version, index, statement)
        versions.append((version, tuple(statements)))

    return tuple(sorted(versions))


def _validate_statement(version: int, index: int, statement: object) -> None:
    where = f"migration version {version}, statement {index + 1}"
    if not isinstance(statement, str):
        raise MigrationError(
            f"{where} is a {type(statement).__name__}, not a SQL string",
            revision=str(version),
        )

    first, rest = _split_first_statement(statement)
    if not _strip_comments(first).rstrip(";").strip():
        raise MigrationError(f"{where} is empty", revision=str(version))
    if _strip_comments(rest):
        raise MigrationError(
            f"{where} contains more than one SQL statement ({statement[:60]!r}...): "
            "put each statement in its own list entry, because statements run "
            "one at a time inside the version's transaction",
            revision=str(version),
        )

    keyword = _strip_comments(first).split(None, 1)[0].rstrip(";").upper()
    if keyword in _REJECTED_KEYWORDS:
        raise MigrationError(
            f"{where} is a {keyword} statement, which is not allowed: "
            f"{_REJECTED_KEYWORDS[keyword]}",
            revision=str(version),
        )


def _split_first_statement(sql: str) -> tuple[str, str]:
    # sqlite3.complete_statement recognises string literals, comments and
    # trigger bodies, so the first ";" after which the prefix is complete ends the
    # first statement.
    for index, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[: index + 1]):
            return sql[: index + 1], sql[index + 1 :]
    return sql, ""


def _strip_comments(sql: str) -> str:
    """Remove leading whitespace and SQL comments."""
    text = sql.lstrip()
    while text.startswith(("--", "/*")):
        if text.startswith("--"):
            newline = text.find("\n")
            text = "" if newline < 0 else text[newline + 1 :]
        else:
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2 :]
        text = text.lstrip()
    return text


def _read_applied(query: Query, tables: frozenset[str] | None = None) -> tuple[int, ...] | None:
    """Return the applied versions in order, or None without a migrations table."""
    if tables is None:
        tables = read_tables(query)
    if MIGRATIONS_TABLE not in tables:
        return None
    rows = query(
        f"SELECT version FROM {MIGRATIONS_TABLE} WHERE applied_at IS NOT NULL ORDER BY version",
        (),
    )
    return tuple(int(row[0]) for row in rows)


def _format_version(version: int | None) -> str | None:
    return None if version is None else str(version)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DictMigrator:
    """Brings tenants to the highest version of a DORM-style migrations dict.

    Build it with :func:`alembic_ext.make_migrator`. Revisions are the
    version numbers as strings (``"1"``, ``"2"``). ``stamp_unversioned`` works
    as for Alembic: ``"head"`` or a version marks a database that has tables
    but no ``_dorm_migrations`` as being at that version.
    """

    def __init__(
        self,
        migrations: Mapping[int, Sequence[str]],
        *,
        stamp_unversioned: str | None = None,
    ) -> None:
        self._versions = validate_migrations(migrations)
        self._known = frozenset(version for version, _ in self._versions)
        self._head = self._versions[-1][0] if self._versions else None
        self.stamp_unversioned = stamp_unversioned
        self._stamp_version = self._resolve_stamp(stamp_unversioned)

    def __repr__(self) -> str:
        return f"DictMigrator(versions={sorted(self._known)!r})"

    # -- the Migrator protocol ---------------------------------------------

    def heads(self) -> tuple[str, ...]:
        """Return the highest version as a one-element tuple, or () without versions."""
        return () if self._head is None else (str(self._head),)

    def current(self, tenant: str, engine: Engine) -> str | None:
        """Return the highest applied version, reading only."""
        require_sync_sqlite(engine)
        with read_only_query(engine) as query:
            applied = _read_applied(query)
        return _format_version(max(applied, default=None) if applied else None)

    def upgrade(self, tenant: str, engine: Engine) -> MigrationResult:
        """Apply the pending versions, one transaction each, or raise MigrationError."""
        started = time.perf_counter()
        require_sync_sqlite(engine)

        try:
            with read_only_query(engine) as query:
                applied = _read_applied(query)
        except (SQLAlchemyError, DormError) as exc:
            raise MigrationError(
                f"cannot read the version of tenant {tenant!r}: {exc}", tenant=tenant
            ) from exc
        current = max(applied, default=None) if applied else None
        if current == self._head and set(applied or ()) <= self._known:
            revision = _format_version(current)
            return MigrationResult(
                tenant, revision, revision, time.perf_counter() - started, skipped=True
            )

        from_version = self._prepare(tenant, engine)
        previous = from_version
        ran = False
        for version, statements in self._versions:
            if from_version is not None and version <= from_version:
                continue
            ran = self._apply(tenant, engine, version, statements, previous) or ran
            previous = version

        return MigrationResult(
            tenant,
            _format_version(from_version),
            _format_version(self._head),
            time.perf_counter() - started,
            skipped=not ran,
        )

    # -- beyond the protocol -----------------------------------------------

    def describe(self, tenant: str, engine: Engine) -> TenantStatus:
        """Return the tenant's version and how it compares with head, reading only."""
        require_sync_sqlite(engine)
        with read_only_query(engine) as query:
            tables = read_tables(query)
            applied = _read_applied(query, tables)
        current = max(applied, default=None) if applied else None

        if applied is not None and not set(applied) <= self._known:
            state = "unknown revision"
        elif current == self._head:
            state = "at head"
        elif applied is None and user_tables(tables, MIGRATIONS_TABLE):
            state = "unversioned"
        elif current is None:
            state = "empty"
        else:
            state = "behind"
        return TenantStatus(tenant, _format_version(current), self.heads(), state)

    def fingerprint(self) -> str:
        """Return a hash of every version's statements, which names the template database."""
        digest = hashlib.sha256(b"dorm-dict\0")
        for version, statements in self._versions:
            digest.update(f"{version}\0".encode())
            for statement in statements:
                digest.update(statement.encode() + b"\0")
        return digest.hexdigest()[:16]

    def template_path(self, directory: str | os.PathLike[str]) -> Path:
        """Return a database file at head in ``directory``, building it on first use."""
        return ensure_template(self, Path(directory))

    # -- internals -----------------------------------------------------------

    def _resolve_stamp(self, stamp: str | None) -> int | None:
        if stamp is None:
            return None
        if stamp == "head":
            return self._head
        if stamp.isdigit() and int(stamp) in self._known:
            return int(stamp)
        raise MigrationError(
            f"stamp_unversioned={stamp!r} is not one of the versions "
            f"{sorted(self._known)}: pass 'head' or one of them",
            revision=stamp,
        )

    def _prepare(self, tenant: str, engine: Engine) -> int | None:
        """Check the tenant's versions, stamp it if unversioned, and return its version."""
        try:
            with migration_transaction(engine, tenant) as connection:
                query = connection_query(connection)
                tables = read_tables(query)
                applied = _read_applied(query, tables)

                unknown = sorted(set(applied or ()) - self._known)
                if unknown:
                    raise MigrationError(
                        f"tenant {tenant!r} has version {unknown[-1]} applied, "
                        f"which the migrations dict (versions {sorted(self._known)}) "
                        "does not contain: this code is older than the database. "
                        "Deploy the code that contains that version",
                        tenant=tenant,
                        revision=str(unknown[-1]),
                    )

                found = user_tables(tables, MIGRATIONS_TABLE)
                if applied is None and found:
                    self._stamp(tenant, connection, found)
                    applied = _read_applied(query)
        except MigrationError:
            raise
        except (SQLAlchemyError, DormError) as exc:
            raise MigrationError(
                f"cannot prepare the upgrade of tenant {tenant!r}: {exc}; the "
                "tenant is unchanged, and opening it again retries",
                tenant=tenant,
            ) from exc

        return max(applied, default=None) if applied else None

    def _stamp(self, tenant: str, connection: Connection, found: list[str]) -> None:
        if self._stamp_version is None:
            listed = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise MigrationError(
                f"tenant {tenant!r} has tables ({listed}) but no {MIGRATIONS_TABLE} "
                "table, so its version is unknown: compare its schema with the "
                "migrations, then pass stamp_unversioned='<version>' (or 'head' "
                "when it was made by metadata.create_all() at head) to make_migrator()",
                tenant=tenant,
            )

        logger.info(
            "tenant %s: has tables but no %s; stamping version %d",
            tenant,
            MIGRATIONS_TABLE,
            self._stamp_version,
        )
        connection.exec_driver_sql(_CREATE_MIGRATIONS_TABLE)
        now = _utc_now()
        for version in sorted(self._known):
            if version <= self._stamp_version:
                connection.exec_driver_sql(_RECORD_APPLIED, (version, now))

    def _apply(
        self,
        tenant: str,
        engine: Engine,
        version: int,
        statements: tuple[str, ...],
        previous: int | None,
    ) -> bool:
        """Apply one version in its own transaction; return False if it was applied meanwhile."""
        try:
            with migration_transaction(engine, tenant) as connection:
                query = connection_query(connection)
                applied = _read_applied(query) or ()
                if applied and max(applied) >= version:
                    return False

                logger.info(
                    "tenant %s: upgrade %s -> %d",
                    tenant,
                    _format_version(max(applied, default=None)) or "base",
                    version,
                )
                self._run_statements(tenant, connection, version, statements, previous)
                raise_on_foreign_key_violations(query, tenant, str(version))
                connection.exec_driver_sql(_CREATE_MIGRATIONS_TABLE)
                connection.exec_driver_sql(_RECORD_APPLIED, (version, _utc_now()))
        except MigrationError as exc:
            if exc.revision == str(version):
                self._record_failure(tenant, engine, version, str(exc))
            raise
        except (SQLAlchemyError, DormError) as exc:
            raise MigrationError(
                f"upgrade of tenant {tenant!r} to version {version} failed: {exc}; "
                "the tenant is unchanged, and opening it again retries",
                tenant=tenant,
                revision=str(version),
            ) from exc
        return True

    def _run_statements(
        self,
        tenant: str,
        connection: Connection,
        version: int,
        statements: tuple[str, ...],
        previous: int | None,
    ) -> None:
        for index, statement in enumerate(statements):
            try:
                connection.exec_driver_sql(statement)
            except SQLAlchemyError as exc:
                cause = getattr(exc, "orig", None) or exc
                raise MigrationError(
                    f"upgrade of tenant {tenant!r} failed in version {version}, "
                    f"statement {index + 1} of {len(statements)} "
                    f"({' '.join(statement.split())[:80]!r}): {cause}. The tenant is "
                    f"unchanged at version {_format_version(previous) or 'base'} and "
                    f"the error is recorded in {MIGRATIONS_TABLE}; fix the statement, "
                    "and opening the tenant again retries",
                    tenant=tenant,
                    revision=str(version),
                ) from exc

    def _record_failure(self, tenant: str, engine: Engine, version: int, error: str) -> None:
        # Runs after the version's transaction rolled back, in a transaction
        # of its own, so that the record survives the rollback.
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(_CREATE_MIGRATIONS_TABLE)
                connection.exec_driver_sql(_RECORD_FAILED, (version, error, _utc_now()))
        except (SQLAlchemyError, DormError) as exc:
            logger.warning(
                "tenant %s: could not record the failure of version %d in %s: %s",
                tenant,
                version,
                MIGRATIONS_TABLE,
                exc,
            )
