"""The ``serve`` command: the HTTP SQL API and the explorer, with uvicorn.

Starlette and uvicorn come with the ``server`` extra, so the server modules
are imported only when the command runs or its help is built.
"""

from __future__ import annotations

from .command import ArgumentParser, Command, UsageError
from .context import Context

__all__ = ["COMMAND"]

_MISSING_EXTRA = "the HTTP server needs the server extra: pip install 'dorm-sqlalchemy[server]'"


def add_serve_arguments(parser: ArgumentParser) -> None:
    try:
        from ..server.cli import add_arguments
    except ImportError:
        parser.description = f"{parser.description} ({_MISSING_EXTRA})"
        return
    add_arguments(parser)


def run_serve(context: Context) -> int:
    try:
        from ..server.cli import serve
    except ImportError as error:
        raise UsageError(_MISSING_EXTRA) from error
    return serve(context.args, context.environ)


COMMAND = Command(
    "serve",
    "run the HTTP SQL API (Outerbase Studio compatible) and the data explorer",
    run=run_serve,
    add_arguments=add_serve_arguments,
    description="Serve every tenant under /{tenant}/api/db and the explorer at /explorer/. "
    "Without a secret the server listens on a loopback address only.",
)
