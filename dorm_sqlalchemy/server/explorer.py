"""The built-in data explorer: a static page and the JSON endpoints it reads.

The page (``/explorer/``) and its files are public: they hold no data. It
prompts for a token, keeps it in ``sessionStorage`` and sends it as a bearer
token to:

* ``GET /api/tenants`` for the tenant list with sizes, and
* ``GET /api/tenants/{tenant}/tables`` for tables and views with row counts,

and to the SQL endpoint ``/{tenant}/api/db/query/raw`` for rows, schema and
the SQL console, so the explorer goes through the same authentication,
sandbox and limits as any other client. Neither endpoint creates a tenant.
"""

from __future__ import annotations

import logging
import sqlite3
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..naming import TenantName
from .api import request_tenant
from .auth import token_scope_of
from .errors import ApiError
from .execution import TenantConnection, translate_error
from .protocol import is_decimal
from .sandbox import PROGRESS_STEPS, Authorizer, Deadline
from .settings import ServerLimits

if TYPE_CHECKING:
    from ..registry import Dorm

__all__ = ["ExplorerApi", "STATIC_DIRECTORY", "explorer_routes", "is_public_path"]

logger = logging.getLogger(__name__)

STATIC_DIRECTORY = Path(__file__).parent / "explorer"

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000

# The page loads only its own files; it never runs inline script.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_PUBLIC_PATHS = frozenset({"/", "/explorer", "/explorer/", "/openapi.json"})


def is_public_path(path: str) -> bool:
    """Tell whether ``path`` is served without a token: the page, its files, the OpenAPI document."""
    return path in _PUBLIC_PATHS or path.startswith("/explorer/static/")


class ExplorerApi:
    """The JSON endpoints of the explorer for one registry."""

    def __init__(self, dorm: Dorm, limits: ServerLimits) -> None:
        self.dorm = dorm
        self.limits = limits

    async def list_tenants(self, request: Request) -> Response:
        """List existing tenants the token grants, sorted, with their sizes in bytes.

        ``?limit=N`` (default 500) pages the list; the response's ``next`` is
        the ``?after=`` value of the next page, or ``null`` on the last one.
        """
        limit = _page_size(request.query_params.get("limit"))
        after = request.query_params.get("after")
        token_scope = token_scope_of(request.scope)
        document = await run_in_threadpool(self._tenant_page, token_scope.allows, after, limit)
        return JSONResponse(document)

    def _tenant_page(self, allows: Any, after: str | None, limit: int) -> dict[str, Any]:
        names = (
            name for name in self.dorm.tenants() if allows(name) and (after is None or name > after)
        )
        page = list(islice(names, limit + 1))
        more = len(page) > limit
        page = page[:limit]

        tenants = []
        for name in page:
            try:
                size: int | None = self.dorm.size(name)
            except OSError:
                # The tenant was dropped between listing and stat().
                continue
            tenants.append({"name": name, "size": size})
        return {"tenants": tenants, "next": page[-1] if more and page else None}

    async def list_tables(self, request: Request) -> Response:
        """List the tables and views of a tenant with their row counts (``null`` when counting timed out)."""
        tenant = request_tenant(request)
        if not await run_in_threadpool(self.dorm.exists, tenant):
            raise ApiError(404, f"tenant {tenant!r} does not exist", tenant=tenant)
        tables = await run_in_threadpool(self._tables, tenant)
        return JSONResponse({"tenant": tenant, "tables": tables})

    def _tables(self, tenant: TenantName) -> list[dict[str, Any]]:
        tenant_connection = TenantConnection(self.dorm, tenant)
        connection = tenant_connection.open()
        authorizer = Authorizer(read_only=True)
        deadline = Deadline(self.limits.statement_timeout)
        try:
            connection.execute("BEGIN")
            connection.set_authorizer(authorizer)
            connection.set_progress_handler(deadline, PROGRESS_STEPS)
            try:
                schema = connection.execute(
                    "SELECT type, name, sql FROM sqlite_schema "
                    "WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                    "ORDER BY name"
                ).fetchall()
            except sqlite3.Error as error:
                raise translate_error(
                    error, tenant=tenant, authorizer=authorizer, deadline=deadline
                ) from error
            tables = []
            for kind, name, sql in schema:
                rows = self._count(connection, deadline, name) if kind == "table" else None
                tables.append({"name": name, "type": kind, "rows": rows, "sql": sql})
            return tables
        finally:
            connection.set_authorizer(None)
            connection.set_progress_handler(None, 0)
            if connection.in_transaction:
                connection.rollback()
            tenant_connection.close()

    @staticmethod
    def _count(connection: sqlite3.Connection, deadline: Deadline, table: str) -> int | None:
        deadline.start()
        deadline.expired = False
        quoted = '"' + table.replace('"', '""') + '"'
        try:
            return connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
        except sqlite3.Error as error:
            # A count that times out, or a virtual table that cannot be counted,
            # leaves the count unknown instead of failing the whole list.
            logger.debug("counting rows of %s failed: %s", table, error)
            return None


def _page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not is_decimal(value) or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise ApiError(400, f"invalid limit={value!r}: give an integer from 1 to {MAX_PAGE_SIZE}")
    return int(value)


async def explorer_page(request: Request) -> Response:
    """Serve the explorer's HTML page."""
    return FileResponse(
        STATIC_DIRECTORY / "index.html", media_type="text/html", headers=_PAGE_HEADERS
    )


async def to_explorer(request: Request) -> Response:
    """Redirect to the explorer page."""
    return RedirectResponse("/explorer/", status_code=307)


def explorer_routes(dorm: Dorm, limits: ServerLimits) -> list[BaseRoute]:
    """Return the routes of the explorer page, its files and its JSON endpoints."""
    api = ExplorerApi(dorm, limits)
    return [
        Route("/", to_explorer, methods=["GET"]),
        Route("/explorer", to_explorer, methods=["GET"]),
        Route("/explorer/", explorer_page, methods=["GET"]),
        Mount(
            "/explorer/static", app=StaticFiles(directory=STATIC_DIRECTORY), name="explorer-static"
        ),
        Route("/api/tenants", api.list_tenants, methods=["GET"]),
        Route("/api/tenants/{tenant}/tables", api.list_tables, methods=["GET"]),
    ]
