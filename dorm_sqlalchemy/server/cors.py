"""CORS for the HTTP API, as a pure ASGI middleware.

Every response carries the CORS headers, errors and 401s included, so a
browser client such as Outerbase Studio can read the error message. An
``OPTIONS`` request is a preflight: this middleware returns 204 for it,
before authentication, because browsers send preflights without credentials.

The allowed methods and headers are DORM's (GET, POST, PATCH, PUT, DELETE
and OPTIONS; ``Authorization``, ``Content-Type``, and ``X-Starbase-Source``
and ``X-Data-Source``, which Outerbase Studio sends), plus
``X-Dorm-Transaction`` for interactive transactions.

Without authentication, the application allows no cross-origin reads by
default. Otherwise any web page open in the user's browser could read and
change the tenants of a server on the user's machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORSMiddleware", "CorsPolicy"]

ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Starbase-Source, X-Data-Source, X-Dorm-Transaction"
EXPOSED_HEADERS = "WWW-Authenticate, Retry-After"
PREFLIGHT_MAX_AGE = "86400"


class CorsPolicy:
    """The origins allowed to read responses: ``"*"`` for any, a list of exact origins, or none."""

    def __init__(self, origins: str | Sequence[str] = "*") -> None:
        if isinstance(origins, str):
            origins = [origins]
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str | None) -> bool:
        return self.any_origin or (origin is not None and origin in self.origins)

    def headers(self, origin: str | None) -> dict[str, str]:
        """Return the CORS headers of a response to a request from ``origin``."""
        headers = {
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }
        if self.any_origin:
            headers["Access-Control-Allow-Origin"] = "*"
        else:
            headers["Vary"] = "Origin"
            if origin is not None and origin in self.origins:
                headers["Access-Control-Allow-Origin"] = origin
        return headers


class CORSMiddleware:
    """Respond to preflights and add the CORS headers of ``policy`` to every HTTP response."""

    def __init__(self, app: ASGIApp, *, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        origin = _header(scope, b"origin")
        cors_headers = self.policy.headers(origin)
        if scope["method"] == "OPTIONS":
            headers = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in cors_headers.items()
            ]
            headers.append((b"access-control-max-age", PREFLIGHT_MAX_AGE.encode("latin-1")))
            # Chrome sends this preflight before a public page may call a
            # server on this machine (Private Network Access). Grant it only
            # to allowed origins.
            asks_private = _header(scope, b"access-control-request-private-network") == "true"
            if asks_private and self.policy.allows(origin):
                headers.append((b"access-control-allow-private-network", b"true"))
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in cors_headers.items():
                    if name == "Vary":
                        headers.add_vary_header(value)
                    else:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _header(scope: Scope, requested: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == requested:
            return value.decode("latin-1")
    return None
