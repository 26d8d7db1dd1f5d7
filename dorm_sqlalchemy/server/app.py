"""``create_app``: the Starlette application of the HTTP API and the explorer.

Routes:

* ``POST /{tenant}/api/db/query/raw`` and ``POST /{tenant}/api/db/query/stream``,
  the StarbaseDB-style SQL API (see :mod:`.protocol` and :mod:`.streaming`);
* ``POST /{tenant}/api/db/transaction`` and ``.../transaction/{id}/commit`` or
  ``/rollback``, interactive transactions (see :mod:`.transactions`);
* ``GET /api/tenants`` and ``GET /api/tenants/{tenant}/tables``, for the explorer;
* ``GET /explorer/``, the explorer page, and ``GET /`` redirecting to it;
* ``GET /openapi.json``, the OpenAPI 3.1 description of all of the above.

Middleware, outermost first: CORS (responds to preflights and adds its headers
to every response), then authentication. Every error is ``{"error": "..."}`` JSON.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .api import SqlApi
from .auth import AuthMiddleware
from .cors import CORSMiddleware, CorsPolicy
from .errors import ApiError
from .explorer import explorer_routes, is_public_path
from .openapi import build_openapi
from .settings import FULL_ACCESS, ServerLimits, TokenScope
from .transactions import TransactionManager
from .write_gates import WriteGates

if TYPE_CHECKING:
    from ..registry import Dorm

__all__ = ["create_app", "describe_auth"]

logger = logging.getLogger(__name__)


def create_app(
    dorm: Dorm,
    secret: str | None = None,
    *,
    tokens: Mapping[str, TokenScope] | None = None,
    limits: ServerLimits | None = None,
    cors_origins: str | Sequence[str] | None = None,
    explorer: bool = True,
    close_dorm: bool = False,
) -> Starlette:
    """Build the ASGI application that serves the tenants of ``dorm`` over HTTP.

    :param secret: the token with full access to every tenant. Without a
        secret and without ``tokens``, the API needs no authentication: only
        do that on a loopback address (``dorm serve`` refuses otherwise).
    :param tokens: more tokens, each with a :class:`TokenScope` that limits it
        to some tenants or to reading.
    :param limits: request bounds; :class:`ServerLimits` has the defaults.
    :param cors_origins: ``"*"`` or the list of origins whose pages may call
        the API from a browser. The default is ``"*"`` when the app has a
        secret or tokens, and no origin at all without authentication, so
        that no web page can reach an open server on the user's machine.
    :param explorer: serve the explorer page and its JSON endpoints.
    :param close_dorm: close the registry when the application shuts down;
        leave it ``False`` when the registry is also used outside the app.
    """
    limits = limits or ServerLimits()
    token_table = _token_table(secret, tokens)
    if cors_origins is None:
        cors_origins = "*" if token_table is not None else ()
    cors = CorsPolicy(cors_origins)
    write_gates = WriteGates(dorm.settings.busy_timeout)
    transactions = TransactionManager(dorm, limits, write_gates)
    sql_api = SqlApi(dorm, limits, transactions, write_gates)

    routes: list[BaseRoute] = [
        Route("/{tenant}/api/db/query/raw", sql_api.query_raw, methods=["POST"]),
        Route("/{tenant}/api/db/query/stream", sql_api.query_stream, methods=["POST"]),
        Route("/{tenant}/api/db/transaction", sql_api.begin_transaction, methods=["POST"]),
        Route(
            "/{tenant}/api/db/transaction/{transaction_id}/commit",
            sql_api.commit_transaction,
            methods=["POST"],
        ),
        Route(
            "/{tenant}/api/db/transaction/{transaction_id}/rollback",
            sql_api.rollback_transaction,
            methods=["POST"],
        ),
        Route("/openapi.json", _openapi_endpoint(limits), methods=["GET"]),
    ]
    if explorer:
        routes.extend(explorer_routes(dorm, limits))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(
            "HTTP API started for tenants in %s; authentication: %s",
            dorm.storage.describe(),
            describe_auth(secret, tokens),
        )
        transactions.start()
        try:
            yield
        finally:
            await transactions.close()
            if close_dorm:
                await dorm.aclose()
            logger.info("HTTP API stopped")

    async def on_api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        # Server faults were logged with their tenant where they happened;
        # sandbox and token denials are worth seeing at INFO.
        if error.status == 403:
            logger.info("%s %s: 403 %s", request.method, request.url.path, error.message)
        elif error.status < 500:
            logger.debug(
                "%s %s: %s %s", request.method, request.url.path, error.status, error.message
            )
        return JSONResponse(
            {"error": error.message}, status_code=error.status, headers=error.headers
        )

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        message = _http_error_message(request, error)
        return JSONResponse(
            {"error": message}, status_code=error.status_code, headers=error.headers
        )

    async def on_unexpected_error(request: Request, error: Exception) -> Response:
        # This response leaves through Starlette's outermost middleware, past
        # the CORS middleware, so it carries the CORS headers itself.
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        headers = cors.headers(request.headers.get("origin"))
        return JSONResponse(
            {
                "error": f"internal server error ({type(error).__name__}); the server log has the details"
            },
            status_code=500,
            headers=headers,
        )

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(CORSMiddleware, policy=cors),
            Middleware(AuthMiddleware, tokens=token_table, is_public=is_public_path, cors=cors),
        ],
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.dorm = dorm
    app.state.limits = limits
    app.state.transactions = transactions
    return app


def _token_table(
    secret: str | None, tokens: Mapping[str, TokenScope] | None
) -> dict[str, TokenScope] | None:
    if secret is None and tokens is None:
        return None
    table: dict[str, TokenScope] = {}
    for token, token_scope in (tokens or {}).items():
        _check_token(token, "a token")
        if not isinstance(token_scope, TokenScope):
            raise TypeError(
                f"the scope of a token must be a TokenScope, got {type(token_scope).__name__}"
            )
        table[token] = token_scope
    if secret is not None:
        _check_token(secret, "secret")
        table[secret] = FULL_ACCESS
    return table


def _check_token(token: object, what: str) -> None:
    if not isinstance(token, str) or not token:
        raise ValueError(f"invalid {what}: give a non-empty string")
    if token != token.strip() or any(ord(character) < 33 for character in token):
        raise ValueError(
            f"invalid {what}: it contains spaces or control characters, which an "
            "Authorization header cannot carry unchanged"
        )


def describe_auth(secret: str | None, tokens: Mapping[str, TokenScope] | None) -> str:
    """Describe the authentication mode for the log, never showing a token."""
    if secret is None and not tokens:
        return "none (every request has full access)"
    parts = []
    if secret is not None:
        parts.append("bearer secret")
    if tokens:
        parts.append(f"{len(tokens)} scoped token(s)")
    return " and ".join(parts)


def _http_error_message(request: Request, error: HTTPException) -> str:
    if error.status_code == 404:
        return (
            f"no endpoint at {request.url.path}: the SQL API is POST "
            "/<tenant>/api/db/query/raw or /query/stream; GET /openapi.json lists every endpoint"
        )
    if error.status_code == 405:
        allowed = error.headers.get("Allow", "") if error.headers else ""
        return f"method {request.method} is not allowed on {request.url.path}: use {allowed}"
    return str(error.detail)


def _openapi_endpoint(limits: ServerLimits):  # type: ignore[no-untyped-def]
    document = build_openapi(limits)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return openapi
