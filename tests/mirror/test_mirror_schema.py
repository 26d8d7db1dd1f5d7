"""Schema changes in tenants reach the aggregate."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from dorm_sqlalchemy import Dorm
from tests.mirror.helpers import aggregate_rows


@pytest.fixture
def aggregate_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/aggregate.db"


@pytest.fixture
def mirrored(make_dorm, aggregate_url: str) -> Dorm:
    return make_dorm(mirror=aggregate_url)


def aggregate_columns(url: str, table: str) -> list[str]:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    finally:
        connection.close()


def test_table_created_later_is_mirrored(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE first (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "INSERT INTO first VALUES (1)")
    mirrored.mirror.flush(10)
    with mirrored.engine("acme").begin() as connection:
        connection.exec_driver_sql("CREATE TABLE later (id INTEGER PRIMARY KEY, v TEXT)")
        connection.exec_driver_sql("INSERT INTO later VALUES (1, 'same transaction')")
    mirrored.exec("acme", "INSERT INTO later VALUES (2, 'after')")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "later") == [("acme", 1, "same transaction"), ("acme", 2, "after")]


def test_added_column_reaches_aggregate(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1)")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "ALTER TABLE t ADD COLUMN color TEXT DEFAULT 'blue'")
    mirrored.exec("acme", "INSERT INTO t (id, color) VALUES (2, 'red')")
    mirrored.mirror.flush(10)

    assert aggregate_columns(aggregate_url, "t") == ["tenant", "id", "color"]
    assert aggregate_rows(aggregate_url, "t") == [("acme", 1, "blue"), ("acme", 2, "red")]


def test_tenants_at_different_revisions_share_table(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, extra TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'x')")
    mirrored.exec("globex", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    mirrored.exec("globex", "INSERT INTO t VALUES (1)")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1, "x"), ("globex", 1, None)]


def test_dropped_column_reported(mirrored: Dorm, aggregate_url: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="dorm_sqlalchemy.mirror")
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, old TEXT)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 'x')")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "ALTER TABLE t DROP COLUMN old")
    mirrored.exec("acme", "INSERT INTO t VALUES (2)")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1, None), ("acme", 2, None)]
    messages = [record.getMessage() for record in caplog.records]
    assert any("old" in message and "dropped" in message for message in messages)


def test_dropped_table_rows_removed(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1)")
    mirrored.exec("globex", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    mirrored.exec("globex", "INSERT INTO t VALUES (1)")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "DROP TABLE t")
    mirrored.exec("acme", "CREATE TABLE other (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "INSERT INTO other VALUES (1)")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("globex", 1)]


def test_table_recreated_keeps_capture(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    mirrored.exec("acme", "INSERT INTO t VALUES (1, 1)")
    mirrored.mirror.flush(10)
    # Batch-mode migrations recreate tables this way, losing their triggers.
    with mirrored.engine("acme").begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t_new (id INTEGER PRIMARY KEY, v INTEGER)")
        connection.exec_driver_sql("INSERT INTO t_new SELECT * FROM t")
        connection.exec_driver_sql("DROP TABLE t")
        connection.exec_driver_sql("ALTER TABLE t_new RENAME TO t")
    mirrored.exec("acme", "UPDATE t SET v = 2")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "INSERT INTO t VALUES (3, 3)")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "t") == [("acme", 1, 2), ("acme", 3, 3)]


def _run_alone(dorm: Dorm, path: str, sql: str) -> None:
    """Run ``sql`` on tenant acme through ``path``, in a transaction of its own."""
    if path == "dorm.exec":
        dorm.exec("acme", sql)
    elif path == "session":
        with dorm.session("acme") as session, session.begin():
            session.execute(text(sql))
    else:
        with dorm.raw_connection("acme") as connection:
            connection.execute(sql)


@pytest.mark.parametrize("path", ["dorm.exec", "session", "raw connection"])
def test_schema_change_alone_is_mirrored(mirrored: Dorm, aggregate_url: str, path: str) -> None:
    mirrored.exec("acme", "CREATE TABLE kept (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "CREATE TABLE gone (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "INSERT INTO kept VALUES (1)")
    mirrored.exec("acme", "INSERT INTO gone VALUES (1)")
    mirrored.mirror.flush(10)

    _run_alone(mirrored, path, "ALTER TABLE kept ADD COLUMN color TEXT DEFAULT 'blue'")
    _run_alone(mirrored, path, "DROP TABLE gone")
    mirrored.mirror.flush(10)

    assert aggregate_rows(aggregate_url, "kept") == [("acme", 1, "blue")]
    assert aggregate_rows(aggregate_url, "gone") == []


def test_column_spelled_in_other_case_is_one_column(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE orders (id INTEGER PRIMARY KEY, Total INTEGER)")
    mirrored.exec("acme", "INSERT INTO orders VALUES (1, 10)")
    mirrored.mirror.flush(10)
    mirrored.exec("globex", "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
    mirrored.exec("globex", "INSERT INTO orders VALUES (1, 20)")
    mirrored.mirror.flush(10)

    assert aggregate_columns(aggregate_url, "orders") == ["tenant", "id", "Total"]
    assert aggregate_rows(aggregate_url, "orders") == [("acme", 1, 10), ("globex", 1, 20)]


def test_renamed_table_keeps_one_set_of_triggers(mirrored: Dorm, aggregate_url: str) -> None:
    mirrored.exec("acme", "CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    mirrored.exec("acme", "INSERT INTO orders VALUES (1)")
    mirrored.mirror.flush(10)
    mirrored.exec("acme", "ALTER TABLE orders RENAME TO purchases")
    mirrored.exec("acme", "INSERT INTO purchases VALUES (2)")
    mirrored.mirror.flush(10)

    triggers = mirrored.exec(
        "acme", "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'trigger' ORDER BY name"
    ).all()
    assert [tuple(row) for row in triggers] == [
        ("_dorm_mirror_purchases_del", "purchases"),
        ("_dorm_mirror_purchases_ins", "purchases"),
        ("_dorm_mirror_purchases_upd", "purchases"),
    ]
    assert aggregate_rows(aggregate_url, "purchases") == [("acme", 1), ("acme", 2)]
    assert aggregate_rows(aggregate_url, "orders") == []
