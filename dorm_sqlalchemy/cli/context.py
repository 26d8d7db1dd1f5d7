"""The context of one ``dorm`` run: its arguments, standard streams and tenant registry.

The tenant files come from ``--url`` or ``--root``, else from the ``DORM_URL``
or ``DORM_ROOT`` environment variable, else from the library default
``./dorm-data/{tenant}.db``. The command-line registry never creates a tenant
on first use: only ``dorm create`` creates tenants, so a mistyped name is an
error instead of a new, empty database.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from sqlalchemy import exc as sa_exc

from ..errors import TenantNotFound
from ..naming import TenantName
from ..registry import Dorm
from ..storage import storage_from_url
from .command import UsageError

__all__ = ["ENV_ROOT", "ENV_URL", "Context", "Location", "library_logging", "resolve_location"]

ENV_URL = "DORM_URL"
ENV_ROOT = "DORM_ROOT"

TEMPLATE_EXAMPLE = "sqlite:///data/{tenant}.db"

_LIBRARY_LOGGERS = ("dorm_sqlalchemy", "alembic_ext")


@dataclass(frozen=True)
class Location:
    """The place of the tenant files (a URL template or a root directory) and the setting that gave it."""

    url: str | None
    root: str | None
    source: str


def resolve_location(args: argparse.Namespace, environ: Mapping[str, str]) -> Location:
    """Pick the tenant location from the options, then the environment, then the default."""
    url = getattr(args, "url", None)
    root = getattr(args, "root", None)
    if url is not None and root is not None:
        raise UsageError("--url and --root cannot be used together: give one of them")
    if url is not None:
        return Location(url=url, root=None, source="--url")
    if root is not None:
        return Location(url=None, root=root, source="--root")

    # An empty variable counts as unset, as in most shells' ${VAR:-default}.
    env_url = environ.get(ENV_URL) or None
    env_root = environ.get(ENV_ROOT) or None
    if env_url is not None and env_root is not None:
        raise UsageError(
            f"{ENV_URL} and {ENV_ROOT} are both set: unset one of them, "
            "or pass --url or --root to override both"
        )
    if env_url is not None:
        return Location(url=env_url, root=None, source=ENV_URL)
    if env_root is not None:
        return Location(url=None, root=env_root, source=ENV_ROOT)
    return Location(url=None, root=None, source="the default location")


def check_location(location: Location) -> None:
    """Raise :class:`UsageError` unless ``location`` names a directory of tenant files."""
    try:
        storage = storage_from_url(location.url, location.root)
    except sa_exc.ArgumentError as error:
        raise UsageError(
            f"invalid {location.source} {location.url!r}: it is not a URL; "
            f"give a template such as {TEMPLATE_EXAMPLE!r}"
        ) from error
    except ValueError as error:
        raise UsageError(f"{location.source}: {error}") from error

    in_memory = storage.in_memory
    storage.close()
    if in_memory:
        raise UsageError(
            f"invalid {location.source} {location.url!r}: in-memory tenants vanish when "
            f"the dorm command exits; give a file template such as {TEMPLATE_EXAMPLE!r}"
        )


class Context:
    """The parsed arguments, standard streams and tenant registry of one ``dorm`` run."""

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        stdin: TextIO | None,
        stdout: TextIO,
        stderr: TextIO,
        environ: Mapping[str, str],
    ) -> None:
        self.args = args
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self._dorm: Dorm | None = None
        self._console: Console | None = None

    # -- the registry --------------------------------------------------------

    def open_dorm(self, **options: Any) -> Dorm:
        """Open the tenant registry once, with ``create=False`` and the global options.

        ``options`` go to :class:`~dorm_sqlalchemy.Dorm`, for commands that
        need more, such as ``migrations=``.
        """
        if self._dorm is not None:
            return self._dorm

        location = resolve_location(self.args, self.environ)
        check_location(location)
        if self.args.busy_timeout is not None:
            options["busy_timeout"] = self.args.busy_timeout
        try:
            self._dorm = Dorm(location.url, root=location.root, create=False, **options)
        except ValueError as error:
            raise UsageError(str(error)) from error
        return self._dorm

    def require_tenant(self, tenant: TenantName) -> None:
        """Raise :class:`TenantNotFound`, with a hint for the command line, unless ``tenant`` exists."""
        if not self.open_dorm().exists(tenant):
            raise TenantNotFound(
                tenant,
                f"check the name with 'dorm tenants', or create it with 'dorm create {tenant}'",
            )

    def close(self) -> None:
        """Close the registry, if a command opened one."""
        if self._dorm is not None:
            self._dorm.close()
            self._dorm = None

    # -- output --------------------------------------------------------------

    @property
    def console(self) -> Console:
        """A rich console on stdout, for tables; data never goes through its markup parser."""
        if self._console is None:
            self._console = Console(file=self.stdout, highlight=False)
        return self._console

    def echo(self, line: str) -> None:
        """Print one line of output to stdout."""
        print(line, file=self.stdout)

    def notice(self, line: str) -> None:
        """Print one line for the user to stderr, so that stdout keeps only data."""
        print(f"dorm: {line}", file=self.stderr)

    def stdin_is_terminal(self) -> bool:
        try:
            return self.stdin is not None and self.stdin.isatty()
        except ValueError:
            # isatty() raises ValueError on a closed stream.
            return False

    def ask(self, prompt: str) -> str:
        """Write ``prompt`` to stderr and return the line the user types, or "" at end of input."""
        self.stderr.write(prompt)
        self.stderr.flush()
        if self.stdin is None:
            return ""
        return self.stdin.readline()


@contextmanager
def library_logging(stream: TextIO, verbosity: int) -> Iterator[None]:
    """Send the library's log records to ``stream``: INFO for ``-v``, DEBUG for ``-vv``.

    The handlers and levels are restored afterwards, so calling ``main()`` in
    a process leaves its logging as it was.
    """
    if verbosity <= 0:
        yield
        return

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("dorm: %(levelname)s %(name)s: %(message)s"))
    level = logging.INFO if verbosity == 1 else logging.DEBUG
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    previous_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, previous_levels):
            logger.removeHandler(handler)
            logger.setLevel(previous)
