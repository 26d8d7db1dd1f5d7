"""The ``schema sql`` command: print the DDL of a JSON Schema file."""

from __future__ import annotations

from .command import ArgumentParser, Command
from .context import Context

__all__ = ["COMMAND"]


def add_sql_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="JSON file with one table schema or a list of them"
    )
    parser.add_argument(
        "--if-not-exists",
        action="store_true",
        help="write CREATE TABLE IF NOT EXISTS and CREATE INDEX IF NOT EXISTS",
    )


def run_sql(context: Context) -> int:
    from ..json_schema import render_schema_file

    context.stdout.write(render_schema_file(context.args.file, if_not_exists=context.args.if_not_exists))
    return 0


COMMAND = Command(
    "schema",
    "work with JSON Schema table definitions",
    subcommands=(
        Command(
            "sql",
            "print the SQLite DDL (CREATE TABLE, CREATE INDEX) of a JSON Schema file",
            run=run_sql,
            add_arguments=add_sql_arguments,
        ),
    ),
)
