"""Fixtures for the dorm+http dialect tests: a real uvicorn server on 127.0.0.1 and engines on it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects import registry

from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.server import create_app

SECRET = "s3cret"
TENANT = "acme"

# The distribution declares these as entry points; the tests must not depend
# on how the package was installed.
registry.register("dorm.http", "dorm_sqlalchemy.dialects.http", "DormHTTPDialect")
registry.register("dorm.https", "dorm_sqlalchemy.dialects.http", "DormHTTPSDialect")


@dataclass
class LiveServer:
    """A running server: its address, and the registry it serves."""

    host: str
    port: int
    dorm: Dorm

    def api_url(self, tenant: str = TENANT) -> str:
        """The http:// root of a tenant's SQL API, as the DB-API driver takes it."""
        return f"http://{self.host}:{self.port}/{tenant}/api/db"

    def engine_url(self, tenant: str = TENANT, secret: str | None = SECRET) -> str:
        """The dorm+http:// URL of a tenant, with the secret as the password."""
        credentials = f":{secret}@" if secret else ""
        return f"dorm+http://{credentials}{self.host}:{self.port}/{tenant}/api/db"


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(dorm: Dorm) -> Iterator[LiveServer]:
    """Serve ``dorm`` with the secret :data:`SECRET` for the block; stop the server when it ends."""
    app = create_app(dorm, secret=SECRET)
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start within 10 s")
        time.sleep(0.01)

    try:
        yield LiveServer("127.0.0.1", port, dorm)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def server(make_dorm: Any) -> Iterator[LiveServer]:
    """Serve a fresh registry; the server stops before the registry closes."""
    with serve(make_dorm()) as live:
        yield live


@pytest.fixture
def make_engine(server: LiveServer) -> Iterator[Any]:
    """Build dorm+http engines on the test server; dispose them all afterwards."""
    engines: list[Engine] = []

    def make(tenant: str = TENANT, secret: str | None = SECRET, **options: Any) -> Engine:
        engine = create_engine(server.engine_url(tenant, secret), **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    """A dorm+http engine on tenant :data:`TENANT` of the test server."""
    return make_engine()


@pytest.fixture
def local_engine(server: LiveServer) -> Engine:
    """The registry's own engine on tenant :data:`TENANT`: the same file, without HTTP."""
    return server.dorm.engine(TENANT)
