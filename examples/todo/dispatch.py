"""One ASGI app for the todo pages and dorm-sqlalchemy's HTTP API with its explorer.

The explorer page loads its files and calls its endpoints by absolute paths
(``/explorer/static/...``, ``/api/tenants``, ``/<tenant>/api/db/query/raw``),
so the app from ``dorm_sqlalchemy.server.create_app`` cannot be mounted under
a prefix such as ``/db``. :class:`ExplorerDispatch` therefore sends the
server's own paths to it at the root and every other request to the todo
pages. The tenant names ``api`` and ``explorer`` are left without a todo page,
because their paths belong to the server.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RESERVED_TENANTS", "ExplorerDispatch", "is_server_path"]

RESERVED_TENANTS = frozenset({"api", "explorer"})

_SERVER_PATH = re.compile(
    r"/(?:explorer(?:/.*)?|api(?:/.*)?|openapi\.json|[^/]+/api/db(?:/.*)?)", re.DOTALL
)


def is_server_path(path: str) -> bool:
    """Tell whether ``path`` belongs to the HTTP API or the explorer rather than the todo pages."""
    return _SERVER_PATH.fullmatch(path) is not None


class ExplorerDispatch:
    """Route HTTP requests to the server app or the todo app by path.

    Lifespan events go to the todo app alone, because its lifespan closes the
    registry both apps share. The server app's own lifespan only logs its
    start and stop.
    """

    def __init__(self, todo_app: ASGIApp, server_app: ASGIApp) -> None:
        self.todo_app = todo_app
        self.server_app = server_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and is_server_path(scope["path"]):
            await self.server_app(scope, receive, send)
            return
        await self.todo_app(scope, receive, send)
