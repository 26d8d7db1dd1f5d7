"""Authentication, scoped and read-only tokens, and CORS on every response."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from dorm_sqlalchemy.server import TokenScope, create_app

from .conftest import SECRET, LiveServer

ALLOWED_METHODS = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Starbase-Source, X-Data-Source, X-Dorm-Transaction"


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def _post(
    server: LiveServer, headers: dict[str, str], tenant: str = "acme", sql: str = "SELECT 1"
) -> httpx.Response:
    return httpx.post(f"{server.url}/{tenant}/api/db/query/raw", json={"sql": sql}, headers=headers)


@pytest.mark.parametrize(
    ("headers", "invalid"),
    [
        ({}, False),
        ({"Authorization": ""}, False),
        ({"Authorization": "Bearer wrong"}, True),
        ({"Authorization": f"Bearer {SECRET}x"}, True),
        ({"Authorization": f"Bearer {SECRET[:-1]}"}, True),
        ({"Authorization": f"Token {SECRET}"}, True),
        ({"Authorization": "Basic !!!"}, True),
        ({"Authorization": _basic("user:wrong")}, True),
    ],
)
def test_missing_or_wrong_token_is_401(
    server: LiveServer, headers: dict[str, str], invalid: bool
) -> None:
    response = _post(server, headers)

    assert response.status_code == 401
    assert response.json()["error"]
    assert response.headers["www-authenticate"].startswith('Bearer realm="dorm"')
    assert ('error="invalid_token"' in response.headers["www-authenticate"]) is invalid
    assert response.headers["access-control-allow-origin"] == "*"
    assert list(server.dorm.tenants()) == []


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {SECRET}",
        f"bearer {SECRET}",
        _basic(f"anyone:{SECRET}"),
        _basic(f":{SECRET}"),
    ],
)
def test_valid_credentials_pass(server: LiveServer, authorization: str) -> None:
    response = _post(server, {"Authorization": authorization})

    assert response.status_code == 200


def test_basic_whole_text_is_the_secret(start_server: Any) -> None:
    live = start_server(secret="dorm:s3cret")

    whole = _post(live, {"Authorization": _basic("dorm:s3cret")})
    password_only = _post(live, {"Authorization": _basic("x:s3cret")})

    assert whole.status_code == 200
    assert password_only.status_code == 401


def test_no_secret_means_open_access(start_server: Any) -> None:
    live = start_server(secret=None)

    response = _post(live, {})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8787", "127.0.0.1:1", "[::1]:8787", "127.3.2.1"]
)
def test_no_secret_accepts_loopback_hosts(start_server: Any, host: str) -> None:
    live = start_server(secret=None)

    response = _post(live, {"Host": host})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8787", "192.168.1.5", "[2001:db8::1]:80"]
)
def test_no_secret_rejects_other_hosts(start_server: Any, host: str) -> None:
    live = start_server(secret=None)

    response = _post(live, {"Host": host})

    assert response.status_code == 403
    assert "loopback host name" in response.json()["error"]
    assert list(live.dorm.tenants()) == []


def test_no_secret_allows_no_cross_origin_reads(start_server: Any) -> None:
    live = start_server(secret=None)

    response = _post(live, {"Origin": "https://evil.example"})
    preflight = httpx.options(
        f"{live.url}/acme/api/db/query/raw",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Origin": "http://127.0.0.1:9", "Content-Type": "application/x-www-form-urlencoded"},
    ],
    ids=["other site", "opaque origin", "other local port"],
)
def test_no_secret_rejects_writes_from_other_origins(
    start_server: Any, headers: dict[str, str]
) -> None:
    live = start_server(secret=None)
    live.dorm.exec("acme", "CREATE TABLE t (x)")

    response = httpx.post(
        f"{live.url}/acme/api/db/query/raw",
        content='{"sql": "INSERT INTO t VALUES (1)"}',
        headers=headers,
    )

    assert response.status_code == 403
    assert "--cors-origin" in response.json()["error"]
    assert live.dorm.exec("acme", "SELECT count(*) FROM t").scalar() == 0


def test_no_secret_accepts_own_pages(start_server: Any) -> None:
    live = start_server(secret=None)
    origin = live.url.rstrip("/")

    response = _post(live, {"Origin": origin})

    assert response.status_code == 200


def test_no_secret_with_explicit_origin(start_server: Any) -> None:
    live = start_server(secret=None, cors_origins=["https://studio.example"])

    response = _post(live, {"Origin": "https://studio.example"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://studio.example"


@pytest.mark.parametrize(
    ("origin", "granted"), [("https://studio.example", True), ("https://evil.example", False)]
)
def test_private_network_preflight(start_server: Any, origin: str, granted: bool) -> None:
    live = start_server(cors_origins=["https://studio.example"])

    response = httpx.options(
        f"{live.url}/acme/api/db/query/raw",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true",
        },
    )

    assert response.status_code == 204
    assert (response.headers.get("access-control-allow-private-network") == "true") is granted


@pytest.mark.parametrize("path", ["/explorer/", "/openapi.json", "/explorer/static/explorer.js"])
def test_public_paths_need_no_token(server: LiveServer, path: str) -> None:
    response = httpx.get(server.url + path)

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/api/tenants", "/api/tenants/acme/tables"])
def test_explorer_endpoints_need_token(server: LiveServer, path: str) -> None:
    response = httpx.get(server.url + path)

    assert response.status_code == 401


def test_tenant_named_explorer_is_not_public(server: LiveServer) -> None:
    response = _post(server, {}, tenant="explorer")

    assert response.status_code == 401


@pytest.mark.parametrize(
    "path", ["/acme/api/db/query/raw", "/acme/api/db/query/stream", "/anything"]
)
def test_preflight_answered_without_auth(server: LiveServer, path: str) -> None:
    response = httpx.options(
        server.url + path,
        headers={
            "Origin": "https://studio.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-starbase-source",
        },
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == ALLOWED_METHODS
    assert response.headers["access-control-allow-headers"] == ALLOWED_HEADERS
    assert response.content == b""


def test_cors_headers_on_errors(server: LiveServer) -> None:
    responses = {
        400: server.sql("acme", "SELEC"),
        401: _post(server, {}),
        404: server.client.get("/nothing"),
        405: server.client.get("/acme/api/db/query/raw"),
        413: server.sql("acme", "SELECT ?", ["x" * 2_000_000]),
    }

    for status, response in responses.items():
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == "*", status
        assert response.headers["access-control-allow-headers"] == ALLOWED_HEADERS, status


def test_database_fault_is_500_with_cors_and_log(
    start_server: Any, make_dorm: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dorm = make_dorm()
    dorm.exec("broken", "SELECT 1").all()
    path = dorm.path("broken")
    dorm.close()
    assert path is not None
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    live = start_server(make_dorm(root=path.parent))

    with caplog.at_level(logging.ERROR, logger="dorm_sqlalchemy"):
        response = live.sql("broken", "SELECT * FROM sqlite_schema")

    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == "*"
    assert "broken" in response.json()["error"]
    assert any("broken" in record.getMessage() for record in caplog.records)


def test_configured_origins(start_server: Any) -> None:
    live = start_server(cors_origins=["https://studio.example"])

    allowed = live.client.post(
        "/acme/api/db/query/raw",
        json={"sql": "SELECT 1"},
        headers={"Origin": "https://studio.example"},
    )
    other = live.client.post(
        "/acme/api/db/query/raw",
        json={"sql": "SELECT 1"},
        headers={"Origin": "https://evil.example"},
    )

    assert allowed.headers["access-control-allow-origin"] == "https://studio.example"
    assert "origin" in allowed.headers["vary"].lower()
    assert "access-control-allow-origin" not in other.headers


@pytest.fixture
def scoped(start_server: Any) -> LiveServer:
    live = start_server(
        tokens={
            "acme-writer": TokenScope(tenants=["Acme"]),
            "reader": TokenScope(read_only=True),
        }
    )
    for tenant in ("acme", "globex"):
        live.sql(tenant, "CREATE TABLE t (x)")
        live.sql(tenant, "INSERT INTO t VALUES (1)")
    return live


def test_tenant_scoped_token(scoped: LiveServer) -> None:
    headers = {"Authorization": "Bearer acme-writer"}

    own = _post(scoped, headers, "acme", "INSERT INTO t VALUES (2)")
    other = _post(scoped, headers, "globex", "SELECT * FROM t")
    listing = httpx.get(f"{scoped.url}/api/tenants", headers=headers).json()

    assert own.status_code == 200
    assert other.status_code == 403
    assert "does not grant tenant 'globex'" in other.json()["error"]
    assert [tenant["name"] for tenant in listing["tenants"]] == ["acme"]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET x = 3",
        "DELETE FROM t",
        "CREATE TABLE u (a)",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN y",
        "CREATE INDEX ix ON t (x)",
        "CREATE VIEW v AS SELECT 1",
        "REPLACE INTO t VALUES (1)",
        "INSERT INTO t VALUES (2) RETURNING *",
    ],
)
def test_read_only_token_cannot_write(scoped: LiveServer, sql: str) -> None:
    response = _post(scoped, {"Authorization": "Bearer reader"}, "acme", sql)

    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert scoped.rows("acme", "SELECT x FROM t") == [[1]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t",
        'SELECT * FROM "main".sqlite_schema',
        "SELECT * FROM \"main\".pragma_table_info('t')",
        "PRAGMA index_list(t)",
    ],
)
def test_read_only_token_can_read(scoped: LiveServer, sql: str) -> None:
    response = _post(scoped, {"Authorization": "Bearer reader"}, "acme", sql)

    assert response.status_code == 200, response.text


def test_read_only_transaction_with_write_rolls_back(scoped: LiveServer) -> None:
    response = httpx.post(
        f"{scoped.url}/acme/api/db/query/raw",
        json={"transaction": [{"sql": "SELECT 1"}, {"sql": "DELETE FROM t"}]},
        headers={"Authorization": "Bearer reader"},
    )

    assert response.status_code == 403
    assert scoped.rows("acme", "SELECT count(*) FROM t") == [[1]]


def test_read_only_token_never_creates_tenant(scoped: LiveServer) -> None:
    response = _post(scoped, {"Authorization": "Bearer reader"}, "newcomer")

    assert response.status_code == 404
    assert not scoped.dorm.exists("newcomer")


def test_read_only_stream_cannot_write(scoped: LiveServer) -> None:
    response = httpx.post(
        f"{scoped.url}/acme/api/db/query/stream",
        json={"sql": "DELETE FROM t RETURNING *"},
        headers={"Authorization": "Bearer reader"},
    )

    assert response.status_code == 403
    assert scoped.rows("acme", "SELECT count(*) FROM t") == [[1]]


def test_write_after_read_only_request_on_same_connection(scoped: LiveServer) -> None:
    for _ in range(5):
        _post(scoped, {"Authorization": "Bearer reader"}, "acme", "INSERT INTO t VALUES (9)")

    response = scoped.sql("acme", "INSERT INTO t VALUES (2)")

    assert response.status_code == 200
    assert scoped.rows("acme", "SELECT x FROM t ORDER BY x") == [[1], [2]]


@pytest.mark.parametrize("secret", ["", " padded", "two words", "tab\tin"])
def test_create_app_rejects_unusable_secret(make_dorm: Any, secret: str) -> None:
    with pytest.raises(ValueError, match="invalid secret"):
        create_app(make_dorm(), secret)


def test_secret_never_logged(start_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        live = start_server(secret="very-secret-value")
        _post(live, {"Authorization": "Bearer wrong-guess"})
        _post(live, {"Authorization": "Bearer very-secret-value"})

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "very-secret-value" not in text
    assert "wrong-guess" not in text
    assert "authentication: bearer secret" in text


def test_rejections_logged_at_most_once_per_interval(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="dorm_sqlalchemy.server.auth"):
        for _ in range(20):
            _post(server, {"Authorization": "Bearer guess"})

    lines = [record.getMessage() for record in caplog.records if record.name.endswith("auth")]
    assert len(lines) == 1
    assert "401 invalid token" in lines[0]
    assert "127.0.0.1" in lines[0]
