"""Migrations for dorm-sqlalchemy: just-in-time upgrades, migrate-all and Alembic helpers.

The registry builds a :class:`Migrator` with :func:`make_migrator` and calls
``migrator.upgrade(tenant, engine)`` once per tenant and process, before the
application gets the tenant's engine::

    migrator = make_migrator("migrations")          # Alembic script directory
    migrator = make_migrator({1: ["CREATE TABLE notes (id INTEGER PRIMARY KEY)"]})
    result = migrator.upgrade("acme", engine)      # MigrationResult, or MigrationError

:func:`migrate_all` and :func:`status` cover many tenants at once,
:func:`init_script_directory` creates a script directory whose ``env.py``
works both just in time and with the ``alembic`` command, and
:meth:`AlembicMigrator.template_path` with :func:`copy_template` lets new
tenants start from a database already at head.
"""

from __future__ import annotations

import logging

from .bulk import migrate_all, status
from .conventions import NAMING_CONVENTION
from .dict_migrations import MIGRATIONS_TABLE, DictMigrator
from .engine import create_migration_engine
from .migrator import Migrator, make_migrator
from .result import MigrationReport, MigrationResult, StatusReport, TenantStatus
from .runtime import AlembicMigrator
from .scaffold import ScriptDirectoryExists, init_script_directory
from .template_db import copy_template

# Silent unless the application configures logging, as the logging HOWTO
# recommends for libraries: without it, Python's last-resort handler would
# print this package's warnings to stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AlembicMigrator",
    "DictMigrator",
    "MIGRATIONS_TABLE",
    "MigrationReport",
    "MigrationResult",
    "Migrator",
    "NAMING_CONVENTION",
    "ScriptDirectoryExists",
    "StatusReport",
    "TenantStatus",
    "copy_template",
    "create_migration_engine",
    "init_script_directory",
    "make_migrator",
    "migrate_all",
    "status",
]
