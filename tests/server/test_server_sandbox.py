"""The SQL sandbox: a tenant's endpoint never reaches another tenant, the file system or internals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dorm_sqlalchemy.server.sandbox import (
    INTROSPECTION_PRAGMAS,
    READABLE_SETTING_PRAGMAS,
)

from .conftest import LiveServer


def _files(directory: Path) -> set[str]:
    return {path.name for path in directory.rglob("*")}


@pytest.fixture
def tenants(server: LiveServer) -> LiveServer:
    """acme and globex, each with a table t holding one secret row."""
    for tenant in ("acme", "globex"):
        server.sql(tenant, "CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)")
        server.sql(tenant, "INSERT INTO t (secret) VALUES (?)", [f"{tenant}-secret"])
    return server


def test_attach_other_tenant_denied(tenants: LiveServer, tmp_path: Path) -> None:
    globex_path = tenants.dorm.path("globex")
    before = _files(tmp_path)

    response = tenants.sql("acme", f"ATTACH '{globex_path}' AS o")
    read = tenants.sql("acme", "SELECT * FROM o.t")

    assert response.status_code == 403
    assert "ATTACH is not allowed" in response.json()["error"]
    assert "globex-secret" not in read.text
    assert read.status_code == 400
    assert _files(tmp_path) == before


def test_attach_new_file_creates_nothing(tenants: LiveServer, tmp_path: Path) -> None:
    target = tmp_path / "outside.db"

    response = tenants.sql("acme", "ATTACH ? AS o", [str(target)])

    assert response.status_code == 403
    assert not target.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "VACUUM INTO '{target}'",
        "  /* x */ vacuum into '{target}';",
        "VACUUM",
        "VACUUM main INTO '{target}'",
    ],
)
def test_vacuum_denied_and_creates_no_file(tenants: LiveServer, tmp_path: Path, sql: str) -> None:
    target = tmp_path / "copy.db"
    before = _files(tmp_path)

    response = tenants.sql("acme", sql.format(target=target))

    assert response.status_code == 403
    assert "VACUUM is not allowed" in response.json()["error"]
    assert not target.exists()
    assert _files(tmp_path) == before


def test_vacuum_in_transaction_denied(tenants: LiveServer, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"

    response = tenants.transaction("acme", "SELECT 1", f"VACUUM INTO '{target}'")

    assert response.status_code == 403
    assert not target.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT load_extension('/tmp/x')",
        "SELECT load_extension('x', 'entry')",
        "SELECT fts3_tokenizer('simple')",
    ],
)
def test_file_reaching_functions_denied(tenants: LiveServer, sql: str) -> None:
    response = tenants.sql("acme", sql)

    assert response.status_code == 403
    assert "is not allowed" in response.json()["error"]


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA writable_schema = 1",
        "PRAGMA writable_schema = ON",
        "PRAGMA main.writable_schema = 1",
        "PRAGMA writable_schema",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA user_version = 5",
        "PRAGMA schema_version = 1",
        "PRAGMA query_only = 1",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA optimize",
        "PRAGMA cache_size = 1",
        "PRAGMA temp_store_directory = '/tmp'",
        "PRAGMA Writable_Schema = 1",
    ],
)
def test_pragmas_outside_allow_list_denied(tenants: LiveServer, sql: str) -> None:
    response = tenants.sql("acme", sql)

    assert response.status_code == 403
    assert "PRAGMA" in response.json()["error"]
    assert tenants.rows("acme", "PRAGMA foreign_keys") == [[1]]
    assert tenants.rows("acme", "PRAGMA journal_mode") == [["wal"]]


def test_writable_schema_stays_off(tenants: LiveServer) -> None:
    tenants.sql("acme", "PRAGMA writable_schema = 1")

    response = tenants.sql("acme", "UPDATE sqlite_schema SET sql = 'x' WHERE name = 't'")

    assert response.status_code == 400
    assert tenants.rows("acme", "SELECT secret FROM t") == [["acme-secret"]]


@pytest.mark.parametrize("pragma", sorted(INTROSPECTION_PRAGMAS))
def test_introspection_pragma_allowed_both_forms(tenants: LiveServer, pragma: str) -> None:
    argument = "('t')" if "table" in pragma or "foreign" in pragma or "index" in pragma else ""

    statement = tenants.sql("acme", f"PRAGMA {pragma}{argument}")
    function = tenants.sql("acme", f'SELECT * FROM "main".pragma_{pragma}{argument or "()"}')

    assert statement.status_code == 200, statement.text
    assert function.status_code == 200, function.text


@pytest.mark.parametrize("pragma", sorted(READABLE_SETTING_PRAGMAS))
def test_setting_pragma_readable(tenants: LiveServer, pragma: str) -> None:
    response = tenants.sql("acme", f"PRAGMA {pragma}")

    assert response.status_code == 200, response.text


def test_defer_foreign_keys_allowed_in_transaction(tenants: LiveServer) -> None:
    tenants.sql("acme", "CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    tenants.sql("acme", "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))")

    response = tenants.transaction(
        "acme",
        "PRAGMA defer_foreign_keys = ON",
        "INSERT INTO child VALUES (1)",
        "INSERT INTO parent VALUES (1)",
    )

    assert response.status_code == 200, response.text
    assert tenants.rows("acme", "PRAGMA defer_foreign_keys") == [[0]]


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT * FROM "main".sqlite_schema;',
        'SELECT * FROM "temp".sqlite_schema;',
        "SELECT * FROM sqlite_master",
        "SELECT * FROM \"main\".sqlite_schema WHERE tbl_name = 't';",
        "SELECT * FROM \"main\".pragma_table_info('t');",
        'SELECT * FROM "main".pragma_table_info("t");',
        "PRAGMA database_list;",
        "SELECT * FROM json_each('[1, 2]')",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT * FROM n",
    ],
)
def test_explorer_queries_keep_working(tenants: LiveServer, sql: str) -> None:
    response = tenants.sql("acme", sql)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TEMP TABLE x (a)",
        "CREATE TABLE temp.x (a)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
    ],
)
def test_temporary_objects_denied(tenants: LiveServer, sql: str) -> None:
    response = tenants.sql("acme", sql)

    assert response.status_code == 403
    assert "temporary" in response.json()["error"]


@pytest.mark.parametrize(
    "sql", ["BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", "SAVEPOINT s", "RELEASE s", "END"]
)
def test_transaction_control_denied(tenants: LiveServer, sql: str) -> None:
    response = tenants.sql("acme", sql)

    assert response.status_code == 403
    assert '"transaction" list' in response.json()["error"]


@pytest.fixture
def internal(tenants: LiveServer) -> LiveServer:
    """acme with the library's tables _dorm_outbox and alembic_version, made on the server side."""
    tenants.dorm.exec(
        "acme", "CREATE TABLE _dorm_outbox (id INTEGER PRIMARY KEY, payload TEXT)"
    ).all()
    tenants.dorm.exec("acme", "CREATE TABLE alembic_version (version_num TEXT)").all()
    tenants.dorm.exec("acme", "INSERT INTO alembic_version VALUES ('abc')").all()
    return tenants


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO _dorm_outbox (payload) VALUES ('x')",
        "UPDATE _dorm_outbox SET payload = 'y'",
        "DELETE FROM _dorm_outbox",
        "DROP TABLE _dorm_outbox",
        "ALTER TABLE _dorm_outbox ADD COLUMN c",
        "CREATE INDEX ix ON _dorm_outbox (payload)",
        "CREATE TRIGGER tr AFTER INSERT ON _dorm_outbox BEGIN SELECT 1; END",
        "CREATE TABLE _dorm_fake (a)",
        "CREATE TABLE _DORM_fake (a)",
        "CREATE VIEW _dorm_view AS SELECT 1",
        "CREATE TRIGGER _dorm_trigger AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE TABLE _alembic_tmp_t (a)",
        "UPDATE alembic_version SET version_num = 'zzz'",
        "DELETE FROM alembic_version",
        "ALTER TABLE t RENAME TO _dorm_outbox2",
        'ALTER TABLE t RENAME TO "alembic_version2"',
    ],
)
def test_internal_tables_not_writable(internal: LiveServer, sql: str) -> None:
    response = internal.sql("acme", sql)

    assert response.status_code == 403, response.text
    assert "belong to dorm-sqlalchemy" in response.json()["error"]
    assert internal.rows("acme", "SELECT version_num FROM alembic_version") == [["abc"]]
    assert internal.rows("acme", "SELECT count(*) FROM _dorm_outbox") == [[0]]


def test_internal_names_in_data_are_fine(internal: LiveServer) -> None:
    response = internal.sql(
        "acme", "INSERT INTO t (secret) VALUES ('ALTER TABLE x RENAME TO _dorm_y')"
    )

    assert response.status_code == 200


def test_internal_tables_readable(internal: LiveServer) -> None:
    assert internal.rows("acme", "SELECT version_num FROM alembic_version") == [["abc"]]


def test_client_trigger_cannot_write_internal_table(internal: LiveServer) -> None:
    created = internal.sql(
        "acme",
        "CREATE TRIGGER sneaky AFTER INSERT ON t BEGIN INSERT INTO _dorm_outbox (payload) VALUES ('x'); END",
    )

    response = internal.sql("acme", "INSERT INTO t (secret) VALUES ('new')")

    assert created.status_code == 200
    assert response.status_code == 403
    assert internal.rows("acme", "SELECT count(*) FROM _dorm_outbox") == [[0]]
    assert internal.rows("acme", "SELECT count(*) FROM t") == [[1]]


def test_library_trigger_may_write_internal_table(internal: LiveServer) -> None:
    internal.dorm.exec(
        "acme",
        "CREATE TRIGGER _dorm_capture_t AFTER INSERT ON t "
        "BEGIN INSERT INTO _dorm_outbox (payload) VALUES (new.secret); END",
    ).all()

    response = internal.sql("acme", "INSERT INTO t (secret) VALUES ('new')")

    assert response.status_code == 200, response.text
    assert internal.rows("acme", "SELECT payload FROM _dorm_outbox") == [["new"]]


def test_statement_prepared_by_library_is_checked_again(internal: LiveServer) -> None:
    sql = "INSERT INTO _dorm_outbox (payload) VALUES ('cached')"
    for _ in range(3):
        # The library's own statements share connections with the HTTP API,
        # so this statement sits in the sqlite3 statement cache.
        internal.dorm.exec("acme", sql).all()

    response = internal.sql("acme", sql)

    assert response.status_code == 403
    assert internal.rows("acme", "SELECT count(*) FROM _dorm_outbox") == [[3]]


@pytest.mark.parametrize(
    ("module", "status"),
    [("fts5(body)", 200), ("rtree(id, x0, x1)", 200), ("dbstat", 403)],
)
def test_virtual_table_modules(tenants: LiveServer, module: str, status: int) -> None:
    response = tenants.sql("acme", f"CREATE VIRTUAL TABLE v USING {module}")

    assert response.status_code == status, response.text


def test_other_tenant_data_never_visible(tenants: LiveServer) -> None:
    attempts: list[Any] = [
        tenants.sql("acme", "SELECT * FROM globex.t"),
        tenants.sql("acme", "SELECT * FROM pragma_database_list"),
        tenants.sql("acme", "SELECT secret FROM t"),
    ]

    assert all("globex-secret" not in response.text for response in attempts)
    assert attempts[2].json()["result"]["rows"] == [["acme-secret"]]


def test_statement_list_of_the_connection_is_denied(start_server: Any, make_dorm: Any) -> None:
    dorm = make_dorm()
    dorm.exec("acme", "CREATE TABLE secrets (pw TEXT)")
    server = start_server(dorm)
    server.sql("acme", "SELECT * FROM secrets WHERE pw = 'hunter2'")

    response = server.sql("acme", "SELECT sql FROM sqlite_stmt")

    assert response.status_code == 403, response.text
    assert "sqlite_stmt" in response.json()["error"]


def test_invalid_utf8_text_is_422(start_server: Any, make_dorm: Any) -> None:
    dorm = make_dorm()
    dorm.exec("acme", "CREATE TABLE n (body TEXT)")
    dorm.exec("acme", "INSERT INTO n VALUES (CAST(x'ff' AS TEXT))")
    server = start_server(dorm)

    response = server.sql("acme", "SELECT body FROM n")

    assert response.status_code == 422, response.text
    assert "CAST(column AS BLOB)" in response.json()["error"]
