"""The StarbaseDB-style protocol of ``/query/raw``: shapes, statements, tenants and errors."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import LiveServer


def test_single_statement_shape(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    server.sql("acme", "INSERT INTO t (name) VALUES ('a'), ('b')")

    response = server.sql("acme", "SELECT id, name FROM t ORDER BY id")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "result": {
            "columns": ["id", "name"],
            "rows": [[1, "a"], [2, "b"]],
            "meta": {"rows_read": 2, "rows_written": 0},
        }
    }


def test_write_counts_rows_written(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (x)")

    response = server.sql("acme", "INSERT INTO t VALUES (1), (2), (3)")

    assert response.json()["result"] == {
        "columns": [],
        "rows": [],
        "meta": {"rows_read": 0, "rows_written": 3},
    }


def test_transaction_shape(server: LiveServer) -> None:
    response = server.transaction(
        "acme",
        "CREATE TABLE t (x)",
        ("INSERT INTO t VALUES (?)", [1]),
        "SELECT x FROM t",
    )

    assert response.status_code == 200
    assert response.json() == {
        "result": [
            {"columns": [], "rows": [], "meta": {"rows_read": 0, "rows_written": 0}},
            {"columns": [], "rows": [], "meta": {"rows_read": 0, "rows_written": 1}},
            {"columns": ["x"], "rows": [[1]], "meta": {"rows_read": 1, "rows_written": 0}},
        ],
        "transaction": {"success": True},
    }


def test_duplicate_column_names_keep_full_rows(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE a (id INTEGER PRIMARY KEY)")
    server.sql("acme", "CREATE TABLE b (id INTEGER PRIMARY KEY)")
    server.sql("acme", "INSERT INTO a VALUES (1)")
    server.sql("acme", "INSERT INTO b VALUES (2)")

    result = server.sql("acme", "SELECT a.id, b.id FROM a, b").json()["result"]

    assert result["columns"] == ["id", "id"]
    assert result["rows"] == [[1, 2]]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (name) VALUES ('x') RETURNING rowid, *",
        'INSERT INTO "main"."t" ("name") VALUES(\'x\') RETURNING rowid, *',
    ],
)
def test_insert_returning(server: LiveServer, sql: str) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")

    result = server.sql("acme", sql).json()["result"]

    assert result["columns"] == ["id", "id", "name"]
    assert result["rows"] == [[1, 1, "x"]]
    assert result["meta"]["rows_written"] == 1
    assert server.rows("acme", "SELECT name FROM t") == [["x"]]


def test_update_returning(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    server.sql("acme", "INSERT INTO t VALUES (1, 'old')")

    result = server.sql("acme", "UPDATE t SET name = 'new' WHERE id = 1 RETURNING *").json()[
        "result"
    ]

    assert result["rows"] == [[1, "new"]]
    assert server.rows("acme", "SELECT name FROM t") == [["new"]]


def test_named_parameters(server: LiveServer) -> None:
    rows = server.rows("acme", "SELECT :a + :b AS total", {"a": 2, ":b": 3})

    assert rows == [[5]]


@pytest.mark.parametrize(
    "sql", ["SELECT 1;", "SELECT 1; -- done", "SELECT 1 /* c */ ;  /* d */ ", "SELECT 1;;"]
)
def test_trailing_semicolon_and_comments(server: LiveServer, sql: str) -> None:
    assert server.rows("acme", sql) == [[1]]


def test_trigger_body_is_one_statement(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (x)")
    server.sql("acme", "CREATE TABLE log (x)")

    response = server.sql(
        "acme",
        "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.x); END;",
    )
    server.sql("acme", "INSERT INTO t VALUES (7)")

    assert response.status_code == 200
    assert server.rows("acme", "SELECT x FROM log") == [[7]]


def test_tenant_name_is_case_insensitive(server: LiveServer) -> None:
    server.sql("Acme", "CREATE TABLE t (x)")

    assert server.rows("ACME", "SELECT count(*) FROM t") == [[0]]
    assert list(server.dorm.tenants()) == ["acme"]


@pytest.mark.parametrize(
    "tenant", [".x", "%2e%2e", "a%3Fmode%3Dro", "a%23b", "a%00b", "x" * 64, "-a", "con"]
)
def test_invalid_tenant_is_400(server: LiveServer, tenant: str) -> None:
    response = server.client.post(f"/{tenant}/api/db/query/raw", json={"sql": "SELECT 1"})

    assert response.status_code == 400
    assert "invalid tenant name" in response.json()["error"]
    assert list(server.dorm.tenants()) == []


def test_slash_in_tenant_matches_no_route(server: LiveServer) -> None:
    response = server.client.post("/a%2Fb/api/db/query/raw", json={"sql": "SELECT 1"})

    assert response.status_code == 404
    assert list(server.dorm.tenants()) == []


def test_unknown_tenant_is_404_without_create(start_server: Any, make_dorm: Any) -> None:
    live = start_server(make_dorm(create=False))

    response = live.sql("nobody", "SELECT 1")

    assert response.status_code == 404
    assert "nobody" in response.json()["error"]
    assert list(live.dorm.tenants()) == []


def test_unknown_tenant_created_on_first_use(server: LiveServer) -> None:
    response = server.sql("fresh", "SELECT 1")

    assert response.status_code == 200
    assert server.dorm.exists("fresh")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"params": []}', 'no "sql"'),
        (b'{"sql": 1}', "must be a string"),
        (b'{"sql": "SELECT 1", "params": 5}', "must be a list"),
        (b'{"transaction": []}', "is empty"),
        (b'{"transaction": {}}', "must be a list"),
        (b'{"transaction": [1]}', "must be an object"),
        (b'{"sql": "SELECT 1", "transaction": []}', 'both "sql" and "transaction"'),
        (b'{"sql": "SELECT ?", "params": [NaN]}', "NaN"),
        (b'{"sql": "SELECT \\ud800"}', "surrogate"),
        (b"\xff\xfe", "not"),
    ],
)
def test_bad_request_body_is_400(server: LiveServer, body: bytes, fragment: str) -> None:
    response = server.client.post(
        "/acme/api/db/query/raw", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert fragment in response.json()["error"]


@pytest.mark.parametrize(
    ("sql", "params", "fragment"),
    [
        ("SELEC 1", None, "syntax error"),
        ("SELECT * FROM missing", None, "no such table"),
        ("SELECT ?", [], "bindings"),
        ("SELECT ?", [1, 2], "bindings"),
        ("SELECT :a", {"b": 1}, ":a"),
        ("", None, "empty"),
        ("-- nothing", None, "empty"),
        ("SELECT 1\x00", None, "NUL"),
    ],
)
def test_bad_sql_is_400(server: LiveServer, sql: str, params: Any, fragment: str) -> None:
    response = server.sql("acme", sql, params)

    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE t",
        "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
        "SELECT ';'; DELETE FROM t",
        "/* a; */ SELECT 1; /* b */ DELETE FROM t",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; DROP TABLE t",
    ],
)
def test_several_statements_rejected_and_nothing_runs(server: LiveServer, sql: str) -> None:
    server.sql("acme", "CREATE TABLE t (x)")
    server.sql("acme", "INSERT INTO t VALUES (0)")

    response = server.sql("acme", sql)

    assert response.status_code == 400
    assert "more than one statement" in response.json()["error"]
    assert server.rows("acme", "SELECT count(*) FROM t") == [[1]]
    assert server.rows("acme", "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'") == [[0]]


def test_several_statements_in_transaction_item_rejected(server: LiveServer) -> None:
    server.sql("acme", "CREATE TABLE t (x)")

    response = server.transaction("acme", "INSERT INTO t VALUES (1)", "SELECT 1; DELETE FROM t")

    assert response.status_code == 400
    assert response.json()["error"].startswith("statement 2 of 2 was rejected")
    assert server.rows("acme", "SELECT count(*) FROM t") == [[0]]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/acme/api/db/query/raw", 405),
        ("POST", "/acme/api/db/query/other", 404),
        ("GET", "/no/such/path", 404),
    ],
)
def test_routing_errors_are_json(server: LiveServer, method: str, path: str, status: int) -> None:
    response = server.client.request(method, path)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]


def test_empty_transaction_item_sql_is_400(server: LiveServer) -> None:
    response = server.client.post("/acme/api/db/query/raw", json={"transaction": [{"sql": "  "}]})

    assert response.status_code == 400
    assert "statement 1 of 1" in response.json()["error"]
