"""Bearer-token authentication for the HTTP API, as a pure ASGI middleware.

A request authenticates with ``Authorization: Bearer <token>``, or with HTTP
Basic credentials in which either the whole ``user:password`` text or the
password alone is a token. DORM clients put the secret in the whole text;
browsers and tools that require a user name put it in the password.
Tokens are compared with :func:`hmac.compare_digest` against every known
token, so the time taken does not tell how much of a guess was right.

The token's :class:`~dorm_sqlalchemy.server.settings.TokenScope` is stored
in the ASGI scope under :data:`TOKEN_SCOPE_KEY` for the endpoints, which
check the tenant and read-only flag. Without any token configured, every
request gets full access, but only when its ``Host`` header names a loopback
address: a web page that rebinds its own domain name to 127.0.0.1 (DNS
rebinding) sends its own host name, and is rejected with 403. A request
whose ``Origin`` header names another site is rejected with 403 as well,
unless that origin is allowed by the CORS policy: a browser sends a form
or a ``text/plain`` POST to any server without asking first, so any page
open in the browser could otherwise change the tenants.

Failures are 401 with ``WWW-Authenticate: Bearer realm="dorm"``. The server
sends no ``Basic`` challenge, because browsers respond to one with a login
dialog on top of the explorer page.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from .cors import CorsPolicy
from .errors import ApiError
from .protocol import dumps
from .settings import FULL_ACCESS, TokenScope

__all__ = ["AuthMiddleware", "TOKEN_SCOPE_KEY", "is_loopback", "token_scope_of"]

logger = logging.getLogger(__name__)

TOKEN_SCOPE_KEY = "dorm.token_scope"

REALM = "dorm"

LOG_INTERVAL = 10.0
"""Seconds between two log lines about rejected requests."""


def token_scope_of(scope: Scope) -> TokenScope:
    """Return the token scope the middleware stored for this request."""
    return scope.get(TOKEN_SCOPE_KEY, FULL_ACCESS)


class AuthMiddleware:
    """Reject requests without a valid token; pass the others on with their token scope.

    ``tokens`` maps each token to its scope; ``None`` turns authentication
    off. Paths for which ``is_public(path)`` is true (the explorer's static
    files, the OpenAPI document) and ``OPTIONS`` requests pass without a token.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: Mapping[str, TokenScope] | None,
        is_public: Callable[[str], bool],
        cors: CorsPolicy | None = None,
    ) -> None:
        self.app = app
        self._cors = cors
        self._tokens = (
            None
            if tokens is None
            else [(token.encode("utf-8"), token_scope) for token, token_scope in tokens.items()]
        )
        self._is_public = is_public
        self._last_logged = -math.inf
        self._unlogged = 0

    def _log_rejection(self, scope: Scope, error: ApiError) -> None:
        # A client guessing tokens must not flood the log: one line per
        # LOG_INTERVAL seconds, with the count of rejections not logged.
        now = time.monotonic()
        if now - self._last_logged < LOG_INTERVAL:
            self._unlogged += 1
            return
        client = scope.get("client") or ("?", 0)
        logger.info(
            "%s %s from %s: %s %s (%d more rejection(s) not logged)",
            scope["method"],
            scope["path"],
            client[0],
            error.status,
            error.message,
            self._unlogged,
        )
        self._last_logged = now
        self._unlogged = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or self._is_public(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        try:
            if self._tokens is None:
                host = _header(scope, b"host")
                _check_loopback_host(host)
                _check_origin(_header(scope, b"origin"), host, self._cors)
                scope[TOKEN_SCOPE_KEY] = FULL_ACCESS
            else:
                scope[TOKEN_SCOPE_KEY] = self.authenticate(_header(scope, b"authorization"))
        except ApiError as error:
            self._log_rejection(scope, error)
            await _send_error(send, error)
            return
        await self.app(scope, receive, send)

    def authenticate(self, header: str | None) -> TokenScope:
        """Return the scope of the token in an ``Authorization`` header, or raise 401."""
        if not header:
            raise _unauthorized(
                "missing credentials: send the header 'Authorization: Bearer <token>'",
                invalid=False,
            )
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            # The header was decoded as latin-1, so this gives back the bytes sent.
            candidates = [credentials.strip().encode("latin-1")]
        elif scheme == "basic":
            candidates = _basic_candidates(credentials.strip())
        else:
            raise _unauthorized(
                f"unsupported authorization scheme {scheme!r}: send 'Authorization: Bearer <token>'",
                invalid=True,
            )

        match = self._match(candidates)
        if match is None:
            raise _unauthorized(
                "invalid token: check the token, or ask the server's operator for one",
                invalid=True,
            )
        return match

    def _match(self, candidates: list[bytes]) -> TokenScope | None:
        # Compare with every token and never stop early, so the response time
        # reveals nothing about a guess.
        assert self._tokens is not None
        found: TokenScope | None = None
        for candidate in candidates:
            for token, token_scope in self._tokens:
                if hmac.compare_digest(candidate, token) and found is None:
                    found = token_scope
        return found


def _basic_candidates(credentials: str) -> list[bytes]:
    try:
        text = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError):
        raise _unauthorized(
            "invalid Basic credentials: they must be base64 of 'user:password'",
            invalid=True,
        ) from None
    _user, colon, password = text.partition(b":")
    return [text, password] if colon else [text]


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_origin(origin: str | None, host_header: str | None, cors: CorsPolicy | None) -> None:
    """Reject a browser request from another site to a server without a secret."""
    if origin is None:
        # Not sent by a browser for this request (curl, httpx, the dialect).
        return
    if cors is not None and cors.allows(origin):
        return
    _, separator, authority = origin.partition("://")
    if separator and host_header is not None and authority.lower() == host_header.lower():
        # The server's own pages, such as the explorer.
        return
    raise ApiError(
        403,
        f"this server has no secret, so it accepts browser requests only from its own "
        f"pages and from the origins given with --cors-origin, and this request comes "
        f"from {origin!r}: start the server with a secret, or allow the origin with "
        "--cors-origin",
    )


def _check_loopback_host(host_header: str | None) -> None:
    if host_header is None:
        return
    host = host_header
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if not is_loopback(host):
        raise ApiError(
            403,
            f"this server has no secret, so it accepts requests only for a loopback host "
            f"name (localhost, 127.0.0.1, [::1]), and this request names {host_header!r}: "
            "start the server with a secret to serve other host names",
        )


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1")
    return None


def _unauthorized(message: str, *, invalid: bool) -> ApiError:
    challenge = f'Bearer realm="{REALM}"'
    if invalid:
        challenge += ', error="invalid_token"'
    return ApiError(401, message, headers={"WWW-Authenticate": challenge})


async def _send_error(send: Send, error: ApiError) -> None:
    body = dumps({"error": error.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in error.headers.items()
    )
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
