"""The migration commands: ``migrate``, ``status`` and ``init-migrations``.

The migrations come from ``--migrations DIR`` (an Alembic script directory,
or a folder or file with an ``alembic.ini``) or the ``DORM_MIGRATIONS``
environment variable.
"""

from __future__ import annotations

import os

from .command import ArgumentParser, Command, UsageError, tenant_argument, unique
from .context import Context, resolve_location

__all__ = ["COMMANDS", "ENV_MIGRATIONS"]

ENV_MIGRATIONS = "DORM_MIGRATIONS"


def _positive_int(value: str) -> int:
    import argparse

    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}: give an integer >= 1")
    return number


def add_migrations_argument(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--migrations",
        metavar="DIR",
        default=None,
        help="Alembic script directory, or the alembic.ini that points to it "
        f"(default: ${ENV_MIGRATIONS})",
    )
    parser.add_argument(
        "--tenant",
        dest="tenants",
        metavar="NAME",
        action="append",
        type=tenant_argument,
        default=[],
        help="tenant to act on; repeat for several (default: every tenant)",
    )
    parser.add_argument(
        "--jobs",
        metavar="N",
        type=_positive_int,
        default=4,
        help="tenants handled at the same time (default: 4)",
    )


def add_migrate_arguments(parser: ArgumentParser) -> None:
    add_migrations_argument(parser)
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help="show a progress bar (default: only when stderr is a terminal)",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )


def _migrations(context: Context) -> str:
    value = context.args.migrations or context.environ.get(ENV_MIGRATIONS)
    if not value:
        raise UsageError(f"no migrations: pass --migrations DIR or set ${ENV_MIGRATIONS}")
    if not os.path.exists(value):
        raise UsageError(f"invalid --migrations {value!r}: no such file or directory")
    return value


def run_migrate(context: Context) -> int:
    dorm = context.open_dorm(migrations=_migrations(context))
    names = unique(context.args.tenants) or None
    for name in names or []:
        context.require_tenant(name)
    report = dorm.migrate(names, jobs=context.args.jobs, progress=context.args.progress)
    context.echo(report.render())
    return 1 if report.failed else 0


def run_status(context: Context) -> int:
    dorm = context.open_dorm(migrations=_migrations(context))
    names = unique(context.args.tenants) or None
    for name in names or []:
        context.require_tenant(name)
    report = dorm.migration_status(names, jobs=context.args.jobs)
    context.echo(report.render())
    return 0


def add_init_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="folder to create the script directory in")
    parser.add_argument(
        "--ini",
        metavar="FILE",
        default=None,
        help="where to write alembic.ini (default: next to DIR, in its parent folder)",
    )
    parser.add_argument(
        "--reference-url",
        metavar="URL",
        default=None,
        help="database that 'alembic revision --autogenerate' compares the models with",
    )
    parser.add_argument(
        "--target-metadata",
        metavar="MODULE:ATTRIBUTE",
        default=None,
        help="the models' MetaData, for example myapp.models:Base.metadata",
    )


def run_init(context: Context) -> int:
    from alembic_ext import init_script_directory

    location = resolve_location(context.args, context.environ)
    directory = init_script_directory(
        context.args.directory,
        url=location.url,
        root=location.root,
        reference_url=context.args.reference_url,
        target_metadata=context.args.target_metadata,
        ini_path=context.args.ini,
    )
    context.notice(f"created the script directory {directory}")
    context.notice(f"next: alembic revision -m 'first revision', then dorm migrate --migrations {directory}")
    return 0


COMMANDS: tuple[Command, ...] = (
    Command(
        "migrate",
        "bring tenants to the head revision, in parallel, and print a report",
        run=run_migrate,
        add_arguments=add_migrate_arguments,
        description="Upgrade every tenant (or the --tenant ones) to head. Tenants "
        "already at head are skipped after a read-only check. The exit status is 1 "
        "when any tenant failed; the others are still upgraded.",
    ),
    Command(
        "status",
        "print each tenant's revision against head",
        run=run_status,
        add_arguments=add_migrations_argument,
    ),
    Command(
        "init-migrations",
        "create an Alembic script directory for tenant databases",
        run=run_init,
        add_arguments=add_init_arguments,
    ),
)
