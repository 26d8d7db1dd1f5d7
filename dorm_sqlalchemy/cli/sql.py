"""The ``sql`` command: run one SQL statement on one existing tenant and print the result."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exc as sa_exc

from ..cursor import Cursor
from .command import ArgumentParser, Command, CommandError, tenant_argument
from .context import Context
from .errors import driver_message
from .output import print_table, write_csv, write_json

__all__ = ["COMMAND"]


def _print_table(context: Context, cursor: Cursor) -> None:
    print_table(context.console, cursor)


def _write_json(context: Context, cursor: Cursor) -> None:
    write_json(context.stdout, cursor)


def _write_csv(context: Context, cursor: Cursor) -> None:
    write_csv(context.stdout, cursor)


_WRITERS: dict[str, Callable[[Context, Cursor], None]] = {
    "table": _print_table,
    "json": _write_json,
    "csv": _write_csv,
}


def add_sql_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "tenant",
        metavar="NAME",
        type=tenant_argument,
        help="tenant to run the statement on; it must exist",
    )
    parser.add_argument(
        "statement",
        metavar="SQL",
        help="one SQL statement; '-' reads the statement from stdin",
    )
    parser.add_argument(
        "-p",
        "--param",
        dest="params",
        metavar="VALUE",
        action="extend",
        nargs="+",
        default=[],
        help="values for the '?' placeholders, in order, bound as text (SQLite "
        "converts them by column affinity; use CAST(? AS INTEGER) elsewhere); "
        "repeat the option or list several values; write --param=-x for a value "
        "starting with '-'",
    )
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="print the rows as a JSON array of objects, one row per line; "
        'BLOBs become {"$base64": "..."}',
    )
    formats.add_argument(
        "--csv",
        dest="format",
        action="store_const",
        const="csv",
        help="print a header line and the rows as CSV; NULL becomes an empty "
        "field and BLOBs become base64 text",
    )
    parser.set_defaults(format="table")


def run_sql(context: Context) -> int:
    args = context.args
    statement = _read_statement(context, args.statement)
    dorm = context.open_dorm()
    context.require_tenant(args.tenant)

    try:
        with dorm.exec(args.tenant, statement, *args.params) as cursor:
            _WRITERS[args.format](context, cursor)
    except sa_exc.DBAPIError as error:
        raise CommandError(
            f"SQL statement failed on tenant {args.tenant!r}: {driver_message(error)}"
        ) from error
    return 0


def _read_statement(context: Context, statement: str) -> str:
    if statement != "-":
        return statement
    if context.stdin is None:
        raise CommandError("SQL '-' reads the statement from stdin, but there is no stdin")
    return context.stdin.read()


COMMAND = Command(
    "sql",
    "run one SQL statement on a tenant and print the result",
    run=run_sql,
    add_arguments=add_sql_arguments,
    description="Run one SQL statement on an existing tenant, in its own "
    "transaction. Rows are printed as a table (or JSON or CSV); a statement "
    "without result rows prints how many rows it wrote. An unknown tenant is "
    "an error: this command never creates a tenant.",
)
