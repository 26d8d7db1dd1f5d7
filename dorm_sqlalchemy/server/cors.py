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

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORSMiddleware", "CorsPolicy", "normalize_origin"]

ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Starbase-Source, X-Data-Source, X-Dorm-Transaction"
EXPOSED_HEADERS = "WWW-Authenticate, Retry-After"
PREFLIGHT_MAX_AGE = "86400"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str:
    """Return ``origin`` as browsers send it: lower case, without a default port or a slash.

    Raises ValueError for anything but ``http(s)://host[:port]``.
    """
    fix = "give scheme://host[:port], such as https://studio.outerbase.com"
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid CORS origin {origin!r}: {fix}") from None
    scheme = parts.scheme.lower()
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"invalid CORS origin {origin!r}: {fix}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class CorsPolicy:
    """The origins allowed to read responses: ``"*"`` for any, a list of exact origins, or none."""

    def __init__(self, origins: str | Sequence[str] = "*") -> None:
        if isinstance(origins, str):
            origins = [origins]
        self.any_origin = "*" in origins
        self.origins = frozenset(normalize_origin(origin) for origin in origins if origin != "*")
        self._raw_any_origin = _raw(self.headers(None)) if self.any_origin else None

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


    def raw_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """Return :meth:`headers` as the lowercase name and value bytes of an ASGI message."""
        if self._raw_any_origin is not None:
            return self._raw_any_origin
        return _raw(self.headers(origin))


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
        if scope["method"] == "OPTIONS":
            headers = list(self.policy.raw_headers(origin))
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

        cors_headers = self.policy.raw_headers(origin)
        cors_names = {name for name, _ in cors_headers}

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merge_headers(message.get("headers", ()), cors_headers, cors_names)
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def _merge_headers(
    headers: Iterable[tuple[bytes, bytes]],
    cors_headers: list[tuple[bytes, bytes]],
    cors_names: set[bytes],
) -> list[tuple[bytes, bytes]]:
    # The CORS headers replace any the application set, except Vary, which
    # keeps the application's values and adds Origin.
    merged = []
    vary: list[bytes] = []
    for name, value in headers:
        if name == b"vary":
            vary.append(value)
        elif name not in cors_names:
            merged.append((name, value))
    for name, value in cors_headers:
        if name == b"vary":
            value = b", ".join([*vary, value])
            vary = []
        merged.append((name, value))
    merged.extend((b"vary", value) for value in vary)
    return merged


def _header(scope: Scope, requested: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == requested:
            return value.decode("latin-1")
    return None
