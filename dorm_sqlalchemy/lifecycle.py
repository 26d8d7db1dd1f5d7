"""Tenant lifecycle: create, drop, size, backup and migrate-all.

These functions take the registry and a canonical tenant name; the public
entry points are the methods of :class:`~dorm_sqlalchemy.Dorm`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DormError, TenantExists, TenantInUse, TenantNotFound
from .naming import TenantName, canonical_tenant

if TYPE_CHECKING:
    from .registry import Dorm

__all__ = ["create", "drop", "size", "backup", "migrate", "migration_status"]

logger = logging.getLogger(__name__)


def create(dorm: Dorm, tenant: TenantName, *, exist_ok: bool) -> TenantName:
    """Create the tenant's database file and bring it to head."""
    if dorm.storage.exists(tenant):
        if not exist_ok:
            raise TenantExists(tenant)
        dorm._open(tenant)
        return tenant

    dorm.storage.prepare(tenant)
    _forget_deleted(dorm, tenant)
    entry = dorm._open_slow(tenant, create=True)
    # Opening a connection creates the file and switches it to WAL.
    with entry.engine.connect():
        pass
    return tenant


def _forget_deleted(dorm: Dorm, tenant: TenantName) -> None:
    """Drop the cached engine of a tenant whose file another process deleted.

    That engine opens the file without creating it, so the tenant could not
    be created again while the engine stays in the cache.
    """
    with dorm._open_lock(tenant):
        entry = dorm._engines.get(tenant)
        if entry is None or not entry.file_exists or dorm.storage.exists(tenant):
            return
        dorm._engines.pop(tenant)
        dorm._migrated.discard(tenant)
    logger.info("tenant %s: database file gone, engine forgotten", tenant)
    dorm._retire(entry)


def drop(dorm: Dorm, tenant: TenantName, *, missing_ok: bool) -> None:
    """Dispose the tenant's engines and delete its database files.

    Runs under the tenant's open lock, so no thread opens it meanwhile. It
    marks every engine of the tenant (cached or retired) as dropped before
    counting their connections, so no checkout slips in before the files go.
    """
    with dorm._open_lock(tenant):
        entries = dorm._entries_of(tenant)
        in_use = sum(entry.mark_dropped() for entry in entries)
        if in_use:
            for entry in entries:
                entry.unmark_dropped()
            raise TenantInUse(tenant, in_use)

        cached = dorm._engines.pop(tenant)
        for entry in entries:
            if entry is cached:
                entry.retire()
                if entry.has_async_engine:
                    # Inside a running event loop the aiosqlite connections
                    # close in a task, after the files are gone. POSIX lets a
                    # file be deleted while connections to it are open.
                    dorm._dispose_async_engine(entry)
        dorm._migrated.discard(tenant)

        if not dorm.storage.exists(tenant):
            if missing_ok:
                return
            raise TenantNotFound(tenant, "there is nothing to drop")
        dorm.storage.remove(tenant)

    if dorm.mirror is not None:
        dorm.mirror.forget(tenant)
    logger.info("tenant %s: dropped", tenant)


def size(dorm: Dorm, tenant: TenantName) -> int:
    if not dorm.storage.exists(tenant):
        raise TenantNotFound(tenant)
    return dorm.storage.size(tenant)


def backup(dorm: Dorm, tenant: TenantName, path: Path, *, overwrite: bool) -> Path:
    """Copy a tenant with SQLite's backup API into ``path``, atomically."""
    if not dorm.storage.exists(tenant):
        raise TenantNotFound(tenant, "there is nothing to back up")
    path = Path(os.path.abspath(path))
    if path.is_dir():
        raise DormError(
            f"backup of tenant {tenant!r} not written: {path} is a directory; "
            "give the path of the backup file, such as "
            f"{path / (tenant + '.db')}",
            tenant=tenant,
        )
    if path.exists() and not overwrite:
        raise DormError(
            f"backup of tenant {tenant!r} not written: {path} already exists; "
            "pass overwrite=True to replace it",
            tenant=tenant,
        )
    if dorm.path(tenant) is not None and path == dorm.path(tenant):
        raise DormError(
            f"backup of tenant {tenant!r} not written: {path} is the tenant's own "
            "database file; choose another path",
            tenant=tenant,
        )
    if not path.parent.is_dir():
        raise DormError(
            f"backup of tenant {tenant!r} not written: directory {path.parent} "
            "does not exist",
            tenant=tenant,
        )

    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(descriptor)
    try:
        _copy_database(dorm, tenant, Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.info("tenant %s: backed up to %s", tenant, path)
    return path


def _copy_database(dorm: Dorm, tenant: TenantName, target: Path) -> None:
    try:
        source = dorm.storage.connect(tenant, create=False)
    except sqlite3.OperationalError as error:
        if not dorm.storage.exists(tenant):
            raise TenantNotFound(tenant, "it was dropped before the backup could open it") from error
        raise
    try:
        source.execute(f"PRAGMA busy_timeout = {dorm.settings.busy_timeout_ms:d}")
        destination = sqlite3.connect(target, isolation_level=None)
        try:
            # pages=-1 copies everything in one step under one read
            # transaction, so the copy is a single consistent snapshot; in WAL
            # mode writers keep going meanwhile.
            source.backup(destination, pages=-1)
            # The copy is a standalone file: no -wal next to it.
            destination.execute("PRAGMA journal_mode = DELETE")
        finally:
            destination.close()
    finally:
        source.close()


def _engine_without_upgrade(dorm: Dorm, tenant: TenantName) -> Any:
    entry = dorm._engines.get(tenant)
    if entry is None:
        entry = dorm._open_slow(tenant, create=False, upgrade=False)
    return entry.engine


def _existing_names(dorm: Dorm, tenants: Sequence[str] | None, action: str) -> list[TenantName]:
    if dorm._migrator is None:
        raise DormError(
            "this registry has no migrations: pass migrations= (an Alembic script "
            "directory or numbered SQL lists) to Dorm()"
        )
    names = list(dorm.tenants()) if tenants is None else [canonical_tenant(t) for t in tenants]
    for name in names:
        if not dorm.storage.exists(name):
            raise TenantNotFound(name, f"{action} covers existing tenants only")
    return names


def migration_status(dorm: Dorm, tenants: Sequence[str] | None, **options: Any) -> Any:
    """Describe each listed tenant's revision against head, without writing."""
    from alembic_ext import status

    names = _existing_names(dorm, tenants, "migration_status()")
    return status(dorm._migrator, names, lambda name: _engine_without_upgrade(dorm, name), **options)


def migrate(dorm: Dorm, tenants: Sequence[str] | None, **options: Any) -> Any:
    """Bring every listed tenant (all when ``None``) to head."""
    from alembic_ext import migrate_all

    names = _existing_names(dorm, tenants, "migrate()")
    report = migrate_all(dorm._migrator, names, lambda name: _engine_without_upgrade(dorm, name), **options)
    for result in getattr(report, "results", []):
        if getattr(result, "error", None) is None:
            dorm._migrated.add(result.tenant)
    return report
