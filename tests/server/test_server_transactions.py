"""Atomic transactions, constraint errors and their status codes."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from .conftest import SECRET, LiveServer


@pytest.fixture
def items(server: LiveServer) -> LiveServer:
    server.sql(
        "acme",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, qty INTEGER CHECK (qty >= 0))",
    )
    server.sql("acme", "INSERT INTO items VALUES (1, 'apple', 5)")
    return server


def test_failing_statement_rolls_back_earlier_ones(items: LiveServer) -> None:
    response = items.transaction(
        "acme",
        "INSERT INTO items VALUES (2, 'pear', 1)",
        "UPDATE items SET qty = 99 WHERE id = 1",
        "INSERT INTO items VALUES (1, 'again', 1)",
    )

    assert response.status_code == 409
    assert response.json()["error"].startswith(
        "statement 3 of 3 failed, so the transaction was rolled back"
    )
    assert "result" not in response.json()
    assert items.rows("acme", "SELECT id, name, qty FROM items") == [[1, "apple", 5]]


def test_syntax_error_rolls_back_ddl(items: LiveServer) -> None:
    response = items.transaction(
        "acme",
        "CREATE TABLE extra (a)",
        "INSERT INTO extra VALUES (1)",
        "INSERT INTO nowhere VALUES (1)",
    )

    assert response.status_code == 400
    assert "statement 3 of 3" in response.json()["error"]
    assert items.rows("acme", "SELECT count(*) FROM sqlite_schema WHERE name = 'extra'") == [[0]]


def test_successful_transaction_commits_all(items: LiveServer) -> None:
    response = items.transaction(
        "acme",
        ("INSERT INTO items VALUES (?, ?, ?)", [2, "pear", 1]),
        ("UPDATE items SET qty = qty - 1 WHERE id = ?", [1]),
        "DELETE FROM items WHERE id = 2",
    )

    assert response.status_code == 200
    assert [result["meta"]["rows_written"] for result in response.json()["result"]] == [1, 1, 1]
    assert items.rows("acme", "SELECT id, qty FROM items") == [[1, 4]]


@pytest.mark.parametrize(
    ("sql", "status", "fragment"),
    [
        ("INSERT INTO items VALUES (1, 'x', 1)", 409, "PRIMARY KEY"),
        ("INSERT INTO items VALUES (2, 'apple', 1)", 409, "UNIQUE"),
        ("INSERT INTO items VALUES (2, NULL, 1)", 422, "NOT NULL"),
        ("INSERT INTO items VALUES (2, 'pear', -1)", 422, "CHECK"),
        ("INSERT INTO orders VALUES (1, 42)", 409, "FOREIGN KEY"),
        ("INSERT INTO strict_t VALUES ('text')", 422, "DATATYPE"),
        ("INSERT INTO guarded VALUES (1)", 422, "no writes here"),
        ("INSERT INTO items VALUES ('x', 'y', 1)", 422, "datatype mismatch"),
    ],
)
def test_constraint_status(items: LiveServer, sql: str, status: int, fragment: str) -> None:
    items.sql(
        "acme",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id))",
    )
    items.sql("acme", "CREATE TABLE strict_t (n INTEGER) STRICT")
    items.sql("acme", "CREATE TABLE guarded (n)")
    items.sql(
        "acme",
        "CREATE TRIGGER guard BEFORE INSERT ON guarded BEGIN SELECT RAISE(ABORT, 'no writes here'); END",
    )

    response = items.sql("acme", sql)

    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_deferred_foreign_key_fails_at_commit(items: LiveServer) -> None:
    items.sql(
        "acme",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER "
        "REFERENCES items (id) DEFERRABLE INITIALLY DEFERRED)",
    )

    response = items.transaction("acme", "INSERT INTO orders VALUES (1, 42)", "SELECT 1")

    assert response.status_code == 409
    assert "FOREIGN KEY" in response.json()["error"]
    assert items.rows("acme", "SELECT count(*) FROM orders") == [[0]]


def test_failed_single_statement_leaves_nothing(items: LiveServer) -> None:
    response = items.sql(
        "acme",
        "INSERT INTO items (name, qty) SELECT 'n' || value, 5 - value FROM json_each('[1,2,3,4,5,6,7]')",
    )

    assert response.status_code == 422
    assert items.rows("acme", "SELECT count(*) FROM items") == [[1]]


def test_concurrent_read_then_write_transactions(items: LiveServer) -> None:
    items.sql("acme", "CREATE TABLE counter (n INTEGER)")
    errors: list[Any] = []

    def worker() -> None:
        with httpx.Client(
            base_url=items.url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=30
        ) as client:
            for _ in range(15):
                response = client.post(
                    "/acme/api/db/query/raw",
                    json={
                        "transaction": [
                            {"sql": "SELECT count(*) FROM counter"},
                            {"sql": "INSERT INTO counter SELECT count(*) FROM counter"},
                        ]
                    },
                )
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert items.rows("acme", "SELECT count(*), count(DISTINCT n) FROM counter") == [[90, 90]]


def test_rollback_leaves_connection_usable(items: LiveServer) -> None:
    items.transaction(
        "acme", "INSERT INTO items VALUES (2, 'pear', 1)", "INSERT INTO items VALUES (2, 'x', 1)"
    )

    response = items.transaction("acme", "INSERT INTO items VALUES (3, 'plum', 1)")

    assert response.status_code == 200
    assert items.rows("acme", "SELECT id FROM items ORDER BY id") == [[1], [3]]
