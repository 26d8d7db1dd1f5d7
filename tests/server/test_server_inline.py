"""Short reads on the event loop: what runs there, what moves to a worker thread, and what is left behind."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson
import pytest

from dorm_sqlalchemy import Dorm
from dorm_sqlalchemy.server.errors import ApiError
from dorm_sqlalchemy.server.inline import INLINE_MAX_LENGTH, INLINE_MAX_ROWS, run_inline
from dorm_sqlalchemy.server.protocol import Statement
from dorm_sqlalchemy.server.settings import ServerLimits

from .conftest import LiveServer

LIMITS = ServerLimits()


@pytest.fixture
def dorm(make_dorm: Any) -> Dorm:
    """A registry whose tenant ``acme`` has a table of 1,000 rows and an idle connection."""
    registry = make_dorm()
    with registry.raw_connection("acme") as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(key, f"n{key}") for key in range(1, 1001)])
    return registry


def _run(dorm: Dorm, sql: str, *params: Any, limits: ServerLimits = LIMITS) -> Any:
    return run_inline(dorm, "acme", Statement(sql, params), limits)


def test_inline_point_query_returns_rows(dorm: Dorm) -> None:
    result = _run(dorm, "SELECT id, name FROM t WHERE id = ?", 7)

    assert result is not None
    assert result.columns == ["id", "name"]
    assert orjson.loads(result.rows_json) == [[7, "n7"]]
    assert (result.rows_read, result.rows_written) == (1, 0)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (name) VALUES ('x')",
        "UPDATE t SET name = 'x'",
        "DELETE FROM t",
        "CREATE TABLE u (x)",
        "PRAGMA defer_foreign_keys = 1",
        "ATTACH ':memory:' AS other",
        "SELECT no_such_column FROM t",
        "SELECT * FROM no_such_table",
    ],
)
def test_inline_leaves_statement_to_worker(dorm: Dorm, sql: str) -> None:
    assert _run(dorm, sql) is None


def test_inline_write_changes_nothing(dorm: Dorm) -> None:
    _run(dorm, "DELETE FROM t")

    with dorm.raw_connection("acme") as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (1000,)


def test_inline_long_statement_stops_quickly(dorm: Dorm) -> None:
    started = time.monotonic()

    result = _run(
        dorm,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n",
    )

    assert result is None
    assert time.monotonic() - started < 0.5


def test_inline_large_result_left_to_worker(dorm: Dorm) -> None:
    assert _run(dorm, "SELECT * FROM t LIMIT ?", INLINE_MAX_ROWS + 1) is None


def test_inline_result_at_row_bound_returned(dorm: Dorm) -> None:
    result = _run(dorm, "SELECT * FROM t LIMIT ?", INLINE_MAX_ROWS)

    assert result is not None
    assert result.rows_read == INLINE_MAX_ROWS


def test_inline_respects_smaller_row_limit(dorm: Dorm) -> None:
    limits = ServerLimits(max_result_rows=5)

    assert _run(dorm, "SELECT * FROM t LIMIT 6", limits=limits) is None


def test_inline_long_value_left_to_worker(dorm: Dorm) -> None:
    assert _run(dorm, "SELECT zeroblob(?)", INLINE_MAX_LENGTH + 1) is None


def test_inline_restores_connection_settings(dorm: Dorm) -> None:
    with dorm.raw_connection("acme") as connection:
        length_before = connection.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)

    _run(dorm, "SELECT * FROM t WHERE id = 1")
    _run(dorm, "SELECT zeroblob(?)", INLINE_MAX_LENGTH + 1)

    with dorm.raw_connection("acme") as connection:
        assert connection.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) == length_before
        assert not connection.in_transaction
        assert connection.execute("SELECT length(zeroblob(?))", (INLINE_MAX_LENGTH + 1,)).fetchone() == (
            INLINE_MAX_LENGTH + 1,
        )


def test_inline_skips_tenant_not_open(make_dorm: Any) -> None:
    registry = make_dorm()

    assert run_inline(registry, "fresh", Statement("SELECT 1", ()), LIMITS) is None
    assert not registry.exists("fresh")


def test_inline_skips_in_memory_tenant() -> None:
    with Dorm("sqlite://") as registry:
        with registry.raw_connection("acme"):
            pass

        assert run_inline(registry, "acme", Statement("SELECT 1", ()), LIMITS) is None


def test_inline_rejects_several_statements(dorm: Dorm) -> None:
    with pytest.raises(ApiError) as raised:
        _run(dorm, "SELECT 1; SELECT 2")

    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("sql", "status"),
    [
        ("SELECT * FROM t LIMIT 300", 200),
        ("SELECT zeroblob(100000)", 200),
        ("INSERT INTO t (name) VALUES ('x') RETURNING id", 200),
        ("PRAGMA defer_foreign_keys = 1", 200),
        ("ATTACH ':memory:' AS other", 403),
        ("SELECT nope FROM t", 400),
    ],
)
def test_worker_path_answers_what_inline_leaves(
    start_server: Any, dorm: Dorm, sql: str, status: int
) -> None:
    server: LiveServer = start_server(dorm)

    response = server.sql("acme", sql)

    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT length(printf('%.*c', 70000, 'x'))",
        "SELECT length(format('%070000d', 1))",
        "SELECT 'ab' LIKE '" + "%" * 300 + "b'",
        "SELECT name FROM t WHERE name LIKE 'n1%'",
        "SELECT name FROM t WHERE name GLOB 'n1*'",
        "SELECT instr(name, '1') FROM t WHERE id = 1",
        "SELECT replace(name, 'n', 'm') FROM t WHERE id = 1",
        "SELECT ltrim(name, 'n') FROM t WHERE id = 1",
    ],
)
def test_inline_leaves_unbounded_steps_to_worker(dorm: Dorm, sql: str) -> None:
    assert _run(dorm, sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*), max(id), sum(id) FROM t",
        "SELECT upper(name), length(name), substr(name, 2) FROM t WHERE id = 1",
        "SELECT json_extract(json_object('a', name), '$.a') FROM t WHERE id = 1",
        "SELECT date('2026-12-05'), coalesce(NULL, 1), typeof(name) FROM t WHERE id = 1",
    ],
)
def test_inline_runs_linear_functions(dorm: Dorm, sql: str) -> None:
    assert _run(dorm, sql) is not None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT length(printf('%.*c', 70000, 'x'))", 70000),
        ("SELECT length(format('%070000d', 1))", 70000),
        ("SELECT coalesce(printf('%.*c', 3, 'y'), 'none')", "yyy"),
        ("SELECT 'ab' LIKE '" + "%" * 300 + "b'", 1),
    ],
)
def test_single_statement_matches_transaction_answer(
    start_server: Any, dorm: Dorm, sql: str, expected: Any
) -> None:
    server: LiveServer = start_server(dorm)
    server.sql("acme", "SELECT 1")

    single = server.sql("acme", sql).json()["result"]["rows"]
    in_transaction = server.transaction("acme", sql).json()["result"][0]["rows"]

    assert single == [[expected]]
    assert in_transaction == [[expected]]
