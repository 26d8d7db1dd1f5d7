"""The two baseline servers of ``http_api.py``, served with the same uvicorn settings as ``dorm serve``.

    python benchmarks/http_api_baselines.py starlette DB_FILE PORT
    /tmp/datasette-venv/bin/python benchmarks/http_api_baselines.py datasette DB_FILE PORT

* ``starlette``: one ``POST /query`` endpoint that takes the body of
  ``/query/raw`` (``{"sql": ..., "params": [...]}``), runs the statement on a
  plain ``sqlite3`` connection of its worker thread and returns
  ``{"columns": [...], "rows": [...]}``. It has no authentication, sandbox,
  time limit or transaction, so it is the ceiling of Starlette, uvicorn and
  ``sqlite3`` for this request.
* ``datasette``: Datasette's ASGI app on the same file, for its JSON API
  (``GET /{db}.json?sql=...&_shape=array``).

Both listen on 127.0.0.1 through ``uvicorn.Server`` with the configuration
that ``dorm_sqlalchemy.server.cli.run_server`` uses: one worker, the
default event loop and HTTP implementation, access log on, and a socket
created with ``IPPROTO_TCP`` so that accepted connections get
``TCP_NODELAY``. Only the standard library, Starlette and uvicorn are imported
at module level, so the script runs in the scratch venv that has Datasette.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["main", "serve", "starlette_app"]


def starlette_app(database: Path) -> Any:
    """Build the bare Starlette app: one endpoint that runs a statement on plain ``sqlite3``."""
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
        payload = await run_in_threadpool(run_query, body["sql"], body.get("params", []))
        return Response(payload, media_type="application/json")

    return Starlette(routes=[Route("/query", query, methods=["POST"])])


def datasette_app(database: Path) -> Any:
    """Build Datasette's ASGI app on ``database`` with its default settings."""
    from datasette.app import Datasette

    return Datasette(files=[str(database)]).app()


def serve(app: Any, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` as ``dorm serve`` runs its app, until SIGINT or SIGTERM."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, lifespan="on", log_level="info", timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("starlette", "datasette"):
        print("usage: http_api_baselines.py starlette|datasette DB_FILE PORT", file=sys.stderr)
        return 2
    kind, database, port = argv[0], Path(argv[1]), int(argv[2])
    app = starlette_app(database) if kind == "starlette" else datasette_app(database)
    serve(app, port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
