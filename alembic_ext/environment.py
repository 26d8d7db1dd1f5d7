"""Helpers for the ``env.py`` of a dorm script directory run by the Alembic command line.

The command line picks databases with ``-x`` arguments::

    alembic -x tenant=acme upgrade head          # one tenant
    alembic -x tenant=acme,globex current        # several tenants
    alembic -x tenant=all upgrade head           # every tenant file
    alembic -x url=sqlite:///ref.db revision --autogenerate -m "add items"

Tenant files are found through the ``[alembic]`` options of ``alembic.ini``:
``dorm.url`` is a URL template containing ``{tenant}`` (such as
``sqlite:///%(here)s/data/{tenant}.db``), or ``dorm.root`` is a directory of
``<tenant>.db`` files. Without ``-x tenant`` or ``-x url``, the database named
by ``dorm.reference_url`` is used, which suits ``revision --autogenerate``.
``dorm.busy_timeout`` (seconds, default 30) sets how long a tenant waits for
the application's writers.

Each tenant is migrated like the just-in-time path does it: one
``BEGIN IMMEDIATE`` transaction, foreign keys off and checked before commit.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.util import CommandError
from sqlalchemy import Connection, MetaData
from sqlalchemy.engine import URL, make_url

from dorm_sqlalchemy.errors import InvalidTenantName
from dorm_sqlalchemy.naming import canonical_tenant, is_valid_tenant

from .engine import create_migration_engine
from .inspection import (
    ALEMBIC_VERSION_TABLE,
    connection_query,
    read_alembic_versions,
    read_tables,
    user_tables,
)
from .transaction import migration_transaction, raise_on_foreign_key_violations

__all__ = [
    "Database",
    "TenantFiles",
    "include_name",
    "load_target_metadata",
    "run_for_tenants",
    "select_databases",
]

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 30.0

# Commands that may create a tenant file that does not exist yet.
_CREATING_COMMANDS = frozenset({"upgrade", "stamp"})


def load_target_metadata(config: Config) -> MetaData | None:
    """Import the MetaData named by ``dorm.target_metadata``, or return None.

    The option has the form ``package.module:attribute.path``, for example
    ``myapp.models:Base.metadata``. ``prepend_sys_path = .`` in alembic.ini
    makes modules next to it importable.
    """
    spec = config.get_main_option("dorm.target_metadata")
    if not spec:
        return None

    module_name, _, attribute_path = spec.strip().partition(":")
    if not module_name or not attribute_path:
        raise CommandError(
            f"dorm.target_metadata = {spec!r} is not of the form "
            "package.module:attribute, for example myapp.models:Base.metadata"
        )
    target: Any = importlib.import_module(module_name)
    for attribute in attribute_path.split("."):
        target = getattr(target, attribute)
    if not isinstance(target, MetaData):
        raise CommandError(
            f"dorm.target_metadata = {spec!r} names a {type(target).__name__}, "
            "not a sqlalchemy.MetaData"
        )
    return target


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Leave the library's own tables (``_dorm_*``) out of autogenerate."""
    if type_ == "table" and name is not None:
        return not name.startswith(("_dorm_", "sqlite_"))
    return True


@dataclass(frozen=True)
class TenantFiles:
    """Location of tenant databases: a sqlite URL whose file name contains ``{tenant}``."""

    url_template: URL

    @classmethod
    def from_config(cls, config: Config) -> TenantFiles:
        template = config.get_main_option("dorm.url")
        root = config.get_main_option("dorm.root")
        if template:
            url = make_url(template)
        elif root:
            url = URL.create("sqlite", database=str(Path(root) / "{tenant}.db"))
        else:
            raise CommandError(
                "alembic.ini sets neither dorm.url nor dorm.root, so tenant "
                "files cannot be found: add `dorm.url = sqlite:///%(here)s/"
                "dorm-data/{tenant}.db`, or pass -x url=URL"
            )

        database = url.database or ""
        if url.get_backend_name() != "sqlite" or "{tenant}" not in os.path.basename(database):
            raise CommandError(
                f"dorm.url = {url.render_as_string()!r} must be a sqlite URL whose "
                "file name contains {tenant}, such as sqlite:///data/{tenant}.db"
            )
        return cls(url)

    def url_for(self, tenant: str) -> URL:
        """Return the URL of a tenant's file; ``tenant`` must be canonical."""
        database = self.url_template.database or ""
        return self.url_template.set(database=database.replace("{tenant}", tenant))

    def list_tenants(self) -> list[str]:
        """Return the sorted tenants that have a file, skipping files that are no tenant."""
        directory, pattern = os.path.split(self.url_template.database or "")
        prefix, suffix = pattern.split("{tenant}", 1)
        folder = Path(directory or ".")
        if not folder.is_dir():
            return []

        names = []
        for entry in folder.iterdir():
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(suffix)):
                continue
            tenant = name[len(prefix) : len(name) - len(suffix)]
            # Template databases, partial copies and files of another naming
            # rule are not tenants.
            if tenant and is_valid_tenant(tenant) and canonical_tenant(tenant) == tenant:
                names.append(tenant)
        return sorted(names)


@dataclass(frozen=True)
class Database:
    """One database a command runs on: a tenant's file, or a URL given directly."""

    label: str
    url: URL
    tenant: str | None = None


def select_databases(config: Config, x_arguments: Mapping[str, str]) -> list[Database]:
    """Return the databases the command should run on, from ``-x`` and alembic.ini."""
    if "url" in x_arguments:
        url = make_url(x_arguments["url"])
        return [Database(f"database {url.render_as_string(hide_password=True)}", url)]

    selection = x_arguments.get("tenant")
    if selection is None:
        reference = config.get_main_option("dorm.reference_url")
        if reference:
            return [Database("reference database", make_url(reference))]
        raise CommandError(
            "no database selected: pass -x tenant=NAME, -x tenant=all or "
            "-x url=URL, or set dorm.reference_url in alembic.ini"
        )

    files = TenantFiles.from_config(config)
    if selection == "all":
        names = files.list_tenants()
    else:
        try:
            names = [canonical_tenant(name.strip()) for name in selection.split(",")]
        except InvalidTenantName as exc:
            raise CommandError(str(exc)) from exc
    return [Database(f"tenant {name}", files.url_for(name), name) for name in names]


def run_for_tenants(
    context: EnvironmentContext, run_migrations: Callable[[Connection], None]
) -> None:
    """Call ``run_migrations(connection)`` once per selected database.

    Each call runs inside one ``BEGIN IMMEDIATE`` transaction with foreign
    keys off, which commits only if the foreign key check passes. With several
    tenants, a failing tenant is logged, the others still run, and a
    CommandError listing the failures is raised at the end.
    """
    config = context.config
    x_arguments = context.get_x_argument(as_dictionary=True)
    databases = select_databases(config, x_arguments)
    command = _command_name(config)

    if len(databases) > 1 and getattr(config.cmd_opts, "autogenerate", False):
        raise CommandError(
            "revision --autogenerate compares the models with one database: "
            "pass -x tenant=NAME or -x url=URL instead of several tenants"
        )
    if not databases:
        config.print_stdout("no tenant files found")
        return

    busy_timeout = _busy_timeout(config, x_arguments)
    failures: list[str] = []
    for database in databases:
        config.print_stdout(database.label)
        # Revisions read the tenant's name here, as in the library's upgrades.
        config.attributes["dorm_tenant"] = database.tenant
        try:
            _prepare_file(database, command)
            _run_one(database, busy_timeout, command, run_migrations)
        except Exception as exc:
            # With one database the error goes to Alembic as it is. With
            # several, the remaining tenants still run and the failures are
            # listed at the end.
            if len(databases) == 1:
                raise
            logger.error("%s: %s failed: %s", database.label, command or "command", exc)
            failures.append(f"{database.tenant} ({type(exc).__name__}: {exc})")

    if failures:
        raise CommandError(
            f"{len(failures)} of {len(databases)} tenant(s) failed and were "
            f"rolled back: {'; '.join(failures)}"
        )


def _run_one(
    database: Database,
    busy_timeout: float,
    command: str | None,
    run_migrations: Callable[[Connection], None],
) -> None:
    name = database.tenant or database.label
    engine = create_migration_engine(database.url, busy_timeout=busy_timeout)
    try:
        with migration_transaction(engine, name) as connection:
            query = connection_query(connection)
            if command == "upgrade":
                _reject_unversioned(database, query)
            run_migrations(connection)
            raise_on_foreign_key_violations(query, name, None)
    finally:
        engine.dispose()


def _reject_unversioned(database: Database, query: Any) -> None:
    tables = read_tables(query)
    found = user_tables(tables, ALEMBIC_VERSION_TABLE)
    if read_alembic_versions(query, tables) is None and found:
        selection = f"tenant={database.tenant}" if database.tenant else f"url={database.url}"
        raise CommandError(
            f"{database.label} has tables ({', '.join(found[:5])}) but no "
            f"{ALEMBIC_VERSION_TABLE} table, so its revision is unknown: compare "
            f"its schema with the revisions, then run `alembic -x {selection} "
            "stamp <revision>` before upgrading"
        )


def _prepare_file(database: Database, command: str | None) -> None:
    """Reject a missing tenant file for read-only commands; create its folder otherwise."""
    name = database.url.database
    if not name or name == ":memory:" or database.url.query.get("mode") == "memory":
        return
    path = Path(name)
    if path.exists():
        return
    if database.tenant is not None and command is not None and command not in _CREATING_COMMANDS:
        raise CommandError(
            f"{database.label} has no database file at {path}: check the tenant "
            "name, or create the tenant with `upgrade`"
        )
    path.parent.mkdir(parents=True, exist_ok=True)


def _busy_timeout(config: Config, x_arguments: Mapping[str, str]) -> float:
    value = (
        x_arguments.get("busy_timeout")
        or config.get_main_option("dorm.busy_timeout")
        or str(DEFAULT_BUSY_TIMEOUT)
    )
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise CommandError(
            f"invalid busy timeout {value!r}: give the seconds to wait for the "
            "application's writers as a number >= 0 (dorm.busy_timeout or -x busy_timeout=)"
        )
    return seconds


def _command_name(config: Config) -> str | None:
    """Return the Alembic command being run (``upgrade``, ``current`` ...), if known."""
    command = getattr(config.cmd_opts, "cmd", None)
    if not command:
        return None
    return getattr(command[0], "__name__", None)
