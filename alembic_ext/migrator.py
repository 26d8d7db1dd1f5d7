"""The hook the registry calls to bring a tenant to head, and the factory that builds it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine

from .config import resolve_script_location
from .dict_migrations import DictMigrator
from .result import MigrationResult
from .runtime import AlembicMigrator

__all__ = ["Migrator", "make_migrator"]


@runtime_checkable
class Migrator(Protocol):
    """Brings tenant databases to the head revision.

    ``engine`` is always a synchronous pysqlite engine of the tenant's file,
    even for async applications, and no method needs an event loop.
    """

    def upgrade(self, tenant: str, engine: Engine) -> MigrationResult:
        """Bring the tenant to head, or raise ``MigrationError`` and leave it unchanged.

        A tenant already at head returns ``skipped=True`` after a read-only
        check of its version. Safe to call from several threads and processes for
        the same tenant: each revision is applied once.
        """
        ...

    def current(self, tenant: str, engine: Engine) -> str | None:
        """Return the tenant's revision, or None at base. Never writes."""
        ...

    def heads(self) -> tuple[str, ...]:
        """Return the head revisions, sorted."""
        ...


def make_migrator(
    migrations: str | os.PathLike[str] | Mapping[int, Sequence[str]],
    *,
    stamp_unversioned: str | None = None,
) -> AlembicMigrator | DictMigrator:
    """Build the Migrator for ``migrations``.

    ``migrations`` is an Alembic script directory (a folder with ``env.py``
    and ``versions/``), an ``alembic.ini`` whose ``script_location`` points to
    one, a folder holding such an ``alembic.ini``, or a DORM-style dict
    ``{1: ["CREATE TABLE ..."], 2: [...]}``.

    A database with tables but no version table raises ``MigrationError`` on
    upgrade unless ``stamp_unversioned`` names the revision to record for it
    (``"head"`` for files made by ``metadata.create_all()`` at head).
    """
    if isinstance(migrations, Mapping):
        return DictMigrator(migrations, stamp_unversioned=stamp_unversioned)
    if isinstance(migrations, (str, os.PathLike)):
        location = resolve_script_location(migrations)
        return AlembicMigrator(location, stamp_unversioned=stamp_unversioned)
    raise TypeError(
        "migrations must be an Alembic script directory, an alembic.ini path, "
        f"or a dict of version -> SQL statements, got {type(migrations).__name__}"
    )
