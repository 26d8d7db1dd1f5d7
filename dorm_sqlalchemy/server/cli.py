"""``dorm serve``: run the HTTP API and the explorer with uvicorn.

The ``dorm`` command adds the options of :func:`add_arguments` to its
``serve`` command and calls :func:`serve` with the parsed arguments. The
same works standalone::

    python -m dorm_sqlalchemy.server.cli --root data --port 8787

Without a secret the API has no authentication. The server then listens
only on a loopback address and rejects any other address with an error.
The secret comes from ``--secret`` or, better (command lines are visible to
other users of the machine), from the ``DORM_SECRET`` environment variable.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from ..errors import DormError
from ..registry import Dorm
from .app import create_app, describe_auth
from .auth import is_loopback
from .cors import normalize_origin
from .protocol import is_decimal
from .settings import ServerLimits, TokenScope

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ENV_SECRET",
    "InsecureServerError",
    "add_arguments",
    "check_listen_address",
    "http_stack",
    "is_loopback",
    "main",
    "run_server",
    "serve",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
ENV_SECRET = "DORM_SECRET"
ENV_URL = "DORM_URL"
ENV_ROOT = "DORM_ROOT"

_DEFAULT_LIMITS = ServerLimits()


class InsecureServerError(DormError):
    """The server was asked to listen beyond the loopback interface without a secret."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"refusing to listen on {host} without a secret: anyone who can reach that "
            "address could read and change every tenant. Set a secret with "
            f"${ENV_SECRET} (or --secret), or listen on 127.0.0.1"
        )
        self.host = host


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dorm serve`` to ``parser`` (the tenant location options are global)."""
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}); any address other than "
        "loopback requires a secret",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"TCP port to listen on, 0 for any free port (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--secret",
        default=None,
        help=f"bearer token with full access (default: ${ENV_SECRET}); prefer the "
        "environment variable, which other users cannot see in the process list",
    )
    parser.add_argument(
        "--migrations",
        metavar="DIR",
        default=None,
        help="Alembic script directory: each tenant is brought to head when the server first opens it",
    )
    parser.add_argument(
        "--no-create",
        dest="create_tenants",
        action="store_false",
        help="return 404 for unknown tenants instead of creating them on first use",
    )
    parser.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        type=_cors_origin,
        metavar="ORIGIN",
        default=None,
        help="origin whose pages may call the API from a browser, or '*' for any; repeat "
        "for several (default: any origin with a secret, none without)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request at INFO (default: off; it costs about a tenth "
        "of the rate of point queries)",
    )
    parser.add_argument(
        "--statement-timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=_DEFAULT_LIMITS.statement_timeout,
        help=f"seconds the SQL of one request may run (default: {_DEFAULT_LIMITS.statement_timeout:g})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        metavar="BYTES",
        default=_DEFAULT_LIMITS.max_body_bytes,
        help=f"largest request body accepted (default: {_DEFAULT_LIMITS.max_body_bytes})",
    )
    parser.add_argument(
        "--max-result-rows",
        type=_positive_int,
        metavar="ROWS",
        default=_DEFAULT_LIMITS.max_result_rows,
        help=f"most rows /query/raw returns; /query/stream has no limit "
        f"(default: {_DEFAULT_LIMITS.max_result_rows})",
    )
    parser.add_argument(
        "--max-result-bytes",
        type=_positive_int,
        metavar="BYTES",
        default=_DEFAULT_LIMITS.max_result_bytes,
        help=f"most bytes of values /query/raw returns (default: {_DEFAULT_LIMITS.max_result_bytes})",
    )


def serve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Run ``dorm serve`` with parsed arguments until SIGINT or SIGTERM; return the exit status.

    ``args`` has the options of :func:`add_arguments` and the global
    ``--root``, ``--url`` and ``--busy-timeout`` of the ``dorm`` command.
    Without ``--root`` and ``--url``, ``$DORM_URL`` or ``$DORM_ROOT`` names
    the tenant files, else the library default ``./dorm-data/{tenant}.db``.
    """
    environ = os.environ if environ is None else environ
    secret = args.secret if args.secret is not None else (environ.get(ENV_SECRET) or None)
    check_listen_address(args.host, authenticated=secret is not None)

    url = getattr(args, "url", None)
    root = getattr(args, "root", None)
    if url is None and root is None:
        # The same fallback as every dorm command: $DORM_URL, then $DORM_ROOT.
        url = environ.get(ENV_URL) or None
        root = None if url is not None else (environ.get(ENV_ROOT) or None)

    options = {}
    if getattr(args, "busy_timeout", None) is not None:
        options["busy_timeout"] = args.busy_timeout
    dorm = Dorm(
        url,
        root=root,
        migrations=args.migrations,
        create=args.create_tenants,
        **options,
    )
    limits = ServerLimits(
        max_body_bytes=args.max_body_bytes,
        statement_timeout=args.statement_timeout,
        max_result_rows=args.max_result_rows,
        max_result_bytes=args.max_result_bytes,
    )
    run_server(
        dorm,
        host=args.host,
        port=args.port,
        secret=secret,
        limits=limits,
        cors_origins=args.cors_origins,
        access_log=args.access_log,
    )
    return 0


def run_server(
    dorm: Dorm,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    secret: str | None = None,
    tokens: Mapping[str, TokenScope] | None = None,
    limits: ServerLimits | None = None,
    cors_origins: str | Sequence[str] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``dorm`` over HTTP until SIGINT or SIGTERM, then close the registry.

    ``access_log`` turns on uvicorn's line per request. The registry is
    closed also when the server cannot start.
    """
    import uvicorn

    try:
        check_listen_address(host, authenticated=secret is not None or bool(tokens))
        app = create_app(
            dorm, secret, tokens=tokens, limits=limits, cors_origins=cors_origins, close_dorm=True
        )
        sock = _bind(host, port)
    except BaseException:
        dorm.close()
        raise
    base_url = _base_url(host, sock.getsockname()[1])

    with _visible_logging():
        stack = http_stack()
        logger.info(
            "serving tenants in %s at %s/<tenant>/api/db (explorer: %s/explorer/); "
            "authentication: %s; uvicorn with %s and the %s event loop",
            dorm.storage.describe(),
            base_url,
            base_url,
            describe_auth(secret, tokens),
            stack["http"],
            stack["loop"],
        )
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=10,
            **stack,
        )
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:
            # uvicorn raises the SIGINT again once it has shut down cleanly;
            # Ctrl-C is the ordinary way to stop the server.
            pass


def http_stack() -> dict[str, str]:
    """Return the ``http`` and ``loop`` settings of ``uvicorn.Config`` that ``dorm serve`` uses.

    These are httptools and uvloop, which the ``server`` extra installs (uvloop
    except on Windows), and uvicorn's pure-Python h11 and the standard asyncio
    loop where they are missing. Named explicitly, a broken install of either
    fails at start-up instead of silently serving at half the rate.
    """
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return {"http": http, "loop": loop}


def check_listen_address(host: str, *, authenticated: bool) -> None:
    """Raise :class:`InsecureServerError` for a non-loopback ``host`` without authentication."""
    if not authenticated and not is_loopback(host):
        raise InsecureServerError(host)


def _bind(host: str, port: int) -> socket.socket:
    # Binding here, not in uvicorn, gives the real port for --port 0 before
    # the start-up line is logged. The protocol must be IPPROTO_TCP, because
    # asyncio sets TCP_NODELAY only on accepted sockets with that protocol.
    # Without it every response waits 40 ms for the client's delayed ACK.
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(host: str, port: int) -> str:
    address = host.strip("[]")
    shown = f"[{address}]" if ":" in address else address
    return f"http://{shown}:{port}"


@contextmanager
def _visible_logging() -> Iterator[None]:
    # The start and stop lines must reach the terminal even when the
    # application configured no logging; configured logging is left alone.
    package_logger = logging.getLogger("dorm_sqlalchemy")
    if package_logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


def _port(value: str) -> int:
    if not is_decimal(value) or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}: give an integer from 0 to 65535")
    return int(value)


def _cors_origin(value: str) -> str:
    if value == "*":
        return value
    try:
        return normalize_origin(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(value: str) -> int:
    if not is_decimal(value) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}: give an integer >= 1")
    return int(value)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid number of seconds {value!r}: give a number > 0")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from the command line without the ``dorm`` command."""
    parser = argparse.ArgumentParser(
        prog="python -m dorm_sqlalchemy.server.cli",
        description="Serve the tenant databases of a directory over HTTP, with the explorer.",
    )
    location = parser.add_mutually_exclusive_group()
    location.add_argument(
        "--root", metavar="DIR", help="directory of the tenant files, DIR/<tenant>.db"
    )
    location.add_argument(
        "--url", metavar="TEMPLATE", help="URL template such as sqlite:///data/{tenant}.db"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except DormError as error:
        print(f"dorm serve: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, InsecureServerError) else 1


if __name__ == "__main__":
    # Import the module under its package name, so its logger is
    # dorm_sqlalchemy.server.cli and not __main__.
    from dorm_sqlalchemy.server.cli import main as package_main

    sys.exit(package_main())
