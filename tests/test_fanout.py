"""Dorm.fan_out: one read-only query across tenants."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from dorm_sqlalchemy import Dorm, DormError, TenantNotFound
from tests.models import Base, Note


@pytest.fixture
def tenants(dorm: Dorm) -> Dorm:
    for tenant, count in [("c", 3), ("a", 1), ("b", 2)]:
        Base.metadata.create_all(dorm.engine(tenant))
        with dorm.session(tenant) as session, session.begin():
            session.add_all(Note(body=f"{tenant}{n}") for n in range(count))
    return dorm


def test_rows_tagged_with_tenant(tenants: Dorm) -> None:
    rows = tenants.fan_out("SELECT body FROM notes ORDER BY id")
    assert [(row.tenant, row.body) for row in rows] == [
        ("a", "a0"),
        ("b", "b0"),
        ("b", "b1"),
        ("c", "c0"),
        ("c", "c1"),
        ("c", "c2"),
    ]


def test_count_totals_across_tenants(tenants: Dorm) -> None:
    rows = tenants.fan_out(select(func.count(Note.id).label("notes")))
    assert {row.tenant: row.notes for row in rows} == {"a": 1, "b": 2, "c": 3}
    assert sum(row.notes for row in rows) == 6


def test_listed_tenants_in_given_order(tenants: Dorm) -> None:
    rows = tenants.fan_out("SELECT count(*) AS n FROM notes", tenants=["C", "a"])
    assert [(row.tenant, row.n) for row in rows] == [("c", 3), ("a", 1)]


def test_parameters(tenants: Dorm) -> None:
    rows = tenants.fan_out("SELECT body FROM notes WHERE body LIKE ?", "%1")
    assert [row.body for row in rows] == ["b1", "c1"]


def test_unknown_tenant_raises_and_creates_nothing(tenants: Dorm) -> None:
    with pytest.raises(TenantNotFound):
        tenants.fan_out("SELECT 1", tenants=["a", "ghost"])
    assert not tenants.exists("ghost")


def test_error_names_tenant(tenants: Dorm) -> None:
    tenants.exec("b", "DROP TABLE notes")
    with pytest.raises(DormError, match="tenant 'b'"):
        tenants.fan_out("SELECT * FROM notes")


def test_tenant_column_conflict(tenants: Dorm) -> None:
    with pytest.raises(DormError, match="rename"):
        tenants.fan_out("SELECT body AS tenant FROM notes")


def test_concurrency_is_bounded(tenants: Dorm) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(value: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return value

    for name in ["a", "b", "c"]:
        connection = tenants._open(name).acquire_statement_connection()
        connection.create_function("slow", 1, slow)
        tenants._open(name).release_statement_connection(connection)

    rows = tenants.fan_out("SELECT slow(1) AS one", max_workers=2)

    assert len(rows) == 3
    assert peak == 2


@pytest.mark.parametrize("workers", [0, -1, "2", True])
def test_invalid_max_workers(tenants: Dorm, workers: object) -> None:
    with pytest.raises(ValueError, match="max_workers"):
        tenants.fan_out("SELECT 1", max_workers=workers)  # type: ignore[arg-type]


async def test_async_fan_out(tenants: Dorm) -> None:
    rows = await tenants.afan_out("SELECT count(*) AS n FROM notes")
    assert sum(row.n for row in rows) == 6


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM notes",
        "DROP TABLE notes",
        "INSERT INTO notes (body) VALUES ('x')",
        "PRAGMA foreign_keys = OFF",
        "ATTACH ':memory:' AS other",
        "CREATE TABLE other (x)",
    ],
)
def test_writes_rejected(tenants: Dorm, sql: str) -> None:
    with pytest.raises(DormError, match="only reads"):
        tenants.fan_out(sql)

    assert tenants.exec("a", "SELECT count(*) FROM notes").scalar() == 1
    assert tenants.exec("a", "PRAGMA foreign_keys").scalar() == 1


def test_writes_rejected_from_core(tenants: Dorm) -> None:
    from sqlalchemy import delete

    with pytest.raises(DormError, match="only reads"):
        tenants.fan_out(delete(Note))
    assert tenants.exec("c", "SELECT count(*) FROM notes").scalar() == 3


def test_reads_with_pragma_functions_allowed(tenants: Dorm) -> None:
    rows = tenants.fan_out("SELECT name FROM pragma_table_info('notes') ORDER BY cid", tenants=["a"])
    assert [row.name for row in rows] == ["id", "body"]


def test_tenants_string_rejected(tenants: Dorm) -> None:
    with pytest.raises(TypeError, match="list of names"):
        tenants.fan_out("SELECT 1", tenants="ab")  # type: ignore[arg-type]
