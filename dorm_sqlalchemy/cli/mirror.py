"""The ``mirror`` commands: ``mirror status`` and ``mirror rebuild``.

The aggregate databases come from ``--aggregate URL`` (repeatable) or the
``DORM_MIRROR`` environment variable (URLs separated by spaces).
"""

from __future__ import annotations

from rich.table import Table

from ..mirror import Mirror
from .command import ArgumentParser, Command, UsageError, seconds_argument, tenant_argument, unique
from .context import Context

__all__ = ["COMMAND", "ENV_MIRROR"]

ENV_MIRROR = "DORM_MIRROR"


def add_mirror_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--aggregate",
        metavar="URL",
        action="append",
        default=[],
        help="aggregate database URL, such as sqlite:///aggregate.db or "
        f"postgresql+psycopg://user@host/db; repeat for several (default: ${ENV_MIRROR})",
    )
    parser.add_argument(
        "--exclude",
        metavar="TABLE",
        action="append",
        default=[],
        help="table that is not mirrored; repeat for several",
    )
    parser.add_argument(
        "--tenant-column",
        metavar="NAME",
        default="tenant",
        help="column of the aggregate tables that contains the tenant name (default: tenant)",
    )
    parser.add_argument(
        "tenants",
        metavar="NAME",
        nargs="*",
        type=tenant_argument,
        help="tenants to act on (default: every tenant)",
    )


def add_rebuild_arguments(parser: ArgumentParser) -> None:
    add_mirror_arguments(parser)
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds_argument,
        default=600.0,
        help="seconds to wait for the aggregates to be rebuilt (default: 600)",
    )


def _open_mirror(context: Context) -> Mirror:
    args = context.args
    urls = list(args.aggregate) or context.environ.get(ENV_MIRROR, "").split()
    if not urls:
        raise UsageError(f"no aggregate database: pass --aggregate URL or set ${ENV_MIRROR}")
    dorm = context.open_dorm()
    try:
        return Mirror(dorm, urls, exclude=args.exclude, tenant_column=args.tenant_column)
    except ValueError as error:
        raise UsageError(str(error)) from error


def run_status(context: Context) -> int:
    mirror = _open_mirror(context)
    names = unique(context.args.tenants) or None
    for name in names or []:
        context.require_tenant(name)
    try:
        rows = mirror.status(names)
    finally:
        mirror.close(0)

    table = Table(title=None)
    for heading in ("tenant", "pending", "oldest (s)", *[f"position @{a.display_url}" for a in mirror.aggregates]):
        table.add_column(heading, overflow="fold")
    for row in rows:
        positions = ["-" if position is None else str(position) for position in row.positions]
        table.add_row(row.tenant, str(row.pending), f"{row.oldest_age:.1f}", *positions)
    context.console.print(table)
    for error in sorted({row.last_error for row in rows if row.last_error}):
        context.notice(f"last error: {error}")
    behind = [row.tenant for row in rows if row.pending]
    if behind:
        context.notice(f"{len(behind)} tenant(s) with pending changes: {', '.join(behind)}")
    return 0


def run_rebuild(context: Context) -> int:
    mirror = _open_mirror(context)
    names = unique(context.args.tenants) or None
    for name in names or []:
        context.require_tenant(name)
    mirror.start()
    try:
        mirror.rebuild(names, timeout=context.args.timeout)
    finally:
        mirror.close(context.args.timeout)
    count = len(names) if names else len(list(context.open_dorm().tenants()))
    context.notice(f"rebuilt the aggregates from {count} tenant(s)")
    return 0


COMMAND = Command(
    "mirror",
    "inspect or rebuild the aggregate databases",
    subcommands=(
        Command(
            "status",
            "print each tenant's pending changes and position in each aggregate",
            run=run_status,
            add_arguments=add_mirror_arguments,
        ),
        Command(
            "rebuild",
            "recompute the aggregates from the tenants and wait until done",
            run=run_rebuild,
            add_arguments=add_rebuild_arguments,
            description="Delete the tenants' rows from every aggregate and copy them "
            "again from the tenant databases. Without tenant names, rows of tenants "
            "that no longer exist are removed too.",
        ),
    ),
)
