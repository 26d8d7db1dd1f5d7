"""CORSMiddleware merges its headers into the application's response headers."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from dorm_sqlalchemy.server.cors import CORSMiddleware, CorsPolicy

APP_HEADERS = [
    (b"content-type", b"application/json"),
    (b"access-control-allow-origin", b"https://stale.example"),
    (b"vary", b"Accept-Encoding"),
]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": list(APP_HEADERS)})
    await send({"type": "http.response.body", "body": b"{}"})


async def _response_headers(origins: Any, origin: bytes) -> list[tuple[bytes, bytes]]:
    middleware = CORSMiddleware(_app, policy=CorsPolicy(origins))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"origin", origin)]}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return list(sent[0]["headers"])


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


@pytest.mark.parametrize(
    ("origins", "expected"),
    [("*", b"*"), (["https://app.example"], b"https://app.example")],
)
async def test_cors_origin_replaces_application_value(origins: Any, expected: bytes) -> None:
    headers = await _response_headers(origins, b"https://app.example")

    assert _values(headers, b"access-control-allow-origin") == [expected]


async def test_cors_keeps_other_application_headers() -> None:
    headers = await _response_headers("*", b"https://app.example")

    assert _values(headers, b"content-type") == [b"application/json"]
    assert _values(headers, b"vary") == [b"Accept-Encoding"]


async def test_cors_adds_origin_to_application_vary() -> None:
    headers = await _response_headers(["https://app.example"], b"https://other.example")

    assert _values(headers, b"vary") == [b"Accept-Encoding, Origin"]


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("http://App.example/", "http://app.example"),
        ("https://studio.example:443", "https://studio.example"),
        ("http://[::1]:8787", "http://[::1]:8787"),
    ],
)
def test_configured_origin_matches_browser_spelling(configured: str, sent: str) -> None:
    assert CorsPolicy([configured]).allows(sent)


@pytest.mark.parametrize("origin", ["studio.example", "ftp://x.example", "https://x.example/app", "null"])
def test_invalid_origin_rejected(origin: str) -> None:
    with pytest.raises(ValueError, match="invalid CORS origin"):
        CorsPolicy([origin])
