"""DORM-style migrations: numbered lists of SQL statements."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.exc import OperationalError

from alembic_ext import MIGRATIONS_TABLE, DictMigrator, make_migrator
from dorm_sqlalchemy.errors import MigrationError

LOGGED = {
    1: [
        "CREATE TABLE migration_log (version TEXT NOT NULL)",
        "INSERT INTO migration_log VALUES ('1')",
    ],
    2: ["INSERT INTO migration_log VALUES ('2')"],
    10: [
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
        "INSERT INTO migration_log VALUES ('10')",
    ],
}


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def table_names(engine) -> set[str]:
    return {row[0] for row in rows(engine, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_dict_upgrade_applies_versions_in_order(make_engine):
    # Keys out of order on purpose: versions run by number.
    migrations = {10: LOGGED[10], 2: LOGGED[2], 1: LOGGED[1]}
    migrator = make_migrator(migrations)
    engine = make_engine("acme")

    result = migrator.upgrade("acme", engine)

    assert isinstance(migrator, DictMigrator)
    assert migrator.heads() == ("10",)
    assert result.from_revision is None
    assert result.to_revision == "10"
    assert result.skipped is False
    assert rows(engine, "SELECT version FROM migration_log ORDER BY rowid") == [("1",), ("2",), ("10",)]
    assert migrator.current("acme", engine) == "10"
    recorded = rows(engine, f"SELECT version, applied_at IS NOT NULL, error FROM {MIGRATIONS_TABLE}")
    assert recorded == [(1, 1, None), (2, 1, None), (10, 1, None)]


def test_dict_upgrade_at_head_is_skipped(make_engine):
    migrator = make_migrator(LOGGED)
    engine = make_engine("acme")
    migrator.upgrade("acme", engine)

    result = migrator.upgrade("acme", engine)

    assert result.skipped is True
    assert result.from_revision == "10"
    assert len(rows(engine, "SELECT * FROM migration_log")) == 3


def test_dict_upgrade_applies_only_new_versions(make_engine):
    engine = make_engine("acme")
    make_migrator({1: LOGGED[1], 2: LOGGED[2]}).upgrade("acme", engine)

    result = make_migrator(LOGGED).upgrade("acme", engine)

    assert result.from_revision == "2"
    assert result.to_revision == "10"
    assert rows(engine, "SELECT version FROM migration_log ORDER BY rowid") == [("1",), ("2",), ("10",)]


BROKEN = {
    1: ["CREATE TABLE notes (id INTEGER PRIMARY KEY)"],
    2: ["CREATE TABLE half_done (id INTEGER)", "INSERT INTO nowhere VALUES (1)"],
}
FIXED = {
    1: BROKEN[1],
    2: ["CREATE TABLE half_done (id INTEGER)", "INSERT INTO notes VALUES (1)"],
}


def test_dict_failed_version_rolls_back(make_engine):
    engine = make_engine("acme")
    migrator = make_migrator(BROKEN)

    with pytest.raises(MigrationError) as caught:
        migrator.upgrade("acme", engine)

    assert caught.value.tenant == "acme"
    assert caught.value.revision == "2"
    assert "version 2, statement 2 of 2" in str(caught.value)
    assert "nowhere" in str(caught.value)
    assert isinstance(caught.value.__cause__, OperationalError)
    assert migrator.current("acme", engine) == "1"
    assert "half_done" not in table_names(engine)


def test_dict_failed_version_records_error(make_engine):
    engine = make_engine("acme")
    with pytest.raises(MigrationError):
        make_migrator(BROKEN).upgrade("acme", engine)

    recorded = rows(
        engine,
        f"SELECT version, applied_at, error, failed_at FROM {MIGRATIONS_TABLE} ORDER BY version",
    )

    assert [row[0] for row in recorded] == [1, 2]
    assert recorded[1][1] is None
    assert "no such table: nowhere" in recorded[1][2]
    assert recorded[1][3] is not None


def test_dict_retry_after_fix_clears_error(make_engine):
    engine = make_engine("acme")
    with pytest.raises(MigrationError):
        make_migrator(BROKEN).upgrade("acme", engine)

    result = make_migrator(FIXED).upgrade("acme", engine)

    assert result.from_revision == "1"
    assert result.to_revision == "2"
    recorded = rows(engine, f"SELECT error, failed_at FROM {MIGRATIONS_TABLE} WHERE version = 2")
    assert recorded == [(None, None)]
    assert "half_done" in table_names(engine)


def test_dict_foreign_key_violation_rolls_back(make_engine):
    engine = make_engine("acme")
    migrations = {
        1: [
            "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE child (id INTEGER PRIMARY KEY, "
            "parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE)",
            "INSERT INTO parent VALUES (1)",
            "INSERT INTO child VALUES (1, 1)",
        ],
        2: ["DELETE FROM parent"],
    }

    with pytest.raises(MigrationError) as caught:
        make_migrator(migrations).upgrade("acme", engine)

    assert caught.value.revision == "2"
    assert "foreign key" in str(caught.value)
    assert rows(engine, "SELECT count(*) FROM parent") == [(1,)]
    assert rows(engine, "SELECT count(*) FROM child") == [(1,)]


@pytest.mark.parametrize(
    ("migrations", "expected"),
    [
        ({"1": ["CREATE TABLE t (x)"]}, "not an integer"),
        ({True: ["CREATE TABLE t (x)"]}, "not an integer"),
        ({0: ["CREATE TABLE t (x)"]}, "not positive"),
        ({-3: ["CREATE TABLE t (x)"]}, "not positive"),
        ({1: "CREATE TABLE t (x)"}, "list of SQL statements"),
        ({1: ["CREATE TABLE a (x); CREATE TABLE b (x)"]}, "more than one SQL statement"),
        ({1: ["SELECT 1; -- fine\nSELECT 2"]}, "more than one SQL statement"),
        ({1: ["BEGIN"]}, "BEGIN statement"),
        ({1: ["commit;"]}, "COMMIT statement"),
        ({1: ["VACUUM"]}, "VACUUM statement"),
        ({1: [""]}, "is empty"),
        ({1: ["-- only a comment"]}, "is empty"),
        ({1: [42]}, "not a SQL string"),
    ],
)
def test_dict_rejects_invalid_migrations(migrations, expected):
    with pytest.raises(MigrationError) as caught:
        make_migrator(migrations)

    assert expected in str(caught.value)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE t (x TEXT);",
        "CREATE TABLE t (x TEXT); -- trailing comment",
        "CREATE TABLE t (x TEXT DEFAULT 'a;b')",
        "/* leading */ CREATE TABLE t (x TEXT) /* trailing */",
        "CREATE TABLE t (x TEXT); /* several */ -- comments\n",
    ],
)
def test_dict_accepts_single_statements(statement, make_engine):
    engine = make_engine("acme")

    make_migrator({1: [statement]}).upgrade("acme", engine)

    assert "t" in table_names(engine)


def test_dict_accepts_trigger_with_inner_semicolons(make_engine):
    engine = make_engine("acme")
    migrations = {
        1: [
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
            "CREATE TABLE audit (note_id INTEGER)",
            "CREATE TRIGGER notes_audit AFTER INSERT ON notes BEGIN "
            "INSERT INTO audit VALUES (new.id); INSERT INTO audit VALUES (-new.id); END",
        ],
        2: ["INSERT INTO notes (id, body) VALUES (7, 'x')"],
    }

    make_migrator(migrations).upgrade("acme", engine)

    assert rows(engine, "SELECT note_id FROM audit ORDER BY note_id") == [(-7,), (7,)]


def test_dict_make_migrator_rejects_list():
    with pytest.raises(TypeError):
        make_migrator([["CREATE TABLE t (x)"]])  # type: ignore[arg-type]


def create_unversioned(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE migration_log (version TEXT NOT NULL)")
    connection.commit()
    connection.close()


def test_dict_unversioned_database_raises(make_engine, tmp_path):
    create_unversioned(tmp_path / "tenants" / "acme.db")
    engine = make_engine("acme")

    with pytest.raises(MigrationError) as caught:
        make_migrator(LOGGED).upgrade("acme", engine)

    assert "stamp_unversioned" in str(caught.value)
    assert MIGRATIONS_TABLE not in table_names(engine)


def test_dict_unversioned_database_stamped(make_engine, tmp_path):
    create_unversioned(tmp_path / "tenants" / "acme.db")
    engine = make_engine("acme")

    result = make_migrator(LOGGED, stamp_unversioned="1").upgrade("acme", engine)

    assert result.from_revision == "1"
    assert result.to_revision == "10"
    assert rows(engine, "SELECT version FROM migration_log ORDER BY rowid") == [("2",), ("10",)]


def test_dict_stamp_must_name_a_version():
    with pytest.raises(MigrationError):
        make_migrator(LOGGED, stamp_unversioned="7")


def test_dict_unknown_version_raises(make_engine):
    engine = make_engine("acme")
    make_migrator({**LOGGED, 11: ["SELECT 1"]}).upgrade("acme", engine)

    with pytest.raises(MigrationError) as caught:
        make_migrator(LOGGED).upgrade("acme", engine)

    assert caught.value.revision == "11"
    assert "older than the database" in str(caught.value)


def test_dict_current_never_writes(make_engine):
    engine = make_engine("acme")
    migrator = make_migrator(LOGGED)

    current = migrator.current("acme", engine)
    status = migrator.describe("acme", engine)

    assert current is None
    assert status.state == "empty"
    assert table_names(engine) == set()


def test_dict_four_threads_same_tenant(make_engine):
    engine = make_engine("acme")
    migrators = [make_migrator(LOGGED) for _ in range(4)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda migrator: migrator.upgrade("acme", engine), migrators))

    assert [result.to_revision for result in results] == ["10"] * 4
    assert rows(engine, "SELECT version FROM migration_log ORDER BY rowid") == [("1",), ("2",), ("10",)]
