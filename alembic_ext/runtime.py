"""Just-in-time upgrades of one tenant with an Alembic script directory.

:class:`AlembicMigrator` brings a tenant database to head the first time a
process opens it. The steps:

1. Read ``alembic_version`` on a raw DBAPI connection, outside any
   transaction. A tenant already at head returns at once, without the lock
   below and without loading Alembic's environment.
2. Take the process-wide Alembic lock. Alembic keeps the running environment
   in module globals (``alembic.context`` and ``alembic.op``), so two threads
   must never run ``env.py`` at the same time.
3. Open one ``BEGIN IMMEDIATE`` transaction with foreign keys off (see
   :mod:`alembic_ext.transaction`), then read the version again. Another
   process may have upgraded the tenant while this one waited for the lock.
4. Tell apart an empty database, one with tables but no ``alembic_version``
   (made by ``metadata.create_all()``), a versioned one, and one at a revision
   this code does not contain.
5. Run the script directory's ``env.py`` with the connection in
   ``config.attributes["connection"]``, check foreign keys, commit.

Any failure rolls the whole transaction back, so the tenant stays at the
revision it had, and raises :class:`~dorm_sqlalchemy.errors.MigrationError`
naming the tenant and the failing revision.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep, RevisionStep
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from dorm_sqlalchemy.errors import DormError, MigrationError

from .config import ScriptLocation
from .inspection import (
    ALEMBIC_VERSION_TABLE,
    connection_query,
    read_alembic_versions,
    read_only_query,
    read_tables,
    require_sync_sqlite,
    user_tables,
)
from .result import MigrationResult, TenantStatus, format_revisions
from .template_db import ensure_template
from .transaction import migration_transaction, raise_on_foreign_key_violations

__all__ = ["AlembicMigrator", "alembic_lock"]

logger = logging.getLogger(__name__)


class _AlembicLock:
    """Process-wide lock held while ``env.py`` runs.

    A revision that opens another tenant through the registry would start a
    second Alembic environment inside the first one and corrupt its module
    globals, so re-entry from the owning thread raises instead of deadlocking.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        if self._owner == threading.get_ident():
            raise MigrationError(
                f"tenant {tenant!r} was opened from inside another tenant's "
                "upgrade in the same thread, and Alembic cannot run two "
                "environments at once: do not open tenants from env.py or "
                "from a revision",
                tenant=tenant,
            )
        with self._lock:
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None


alembic_lock = _AlembicLock()


class _LoadedScripts:
    """A parsed script directory with its heads and a fingerprint of its revisions."""

    def __init__(self, script: ScriptDirectory) -> None:
        self.script = script
        self.heads = tuple(sorted(script.get_heads()))

        digest = hashlib.sha256(b"alembic\0")
        for revision in sorted(script.walk_revisions(), key=lambda rev: rev.revision):
            digest.update(revision.revision.encode() + b"\0")
            if revision.path and os.path.exists(revision.path):
                digest.update(Path(revision.path).read_bytes())
        # env.py decides how revisions run, so a changed one needs a new template.
        environment = Path(script.dir) / "env.py"
        if environment.exists():
            digest.update(b"env.py\0" + environment.read_bytes())
        self.fingerprint = digest.hexdigest()[:16]

    def contains(self, revision: str) -> bool:
        # get_revision() also resolves unique prefixes, so compare the full id.
        try:
            script = self.script.get_revision(revision)
        except CommandError:
            return False
        return script is not None and script.revision == revision


class _EnvironmentMisuse(MigrationError):
    """env.py did not run the migrations on the connection it was given."""


class _StepTracker:
    """Records which revision is running, so an error can name it."""

    def __init__(self) -> None:
        self.called = False
        self.running: MigrationStep | None = None

    @property
    def running_revision(self) -> str | None:
        if isinstance(self.running, RevisionStep):
            return self.running.revision.revision
        return None

    @property
    def running_description(self) -> str:
        if self.running is None:
            return "env.py"
        return f"revision {self.running_revision} ({self.running.doc or 'no message'})"


class AlembicMigrator:
    """Brings tenants to head with an Alembic script directory.

    Build it with :func:`alembic_ext.make_migrator`. ``stamp_unversioned`` is
    the revision to stamp on a database that has tables but no
    ``alembic_version``, for example ``"head"`` when such files were created by
    ``metadata.create_all()`` at head. Without it, such databases raise
    MigrationError.
    """

    def __init__(self, location: ScriptLocation, *, stamp_unversioned: str | None = None) -> None:
        self.location = location
        self.stamp_unversioned = stamp_unversioned
        self._load_lock = threading.Lock()
        self._loaded: _LoadedScripts | None = None

    def __repr__(self) -> str:
        return f"AlembicMigrator({str(self.location.directory)!r})"

    # -- the Migrator protocol ---------------------------------------------

    def heads(self) -> tuple[str, ...]:
        """Return the head revisions of the script directory, sorted."""
        return self._scripts().heads

    def current(self, tenant: str, engine: Engine) -> str | None:
        """Return the tenant's revision (``,``-joined on branches), reading only."""
        require_sync_sqlite(engine)
        with read_only_query(engine) as query:
            return format_revisions(read_alembic_versions(query))

    def upgrade(self, tenant: str, engine: Engine) -> MigrationResult:
        """Bring the tenant to head in one transaction, or raise MigrationError."""
        started = time.perf_counter()
        require_sync_sqlite(engine)
        loaded = self._scripts(tenant)

        try:
            with read_only_query(engine) as query:
                versions = read_alembic_versions(query)
        except (SQLAlchemyError, DormError) as exc:
            raise MigrationError(
                f"cannot read the revision of tenant {tenant!r}: {exc}",
                tenant=tenant,
            ) from exc
        if set(versions or ()) == set(loaded.heads):
            revision = format_revisions(versions)
            return MigrationResult(
                tenant, revision, revision, time.perf_counter() - started, skipped=True
            )

        with alembic_lock.hold(tenant):
            return self._upgrade_locked(tenant, engine, loaded, started)

    # -- beyond the protocol -----------------------------------------------

    def describe(self, tenant: str, engine: Engine) -> TenantStatus:
        """Return the tenant's revision and how it compares with head, reading only."""
        require_sync_sqlite(engine)
        loaded = self._scripts(tenant)
        with read_only_query(engine) as query:
            tables = read_tables(query)
            versions = read_alembic_versions(query, tables)
        current = format_revisions(versions)

        if set(versions or ()) == set(loaded.heads):
            state = "at head"
        elif versions is None and user_tables(tables, ALEMBIC_VERSION_TABLE):
            state = "unversioned"
        elif not versions:
            state = "empty"
        elif not all(loaded.contains(revision) for revision in versions):
            state = "unknown revision"
        else:
            state = "behind"
        return TenantStatus(tenant, current, loaded.heads, state)

    def fingerprint(self) -> str:
        """Return a hash of every revision file and env.py, which names the template database."""
        return self._scripts().fingerprint

    def template_path(self, directory: str | os.PathLike[str]) -> Path:
        """Return a database file at head in ``directory``, building it on first use.

        See :func:`alembic_ext.copy_template` for turning it into a tenant.
        """
        return ensure_template(self, Path(directory))

    # -- internals -----------------------------------------------------------

    def _scripts(self, tenant: str | None = None) -> _LoadedScripts:
        with self._load_lock:
            if self._loaded is None:
                try:
                    config = self.location.build_config()
                    self._loaded = _LoadedScripts(ScriptDirectory.from_config(config))
                except Exception as exc:
                    # Loading imports every revision file, which can raise
                    # anything (SyntaxError, ImportError, Alembic's CommandError).
                    raise MigrationError(
                        f"cannot load the Alembic script directory "
                        f"{self.location.directory}: {type(exc).__name__}: {exc}; "
                        "fix the revision files, then open the tenant again",
                        tenant=tenant,
                    ) from exc
            return self._loaded

    def _forget_scripts(self) -> None:
        # After a failed revision the next attempt re-reads the revision
        # files, so a revision fixed on disk is picked up without a restart.
        with self._load_lock:
            self._loaded = None

    def _upgrade_locked(
        self, tenant: str, engine: Engine, loaded: _LoadedScripts, started: float
    ) -> MigrationResult:
        try:
            with migration_transaction(engine, tenant) as connection:
                query = connection_query(connection)
                tables = read_tables(query)
                versions = read_alembic_versions(query, tables)
                from_revision = format_revisions(versions)
                to_revision = format_revisions(loaded.heads)

                if set(versions or ()) == set(loaded.heads):
                    # Another process upgraded the tenant while this one
                    # waited for the write lock.
                    return MigrationResult(
                        tenant,
                        from_revision,
                        from_revision,
                        time.perf_counter() - started,
                        skipped=True,
                    )

                self._check_known_revisions(tenant, loaded, versions or ())
                if versions is None and user_tables(tables, ALEMBIC_VERSION_TABLE):
                    self._stamp_unversioned(tenant, connection, loaded, tables)
                    from_revision = format_revisions(read_alembic_versions(query))

                logger.info(
                    "tenant %s: upgrade %s -> %s", tenant, from_revision or "base", to_revision
                )
                self._run_env(tenant, connection, loaded, from_revision)

                reached = read_alembic_versions(query)
                if set(reached or ()) != set(loaded.heads):
                    raise MigrationError(
                        f"env.py ran for tenant {tenant!r} but left it at "
                        f"{format_revisions(reached) or 'base'} instead of head "
                        f"{to_revision}: env.py must call context.run_migrations() "
                        "with the default version table (alembic_version)",
                        tenant=tenant,
                    )
                raise_on_foreign_key_violations(query, tenant, to_revision)
        except MigrationError:
            raise
        except (SQLAlchemyError, DormError) as exc:
            # For example TenantBusy when another writer held the lock for
            # longer than the busy timeout.
            raise MigrationError(
                f"upgrade of tenant {tenant!r} failed: {exc}; the tenant is "
                "unchanged, and opening it again retries the upgrade",
                tenant=tenant,
            ) from exc

        duration = time.perf_counter() - started
        logger.debug("tenant %s: at %s after %.3f s", tenant, to_revision, duration)
        return MigrationResult(tenant, from_revision, to_revision, duration)

    def _check_known_revisions(
        self, tenant: str, loaded: _LoadedScripts, versions: tuple[str, ...]
    ) -> None:
        for revision in versions:
            if not loaded.contains(revision):
                raise MigrationError(
                    f"tenant {tenant!r} is at revision {revision!r}, which the "
                    f"script directory {self.location.directory} does not "
                    "contain: this code is older than the database. Deploy the "
                    "code that contains that revision, or downgrade the tenant "
                    "with that code",
                    tenant=tenant,
                    revision=revision,
                )

    def _stamp_unversioned(
        self,
        tenant: str,
        connection: Connection,
        loaded: _LoadedScripts,
        tables: frozenset[str],
    ) -> None:
        found = user_tables(tables, ALEMBIC_VERSION_TABLE)
        if self.stamp_unversioned is None:
            listed = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise MigrationError(
                f"tenant {tenant!r} has tables ({listed}) but no "
                f"{ALEMBIC_VERSION_TABLE} table, so its revision is unknown: "
                "compare its schema with the revisions, then stamp it with "
                f"`alembic -x tenant={tenant} stamp <revision>`; if such "
                "databases were made by metadata.create_all() at head, pass "
                "stamp_unversioned='head' to make_migrator()",
                tenant=tenant,
            )

        logger.info(
            "tenant %s: has tables but no %s; stamping %s",
            tenant,
            ALEMBIC_VERSION_TABLE,
            self.stamp_unversioned,
        )
        try:
            MigrationContext.configure(connection).stamp(loaded.script, self.stamp_unversioned)
        except CommandError as exc:
            raise MigrationError(
                f"cannot stamp tenant {tenant!r} with stamp_unversioned="
                f"{self.stamp_unversioned!r}: {exc}; pass a revision id from "
                "`alembic history`, or 'head'",
                tenant=tenant,
                revision=self.stamp_unversioned,
            ) from exc

    def _run_env(
        self,
        tenant: str,
        connection: Connection,
        loaded: _LoadedScripts,
        from_revision: str | None,
    ) -> None:
        tracker = _StepTracker()
        script = loaded.script

        def upgrade_steps(revision: Any, context: MigrationContext) -> Iterator[MigrationStep]:
            tracker.called = True
            _require_connection(context, connection, tenant)
            # The same step list that alembic.command.upgrade builds.
            for step in script._upgrade_revs("heads", revision):
                tracker.running = step
                yield step
            tracker.running = None

        config = self.location.build_config(
            attributes={"connection": connection, "dorm_tenant": tenant}
        )
        try:
            with EnvironmentContext(
                config,
                script,
                fn=upgrade_steps,
                as_sql=False,
                starting_rev=None,
                destination_rev="heads",
                tag=None,
            ):
                script.run_env()
        except _EnvironmentMisuse:
            raise
        except Exception as exc:
            # The one place where errors of env.py and of revisions, which may
            # be of any type, become MigrationError. The caller rolls back.
            self._forget_scripts()
            raise MigrationError(
                f"upgrade of tenant {tenant!r} failed in "
                f"{tracker.running_description}: {type(exc).__name__}: {exc}. "
                f"The tenant is unchanged at {from_revision or 'base'}; fix the "
                "revision, and opening the tenant again retries the upgrade",
                tenant=tenant,
                revision=tracker.running_revision,
            ) from exc

        if not tracker.called:
            raise _EnvironmentMisuse(
                f"env.py in {self.location.directory} returned without calling "
                f"context.run_migrations() for tenant {tenant!r}: when "
                "config.attributes['connection'] is set, env.py must configure "
                "the context with that connection and run the migrations",
                tenant=tenant,
            )


def _require_connection(context: MigrationContext, connection: Connection, tenant: str) -> None:
    """Raise unless env.py configured Alembic with the connection it was given."""
    configured = context.connection
    if configured is not None and (
        configured is connection
        or configured.connection.driver_connection is connection.connection.driver_connection
    ):
        return
    raise _EnvironmentMisuse(
        f"env.py configured Alembic with another connection than the one "
        f"passed for tenant {tenant!r}, so the upgrade would run on the wrong "
        "database: in env.py, use config.attributes['connection'] when it is "
        "set (see alembic_ext/templates/dorm/env.py)",
        tenant=tenant,
    )
