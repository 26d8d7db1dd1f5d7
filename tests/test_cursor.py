"""Dorm.exec and Dorm.aexec: streaming cursors over raw SQL."""

from __future__ import annotations

import gc
import sys
import subprocess
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError, MultipleResultsFound, NoResultFound, OperationalError

from dorm_sqlalchemy import Dorm, DormError


@pytest.fixture
def people(dorm: Dorm) -> Dorm:
    dorm.exec("acme", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE, age INTEGER)")
    for index, name in enumerate(["ada", "grace", "edsger"], start=1):
        dorm.exec("acme", "INSERT INTO people VALUES (?, ?, ?)", index, name, 30 + index)
    return dorm


def test_iteration_yields_rows_by_name_and_index(people: Dorm) -> None:
    rows = list(people.exec("acme", "SELECT id, name FROM people ORDER BY id"))

    assert [row["name"] for row in rows] == ["ada", "grace", "edsger"]
    assert [row[0] for row in rows] == [1, 2, 3]


def test_column_names(people: Dorm) -> None:
    cursor = people.exec("acme", "SELECT id, name AS who FROM people")
    assert cursor.column_names == ("id", "who")
    cursor.close()


def test_raw_yields_tuples(people: Dorm) -> None:
    rows = list(people.exec("acme", "SELECT id, name FROM people WHERE id < 3 ORDER BY id").raw())
    assert rows == [(1, "ada"), (2, "grace")]


def test_one_returns_single_row(people: Dorm) -> None:
    assert people.exec("acme", "SELECT name FROM people WHERE id = ?", 2).one()["name"] == "grace"


def test_one_raises_when_empty(people: Dorm) -> None:
    with pytest.raises(NoResultFound, match="acme"):
        people.exec("acme", "SELECT * FROM people WHERE id = 99").one()


def test_one_raises_on_several_rows(people: Dorm) -> None:
    with pytest.raises(MultipleResultsFound):
        people.exec("acme", "SELECT * FROM people").one()


def test_first_and_scalar(people: Dorm) -> None:
    assert people.exec("acme", "SELECT name FROM people ORDER BY id").first()["name"] == "ada"
    assert people.exec("acme", "SELECT name FROM people WHERE id = 99").first() is None
    assert people.exec("acme", "SELECT count(*) FROM people").scalar() == 3


def test_named_parameters(people: Dorm) -> None:
    row = people.exec("acme", "SELECT name FROM people WHERE age > :age ORDER BY age", {"age": 32}).one()
    assert row["name"] == "edsger"


def test_rows_read_counts_returned_rows(people: Dorm) -> None:
    cursor = people.exec("acme", "SELECT * FROM people")
    assert cursor.rows_read == 0
    cursor.all()
    assert cursor.rows_read == 3


@pytest.mark.parametrize(
    ("sql", "written"),
    [
        ("INSERT INTO people (name) VALUES ('alan'), ('barbara')", 2),
        ("UPDATE people SET age = age + 1", 3),
        ("DELETE FROM people WHERE id = 1", 1),
        ("SELECT * FROM people", 0),
    ],
)
def test_rows_written(people: Dorm, sql: str, written: int) -> None:
    cursor = people.exec("acme", sql)
    cursor.all()
    assert cursor.rows_written == written


def test_insert_returning(people: Dorm) -> None:
    cursor = people.exec("acme", "INSERT INTO people (name) VALUES ('alan') RETURNING id, name")
    rows = [tuple(row) for row in cursor]

    assert rows == [(4, "alan")]
    assert cursor.rows_written == 1


def test_constraint_violation_raises_integrity_error(people: Dorm) -> None:
    with pytest.raises(IntegrityError):
        people.exec("acme", "INSERT INTO people (name) VALUES ('ada')")


def test_bad_sql_raises_operational_error(people: Dorm) -> None:
    with pytest.raises(OperationalError, match="no such table"):
        people.exec("acme", "SELECT * FROM nowhere")


def test_two_statements_rejected(people: Dorm) -> None:
    with pytest.raises(Exception, match="one statement"):
        people.exec("acme", "SELECT 1; DROP TABLE people")
    assert people.exec("acme", "SELECT count(*) FROM people").scalar() == 3


@pytest.mark.parametrize(
    "sql",
    ["BEGIN", "  begin immediate", "COMMIT", "ROLLBACK", "SAVEPOINT x", "RELEASE x", "END", "-- c\nBEGIN", "/* c */ BEGIN"],
)
def test_transaction_control_rejected(people: Dorm, sql: str) -> None:
    with pytest.raises(DormError, match="own transaction"):
        people.exec("acme", sql)


def test_non_string_sql_rejected(people: Dorm) -> None:
    with pytest.raises(TypeError, match="SQL must be a str"):
        people.exec("acme", 42)  # type: ignore[arg-type]


def test_failed_statement_returns_connection(people: Dorm) -> None:
    entry = people._engines.get("acme")
    for _ in range(5):
        with pytest.raises(OperationalError):
            people.exec("acme", "SELECT * FROM nowhere")
    assert entry.checked_out == 0


def test_abandoned_cursor_returns_connection(people: Dorm) -> None:
    entry = people._engines.get("acme")
    cursor = people.exec("acme", "SELECT * FROM people")
    next(iter(cursor))
    assert entry.checked_out == 1
    del cursor
    gc.collect()
    assert entry.checked_out == 0


def test_cursor_context_manager_closes(people: Dorm) -> None:
    with people.exec("acme", "SELECT * FROM people") as cursor:
        next(iter(cursor))
    assert cursor.closed


def test_partial_read_then_writer_proceeds(people: Dorm) -> None:
    cursor = people.exec("acme", "SELECT * FROM people")
    next(iter(cursor))
    people.exec("acme", "INSERT INTO people (name) VALUES ('new')")
    cursor.close()
    assert people.exec("acme", "SELECT count(*) FROM people").scalar() == 4


async def test_async_cursor_iterates(people: Dorm) -> None:
    cursor = await people.aexec("acme", "SELECT name FROM people ORDER BY id")
    names = [row["name"] async for row in cursor]

    assert names == ["ada", "grace", "edsger"]
    assert cursor.rows_read == 3


async def test_async_cursor_helpers(people: Dorm) -> None:
    assert (await (await people.aexec("acme", "SELECT name FROM people WHERE id = 1")).one())["name"] == "ada"
    assert await (await people.aexec("acme", "SELECT count(*) FROM people")).scalar() == 3
    raw = [row async for row in (await people.aexec("acme", "SELECT id FROM people ORDER BY id")).raw()]
    assert raw == [(1,), (2,), (3,)]
    cursor = await people.aexec("acme", "DELETE FROM people")
    assert cursor.rows_written == 3


def test_million_rows_stream_in_flat_memory(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import resource
        from dorm_sqlalchemy import Dorm

        dorm = Dorm(root={str(tmp_path)!r})
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "SELECT i, printf('row %08d with some text', i) FROM n"
        )
        for _ in dorm.exec("acme", sql, 1000):
            pass
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        count = 0
        for row in dorm.exec("acme", sql, 1_000_000):
            count += 1
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        dorm.close()
        print(count, after - before)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    count, growth_kib = (int(value) for value in completed.stdout.split())

    assert count == 1_000_000
    # The whole result as Python rows would take well over 100 MB.
    assert growth_kib < 10 * 1024


def test_pragma_change_does_not_persist(people: Dorm) -> None:
    people.exec("acme", "PRAGMA foreign_keys = OFF")
    assert people.exec("acme", "PRAGMA foreign_keys").scalar() == 1


def test_pragma_change_on_session_does_not_persist(people: Dorm) -> None:
    from sqlalchemy import text

    with people.session("acme") as session:
        session.execute(text("PRAGMA foreign_keys = OFF"))
    for _ in range(5):
        with people.engine("acme").connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
