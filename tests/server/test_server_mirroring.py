"""Writes made through the HTTP API reach the aggregate like any other write."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def aggregate_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_api_writes_mirrored(start_server: Any, make_dorm: Any, tmp_path: Path) -> None:
    aggregate = tmp_path / "_aggregate.db"
    dorm = make_dorm(mirror=f"sqlite:///{aggregate}")
    server = start_server(dorm)

    assert server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)").status_code == 200
    response = server.transaction(
        "acme",
        "INSERT INTO t (v, b) VALUES ('one', x'00ff') RETURNING rowid, *",
        "INSERT INTO t (v) VALUES ('two')",
        "UPDATE t SET v = 'ONE' WHERE id = 1",
        "DELETE FROM t WHERE id = 2",
    )
    assert response.status_code == 200
    dorm.mirror.flush(10)

    assert aggregate_rows(aggregate, "SELECT * FROM t") == [("acme", 1, "ONE", b"\x00\xff")]


def test_failed_api_transaction_not_mirrored(start_server: Any, make_dorm: Any, tmp_path: Path) -> None:
    aggregate = tmp_path / "_aggregate.db"
    dorm = make_dorm(mirror=f"sqlite:///{aggregate}")
    server = start_server(dorm)
    server.sql("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    server.sql("acme", "INSERT INTO t (v) VALUES ('kept')")

    response = server.transaction(
        "acme",
        "INSERT INTO t (v) VALUES ('rolled back')",
        "INSERT INTO t (v) VALUES (NULL)",
    )
    assert response.status_code == 422
    dorm.mirror.flush(10)

    assert aggregate_rows(aggregate, "SELECT v FROM t") == [("kept",)]


def test_api_drops_mirrored_table(start_server: Any, make_dorm: Any, tmp_path: Path) -> None:
    aggregate = tmp_path / "_aggregate.db"
    dorm = make_dorm(mirror=f"sqlite:///{aggregate}")
    server = start_server(dorm)
    for table in ("t", "kept"):
        server.sql("acme", f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
        server.sql("acme", f"INSERT INTO {table} VALUES (1)")
    dorm.mirror.flush(10)

    # DROP TABLE drops the mirror's triggers of the table along with it.
    response = server.sql("acme", "DROP TABLE t")
    dorm.mirror.flush(10)

    assert response.status_code == 200, response.text
    assert aggregate_rows(aggregate, "SELECT * FROM t") == []
    assert server.sql("acme", "DROP TRIGGER _dorm_mirror_kept_ins").status_code == 403
