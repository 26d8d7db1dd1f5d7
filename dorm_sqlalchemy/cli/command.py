"""The building blocks of a ``dorm`` command: :class:`Command`, its parser and argument types.

A command is a :class:`Command` entry in :data:`dorm_sqlalchemy.cli.app.COMMANDS`.
Its ``add_arguments`` function declares the options and its ``run`` function
does the work with a :class:`~dorm_sqlalchemy.cli.context.Context` and returns
the exit status. A command with ``subcommands`` is a group, such as
``dorm mirror status``, and has no ``run`` of its own.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..errors import DormError, InvalidTenantName
from ..naming import TenantName, canonical_tenant

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "ArgumentParser",
    "Command",
    "CommandError",
    "UsageError",
    "seconds_argument",
    "tenant_argument",
    "unique",
]


class CommandError(DormError):
    """A failed command: ``dorm`` prints its message as one line and exits with status 1."""

    exit_status = 1


class UsageError(CommandError):
    """A wrong command line: ``dorm`` exits with status 2, as argparse does."""

    exit_status = 2


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    """One ``dorm`` command: its name, help, arguments and the function that runs it."""

    name: str
    summary: str
    run: Callable[[Context], int] | None = None
    add_arguments: Callable[[ArgumentParser], None] | None = None
    description: str | None = None
    subcommands: tuple[Command, ...] = ()


def tenant_argument(value: str) -> TenantName:
    """Convert a command-line tenant name to its canonical form, or reject it as a usage error."""
    try:
        return canonical_tenant(value)
    except InvalidTenantName as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def seconds_argument(value: str) -> float:
    """Convert a command-line duration in seconds to a float >= 0."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds {value!r}: give a number >= 0, such as 5 or 0.5"
        )
    return seconds


def unique(names: Iterable[TenantName]) -> list[TenantName]:
    """Drop repeated names and keep the first occurrence of each, in order."""
    return list(dict.fromkeys(names))
