"""Bounded request size, statement time and result size, each with a clear 4xx error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dorm_sqlalchemy.server import ServerLimits

from .conftest import LiveServer

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.fixture
def limited(start_server: Any) -> LiveServer:
    limits = ServerLimits(
        max_body_bytes=2000,
        statement_timeout=0.5,
        max_result_rows=100,
        max_result_bytes=5000,
        stream_batch_rows=10,
    )
    live = start_server(limits=limits)
    live.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    return live


def test_body_over_limit_by_length_is_413(limited: LiveServer) -> None:
    response = limited.sql("acme", "SELECT ?", ["x" * 3000])

    assert response.status_code == 413
    assert "larger than 2000 bytes" in response.json()["error"]


def test_chunked_body_over_limit_is_413(limited: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"sql": "SELECT ?", "params": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    response = limited.client.post("/acme/api/db/query/raw", content=chunks())

    assert response.status_code == 413


def test_body_at_limit_is_accepted(limited: LiveServer) -> None:
    response = limited.sql("acme", "SELECT length(?)", ["x" * 1900])

    assert response.status_code == 200
    assert response.json()["result"]["rows"] == [[1900]]


def test_long_statement_is_stopped_with_408(limited: LiveServer) -> None:
    started = time.monotonic()

    response = limited.sql("acme", ENDLESS)

    assert response.status_code == 408
    assert "longer than the limit of 0.5 s" in response.json()["error"]
    assert time.monotonic() - started < 5


def test_time_limit_covers_whole_transaction(limited: LiveServer) -> None:
    response = limited.transaction("acme", "INSERT INTO t (body) VALUES ('kept?')", ENDLESS)

    assert response.status_code == 408
    assert limited.rows("acme", "SELECT count(*) FROM t") == [[0]]


def test_long_write_is_rolled_back(limited: LiveServer) -> None:
    response = limited.sql(
        "acme",
        "INSERT INTO t (body) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
    )

    assert response.status_code == 408
    assert limited.rows("acme", "SELECT count(*) FROM t") == [[0]]


def test_server_answers_after_time_out(limited: LiveServer) -> None:
    limited.sql("acme", ENDLESS)

    started = time.monotonic()
    rows = limited.rows("acme", "SELECT 1")

    assert rows == [[1]]
    assert time.monotonic() - started < 1


def test_result_over_row_limit_is_400(limited: LiveServer) -> None:
    response = limited.sql("acme", "SELECT value FROM json_each(?)", [str(list(range(101)))])

    assert response.status_code == 400
    assert "more than 100 rows" in response.json()["error"]
    assert "LIMIT" in response.json()["error"]
    assert "/query/stream" in response.json()["error"]


def test_result_at_row_limit_is_returned(limited: LiveServer) -> None:
    response = limited.sql("acme", "SELECT value FROM json_each(?)", [str(list(range(100)))])

    assert response.status_code == 200
    assert len(response.json()["result"]["rows"]) == 100


def test_row_limit_counts_whole_transaction(limited: LiveServer) -> None:
    half = str(list(range(60)))

    response = limited.transaction(
        "acme",
        ("SELECT value FROM json_each(?)", [half]),
        ("SELECT value FROM json_each(?)", [half]),
    )

    assert response.status_code == 400


def test_returning_over_row_limit_writes_nothing(limited: LiveServer) -> None:
    response = limited.sql(
        "acme",
        "INSERT INTO t (body) SELECT value FROM json_each(?) RETURNING id",
        [str(list(range(150)))],
    )

    assert response.status_code == 400
    assert limited.rows("acme", "SELECT count(*) FROM t") == [[0]]


def test_result_over_byte_limit_is_400(limited: LiveServer) -> None:
    response = limited.sql("acme", "SELECT zeroblob(6000)")

    assert response.status_code == 400
    assert "larger than 5000 bytes" in response.json()["error"]


def test_stream_has_no_row_limit(limited: LiveServer) -> None:
    response = limited.client.post(
        "/acme/api/db/query/stream",
        json={
            "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000) SELECT x FROM c"
        },
    )

    lines = response.text.splitlines()
    assert response.status_code == 200
    assert len(lines) == 1002


@pytest.mark.parametrize(
    "options",
    [
        {"max_body_bytes": 0},
        {"max_result_rows": -1},
        {"statement_timeout": 0},
        {"statement_timeout": float("nan")},
        {"max_result_bytes": True},
    ],
)
def test_invalid_limits_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        ServerLimits(**options)
