"""The ``dorm`` parser, its command table and :func:`main`.

To add a command, write a module with a :class:`~.command.Command` (or a
group of them, through ``subcommands``) and add it to :data:`COMMANDS`. The
parser adds the global options to every command, so they work before and
after the command name: ``dorm --root data tenants`` and
``dorm tenants --root data`` are the same.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sqlite3
import sys
from collections.abc import Sequence

import sqlalchemy

from .. import __version__
from ..registry import Dorm
from . import migrations, mirror, schema, serve, sql, tenants
from .command import ArgumentParser, Command, UsageError, seconds_argument
from .context import ENV_ROOT, ENV_URL, Context, library_logging
from .errors import describe_error

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[Command, ...] = (
    *tenants.COMMANDS,
    sql.COMMAND,
    *migrations.COMMANDS,
    mirror.COMMAND,
    schema.COMMAND,
    serve.COMMAND,
)
"""Every ``dorm`` command, in the order ``dorm --help`` lists them."""

_DEFAULT_BUSY_TIMEOUT: float = inspect.signature(Dorm).parameters["busy_timeout"].default

_DESCRIPTION = """\
Manage the SQLite databases of dorm-sqlalchemy tenants and run SQL on them.

Tenant files are DIR/<tenant>.db with --root DIR, or follow a URL template
with --url (for example sqlite:///data/{tenant}.db). Without either option,
dorm reads $DORM_URL or $DORM_ROOT, and falls back to ./dorm-data/{tenant}.db."""

_EPILOG = """\
examples:
  dorm create acme globex
  dorm sql acme "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"
  dorm sql acme "INSERT INTO notes (body) VALUES (?)" --param "first note"
  dorm sql acme "SELECT * FROM notes" --json
  dorm --root /srv/tenants tenants --sizes

Run 'dorm COMMAND --help' for the options of a command."""


def _version() -> str:
    return (
        f"dorm {__version__} (SQLAlchemy {sqlalchemy.__version__}, "
        f"SQLite {sqlite3.sqlite_version})"
    )


def _add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    # Below the top level the defaults are SUPPRESS, so an option given before
    # the command name is not reset by the command's parser.
    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    location = group.add_mutually_exclusive_group()
    location.add_argument(
        "--root",
        metavar="DIR",
        default=default(None),
        help=f"directory of the tenant files, DIR/<tenant>.db (default: ${ENV_ROOT})",
    )
    location.add_argument(
        "--url",
        metavar="TEMPLATE",
        default=default(None),
        help="SQLAlchemy URL template with {tenant} in the file name, such as "
        f"sqlite:///data/{{tenant}}.db (default: ${ENV_URL}, else "
        "./dorm-data/{tenant}.db)",
    )
    group.add_argument(
        "--busy-timeout",
        metavar="SECONDS",
        type=seconds_argument,
        default=default(None),
        help="seconds a statement waits for another writer's lock before it "
        f"fails (default: {_DEFAULT_BUSY_TIMEOUT:g})",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log what the library does to stderr: -v for INFO, -vv for DEBUG",
    )


def _add_commands(subparsers: argparse._SubParsersAction, commands: Sequence[Command]) -> None:
    for command in commands:
        parser = subparsers.add_parser(
            command.name,
            help=command.summary,
            description=command.description or command.summary,
        )
        if command.add_arguments is not None:
            command.add_arguments(parser)

        if command.subcommands:
            nested = parser.add_subparsers(
                title="commands", metavar="COMMAND", dest=f"{command.name}_command", required=True
            )
            _add_commands(nested, command.subcommands)
        else:
            _add_global_options(parser, top_level=False)
            parser.set_defaults(command=command, command_prog=parser.prog)


def build_parser(commands: Sequence[Command] = COMMANDS) -> ArgumentParser:
    """Build the ``dorm`` argument parser with one subcommand per entry of ``commands``."""
    parser = ArgumentParser(
        prog="dorm",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    _add_global_options(parser, top_level=True)
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest="command_name", required=True
    )
    _add_commands(subparsers, commands)
    return parser


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    # parse_args() would report unknown options against `dorm --help`; point
    # the user at the help of the command they ran instead.
    args, extras = build_parser().parse_known_args(argv)
    if extras:
        raise UsageError(
            f"unrecognized arguments: {' '.join(extras)} (see '{args.command_prog} --help')"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run ``dorm`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Errors the user can act on print one line, ``dorm: error: ...``, to
    stderr. The exit status is then 2 for a wrong command line and 1 for a
    failure.
    """
    stderr = sys.stderr
    context: Context | None = None
    try:
        args = _parse_arguments(argv)
        context = Context(
            args, stdin=sys.stdin, stdout=sys.stdout, stderr=stderr, environ=os.environ
        )
        with library_logging(stderr, args.verbose):
            return args.command.run(context)
    except SystemExit as stop:
        # --help and --version print their text and exit through argparse.
        return stop.code if isinstance(stop.code, int) else 0
    except BrokenPipeError:
        # The reader of stdout went away (for example `dorm sql ... | head`).
        _discard_stdout()
        return 1
    except KeyboardInterrupt:
        print("dorm: interrupted", file=stderr)
        return 130
    except Exception as error:
        failure = describe_error(error)
        if failure is None:
            raise
        print(f"dorm: error: {failure.message}", file=stderr)
        return failure.exit_status
    finally:
        if context is not None:
            context.close()


def _discard_stdout() -> None:
    # Point stdout at /dev/null so that the interpreter's final flush does not
    # raise BrokenPipeError again while exiting.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        # In-process callers may have replaced sys.stdout with a stream without a descriptor.
        pass
    finally:
        os.close(devnull)
