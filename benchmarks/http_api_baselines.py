"""The two baseline servers of ``http_api.py``, served with the same uvicorn settings as ``dorm serve``.

    python benchmarks/http_api_baselines.py starlette DB_FILE PORT [--http H --loop L]
    python benchmarks/http_api_baselines.py starlette-loop DB_FILE PORT [--http H --loop L]
    /tmp/datasette-venv/bin/python benchmarks/http_api_baselines.py datasette DB_FILE PORT

* ``starlette``: one ``POST /query`` endpoint that takes the body of
  ``/query/raw`` (``{"sql": ..., "params": [...]}``), runs the statement on a
  plain ``sqlite3`` connection of its worker thread and returns
  ``{"columns": [...], "rows": [...]}``. It has no authentication, sandbox,
  time limit or transaction, so it is the ceiling of Starlette, uvicorn and
  ``sqlite3`` for this request when the statement runs in the thread pool.
* ``starlette-loop``: the same endpoint, with the statement run on the
  event loop's own connection instead of in the thread pool: the ceiling of
  the stack when nothing leaves the event loop.
* ``datasette``: Datasette's ASGI app on the same file, for its JSON API
  (``GET /{db}.json?sql=...&_shape=array``).

Both listen on 127.0.0.1 through ``uvicorn.Server`` with the configuration
that ``dorm_sqlalchemy.server.cli.run_server`` uses by default: one worker,
no access log, and a socket created with ``IPPROTO_TCP`` so that accepted connections
get ``TCP_NODELAY``. ``--http`` and ``--loop`` set uvicorn's HTTP
implementation and event loop. ``http_api.py`` passes those of ``dorm serve``
to the Starlette baseline and none to Datasette, so Datasette runs on
uvicorn's default for its own environment. That is h11 and asyncio after
``pip install datasette``, which installs neither httptools nor uvloop. Only the
standard library, Starlette and uvicorn are imported at module level, so the
script runs in the scratch venv that has Datasette.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["main", "serve", "starlette_app"]


def starlette_app(database: Path, *, on_loop: bool = False) -> Any:
    """Build the bare Starlette app: one endpoint that runs a statement on plain ``sqlite3``.

    ``on_loop`` runs the statement in the request handler itself, on the
    event loop's thread, instead of in the thread pool.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    # One connection per worker thread of the thread pool, as a sqlite3
    # connection may only be used by the thread that created it.
    connections = threading.local()

    def run_query(sql: str, params: list[Any]) -> bytes:
        connection = getattr(connections, "connection", None)
        if connection is None:
            connection = sqlite3.connect(database)
            connections.connection = connection
        cursor = connection.execute(sql, params)
        columns = [column[0] for column in cursor.description or ()]
        document = {"result": {"columns": columns, "rows": [list(row) for row in cursor]}}
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def query(request: Request) -> Response:
        body = json.loads(await request.body())
        if on_loop:
            payload = run_query(body["sql"], body.get("params", []))
        else:
            payload = await run_in_threadpool(run_query, body["sql"], body.get("params", []))
        return Response(payload, media_type="application/json")

    return Starlette(routes=[Route("/query", query, methods=["POST"])])


def datasette_app(database: Path) -> Any:
    """Build Datasette's ASGI app on ``database`` with its default settings."""
    from datasette.app import Datasette

    return Datasette(files=[str(database)]).app()


def serve(app: Any, port: int, *, http: str = "auto", loop: str = "auto") -> None:
    """Serve ``app`` on 127.0.0.1:``port`` as ``dorm serve`` runs its app, until SIGINT or SIGTERM."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
        http=http,
        loop=loop,
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["starlette", "starlette-loop", "datasette"])
    parser.add_argument("database", type=Path, help="SQLite file to serve")
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1")
    parser.add_argument("--http", default="auto", help="uvicorn's HTTP implementation (default: auto)")
    parser.add_argument("--loop", default="auto", help="uvicorn's event loop (default: auto)")
    args = parser.parse_args(argv)
    if args.kind == "datasette":
        app = datasette_app(args.database)
    else:
        app = starlette_app(args.database, on_loop=args.kind == "starlette-loop")
    serve(app, args.port, http=args.http, loop=args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
