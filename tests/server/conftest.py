"""Fixtures for the HTTP API tests: real uvicorn servers on 127.0.0.1 and httpx clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.server import create_app

SECRET = "test-secret-0123456789"


@dataclass
class LiveServer:
    """A running server: its base URL, its registry, and a client with the secret."""

    url: str
    dorm: Dorm
    client: httpx.Client

    def sql(self, tenant: str, sql: str, params: Any = None, **options: Any) -> httpx.Response:
        """POST one statement to ``/query/raw`` of ``tenant``."""
        body: dict[str, Any] = {"sql": sql}
        if params is not None:
            body["params"] = params
        return self.client.post(f"/{tenant}/api/db/query/raw", json=body, **options)

    def transaction(self, tenant: str, *statements: Any, **options: Any) -> httpx.Response:
        """POST a transaction of ``sql`` strings or ``(sql, params)`` pairs."""
        items = []
        for statement in statements:
            if isinstance(statement, str):
                items.append({"sql": statement})
            else:
                items.append({"sql": statement[0], "params": statement[1]})
        return self.client.post(
            f"/{tenant}/api/db/query/raw", json={"transaction": items}, **options
        )

    def rows(self, tenant: str, sql: str, params: Any = None) -> list[list[Any]]:
        """Run ``sql`` and return its rows, failing the test on an error status."""
        response = self.sql(tenant, sql, params)
        assert response.status_code == 200, response.text
        return response.json()["result"]["rows"]


def _free_socket() -> socket.socket:
    # IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def start_server(make_dorm: Any) -> Iterator[Any]:
    """Start uvicorn servers in threads; each is stopped (before its registry closes) at the end."""
    started: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(
        dorm: Dorm | None = None, *, secret: str | None = SECRET, **options: Any
    ) -> LiveServer:
        dorm = dorm if dorm is not None else make_dorm()
        app = create_app(dorm, secret, **options)
        sock = _free_socket()
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start within 10 s")
            time.sleep(0.01)

        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        client = httpx.Client(base_url=url, headers=headers, timeout=30)
        started.append((server, thread, client))
        return LiveServer(url=url, dorm=dorm, client=client)

    yield start
    for server, thread, client in started:
        client.close()
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def server(start_server: Any) -> LiveServer:
    """A server with the default options and the secret :data:`SECRET`."""
    return start_server()
