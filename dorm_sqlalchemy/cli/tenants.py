"""Tenant lifecycle commands: ``tenants``, ``create``, ``drop``, ``size`` and ``backup``.

``create`` and ``drop`` take several names and check them all before changing
anything: when one name is rejected, no tenant is created or dropped.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TenantNotFound
from ..naming import TenantName
from ..registry import Dorm
from .command import ArgumentParser, Command, CommandError, UsageError, tenant_argument, unique
from .context import Context
from .output import format_size

__all__ = ["COMMANDS"]

_HUMAN_HELP = "print sizes in B, KiB, MiB, GiB (powers of 1024) instead of bytes"


def _tenants_phrase(names: list[TenantName]) -> str:
    quoted = ", ".join(repr(name) for name in names)
    return f"tenant {quoted}" if len(names) == 1 else f"tenants {quoted}"


# -- tenants -------------------------------------------------------------------


def add_tenants_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        action="store_true",
        help="print each tenant's size in bytes after its name, separated by a tab "
        "(the database file plus its write-ahead log)",
    )
    parser.add_argument("--human", action="store_true", help=_HUMAN_HELP + "; implies --sizes")


def run_tenants(context: Context) -> int:
    args = context.args
    dorm = context.open_dorm()
    names = list(dorm.tenants())
    if not names:
        context.notice(f"no tenants in {dorm.storage.describe()}")
        return 0

    show_sizes = args.sizes or args.human
    for name in names:
        if not show_sizes:
            context.echo(name)
            continue
        try:
            size = dorm.size(name)
        except TenantNotFound:
            # Dropped by another process since the directory was listed.
            continue
        context.echo(f"{name}\t{format_size(size, human=args.human)}")
    return 0


# -- create --------------------------------------------------------------------


def add_create_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "names",
        metavar="NAME",
        nargs="+",
        type=tenant_argument,
        help="tenant names; letters are folded to lower case",
    )
    parser.add_argument(
        "--exist-ok",
        action="store_true",
        help="keep tenants that already exist instead of failing",
    )


def run_create(context: Context) -> int:
    args = context.args
    names = unique(args.names)
    dorm = context.open_dorm()

    existing = [name for name in names if dorm.exists(name)]
    if existing and not args.exist_ok:
        verb = "exists" if len(existing) == 1 else "exist"
        raise CommandError(
            f"{_tenants_phrase(existing)} already {verb}, so no tenant was created: "
            "pass --exist-ok to keep existing tenants, or drop them first"
        )

    for name in names:
        dorm.create(name, exist_ok=True)
        if name in existing:
            context.echo(f"{name} already exists")
        else:
            context.echo(f"created {name} at {dorm.path(name)}")
    return 0


# -- drop ----------------------------------------------------------------------


def add_drop_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("names", metavar="NAME", nargs="+", type=tenant_argument, help="tenant names")
    parser.add_argument(
        "--missing-ok",
        action="store_true",
        help="skip tenants that do not exist instead of failing",
    )
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="drop without asking; required when stdin is not a terminal",
    )


def run_drop(context: Context) -> int:
    args = context.args
    names = unique(args.names)
    dorm = context.open_dorm()

    missing = [name for name in names if not dorm.exists(name)]
    if missing and not args.missing_ok:
        verb = "does" if len(missing) == 1 else "do"
        raise CommandError(
            f"{_tenants_phrase(missing)} {verb} not exist, so no tenant was dropped: "
            "check the names with 'dorm tenants', or pass --missing-ok to skip missing tenants"
        )

    present = [name for name in names if name not in missing]
    if present and not args.yes:
        _confirm_drop(context, dorm, present)

    for name in names:
        if name in missing:
            context.echo(f"{name} does not exist, skipped")
            continue
        dorm.drop(name, missing_ok=True)
        context.echo(f"dropped {name}")
    return 0


def _confirm_drop(context: Context, dorm: Dorm, names: list[TenantName]) -> None:
    if not context.stdin_is_terminal():
        raise UsageError(
            "drop deletes database files and needs confirmation, but stdin is not a "
            "terminal: pass --yes to drop without asking; no tenant was dropped"
        )

    for name in names:
        context.stderr.write(f"  {name}: {dorm.path(name)}\n")
    count_text = "1 tenant" if len(names) == 1 else f"{len(names)} tenants"
    answer = context.ask(f"Drop {count_text} and delete the database files listed above? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("drop cancelled: no tenant was dropped")


# -- size ----------------------------------------------------------------------


def add_size_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=tenant_argument, help="tenant name")
    parser.add_argument("--human", action="store_true", help=_HUMAN_HELP)


def run_size(context: Context) -> int:
    args = context.args
    dorm = context.open_dorm()
    context.require_tenant(args.name)
    context.echo(format_size(dorm.size(args.name), human=args.human))
    return 0


# -- backup --------------------------------------------------------------------


def add_backup_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=tenant_argument, help="tenant name")
    parser.add_argument(
        "path",
        metavar="PATH",
        type=Path,
        help="file to write; an existing directory receives NAME.db",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace PATH if it exists (the replacement is atomic)",
    )


def run_backup(context: Context) -> int:
    args = context.args
    dorm = context.open_dorm()
    context.require_tenant(args.name)

    target = _backup_target(dorm, args.name, args.path)
    if target.exists() and not args.overwrite:
        raise CommandError(
            f"backup of tenant {args.name!r} not written: {target} already exists; "
            "pass --overwrite to replace it"
        )
    written = dorm.backup(args.name, target, overwrite=args.overwrite)
    context.echo(f"backed up {args.name} to {written}")
    return 0


def _backup_target(dorm: Dorm, tenant: TenantName, path: Path) -> Path:
    if path.is_dir():
        path = path / f"{tenant}.db"

    # Replacing the live file would leave its -wal file describing another database.
    database = dorm.path(tenant)
    if database is not None and path.resolve() == database.resolve():
        raise UsageError(
            f"backup path {str(path)!r} is the database file of tenant {tenant!r} "
            "itself: choose a path outside the tenant files"
        )
    return path


COMMANDS: tuple[Command, ...] = (
    Command(
        "tenants",
        "list tenant names, one per line",
        run=run_tenants,
        add_arguments=add_tenants_arguments,
        description="List the existing tenants, sorted, one name per line, without "
        "opening their databases.",
    ),
    Command(
        "create",
        "create tenant databases",
        run=run_create,
        add_arguments=add_create_arguments,
        description="Create an empty database for each NAME. When a NAME already "
        "exists and --exist-ok is not given, nothing is created.",
    ),
    Command(
        "drop",
        "delete tenant databases",
        run=run_drop,
        add_arguments=add_drop_arguments,
        description="Delete the database of each NAME with its -wal and -shm files. "
        "Asks for confirmation on a terminal; pass --yes in scripts. When a NAME "
        "does not exist and --missing-ok is not given, nothing is dropped.",
    ),
    Command(
        "size",
        "print the size of a tenant database in bytes",
        run=run_size,
        add_arguments=add_size_arguments,
        description="Print the bytes the tenant's database takes on disk: the "
        "database file plus its write-ahead log.",
    ),
    Command(
        "backup",
        "copy a tenant database to a file",
        run=run_backup,
        add_arguments=add_backup_arguments,
        description="Copy the tenant's database to PATH with SQLite's online backup "
        "API. The copy is one consistent snapshot even while other processes "
        "write, and it is a standalone file with no -wal file next to it.",
    ),
)
