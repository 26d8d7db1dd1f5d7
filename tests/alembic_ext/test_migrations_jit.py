"""Just-in-time upgrades of one tenant with an Alembic script directory."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from alembic_ext import AlembicMigrator, MigrationResult, make_migrator
from dorm_sqlalchemy.errors import MigrationError


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def schema_rows(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        )
        return [tuple(row) for row in rows]


def logged_revisions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT revision FROM migration_log ORDER BY rowid")
        return [row[0] for row in rows]


def test_upgrade_from_base_reaches_head(logged_scripts, make_engine):
    migrator = make_migrator(logged_scripts.directory)
    engine = make_engine("acme")

    result = migrator.upgrade("acme", engine)

    assert isinstance(result, MigrationResult)
    assert result.tenant == "acme"
    assert result.from_revision is None
    assert result.to_revision == "r3"
    assert result.skipped is False
    assert result.error is None
    assert migrator.current("acme", engine) == "r3"
    assert logged_revisions(engine) == ["r1", "r2", "r3"]


def test_upgrade_at_head_is_skipped(logged_scripts, make_engine):
    migrator = make_migrator(logged_scripts.directory)
    engine = make_engine("acme")
    migrator.upgrade("acme", engine)

    result = migrator.upgrade("acme", engine)

    assert result.skipped is True
    assert result.from_revision == "r3"
    assert result.to_revision == "r3"
    assert logged_revisions(engine) == ["r1", "r2", "r3"]


def test_upgrade_from_middle_revision(logged_scripts, make_scripts, make_engine):
    # An older deployment whose script directory ends at r1.
    older = make_scripts("older")
    older.add_logged("r1")
    engine = make_engine("acme")
    make_migrator(older.directory).upgrade("acme", engine)

    result = make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert result.from_revision == "r1"
    assert result.to_revision == "r3"
    assert logged_revisions(engine) == ["r1", "r2", "r3"]


FAILING_R3 = """
op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
# notes contains a row whose body is NULL, so copying it into the rebuilt table fails.
with op.batch_alter_table("notes", recreate="always") as batch_op:
    batch_op.alter_column("body", existing_type=sa.String, nullable=False)
"""

FIXED_R3 = """
op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
op.execute("UPDATE notes SET body = '(empty)' WHERE body IS NULL")
with op.batch_alter_table("notes", recreate="always") as batch_op:
    batch_op.alter_column("body", existing_type=sa.String, nullable=False)
"""


@pytest.fixture
def tenant_at_r2(scripts, make_engine):
    """Tenant acme at r2 with a notes row whose body is NULL, and a failing r3 on disk."""
    scripts.add(
        "r1",
        None,
        'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.String))',
    )
    scripts.add("r2", "r1", 'op.execute("INSERT INTO notes (id, body) VALUES (1, NULL)")')
    engine = make_engine("acme")
    make_migrator(scripts.directory).upgrade("acme", engine)
    scripts.add("r3", "r2", FAILING_R3, message="make notes.body required")
    return engine


def test_failing_revision_keeps_previous_revision(scripts, tenant_at_r2):
    engine = tenant_at_r2
    tables_before = table_names(engine)
    migrator = make_migrator(scripts.directory)

    with pytest.raises(MigrationError) as caught:
        migrator.upgrade("acme", engine)

    assert migrator.current("acme", engine) == "r2"
    assert table_names(engine) == tables_before
    assert "half_done" not in table_names(engine)
    assert not [name for name in table_names(engine) if name.startswith("_alembic_tmp_")]
    assert caught.value.tenant == "acme"
    assert caught.value.revision == "r3"
    assert "'acme'" in str(caught.value)
    assert "r3" in str(caught.value)
    assert "make notes.body required" in str(caught.value)
    assert isinstance(caught.value.__cause__, IntegrityError)


def test_failing_revision_retry_after_fix(scripts, tenant_at_r2):
    engine = tenant_at_r2
    migrator = make_migrator(scripts.directory)
    with pytest.raises(MigrationError):
        migrator.upgrade("acme", engine)
    scripts.add("r3", "r2", FIXED_R3, message="make notes.body required")

    result = migrator.upgrade("acme", engine)

    assert result.from_revision == "r2"
    assert result.to_revision == "r3"
    assert migrator.current("acme", engine) == "r3"
    assert "half_done" in table_names(engine)


def test_failing_revision_retry_after_data_fix(scripts, tenant_at_r2):
    engine = tenant_at_r2
    migrator = make_migrator(scripts.directory)
    with pytest.raises(MigrationError):
        migrator.upgrade("acme", engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE notes SET body = 'filled' WHERE id = 1")

    result = migrator.upgrade("acme", engine)

    assert result.to_revision == "r3"
    assert migrator.current("acme", engine) == "r3"


def test_new_tenant_failing_revision_stays_at_base(logged_scripts, make_engine):
    logged_scripts.add(
        "r3",
        "r2",
        """
        op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))
        raise RuntimeError("r3 broke")
        """,
    )
    engine = make_engine("acme")
    migrator = make_migrator(logged_scripts.directory)

    with pytest.raises(MigrationError) as caught:
        migrator.upgrade("acme", engine)

    assert migrator.current("acme", engine) is None
    assert table_names(engine) == set()
    assert caught.value.revision == "r3"
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_upgrade_inside_running_event_loop(logged_scripts, make_engine):
    # Async registries call upgrade() with the sync engine from the loop's thread.
    assert asyncio.get_running_loop() is not None
    engine = make_engine("acme")

    result = make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert result.to_revision == "r3"


def create_unversioned_tables(path: Path) -> None:
    """Create r1's tables the way metadata.create_all() would: no alembic_version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE migration_log (revision VARCHAR NOT NULL)")
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR)")
    connection.commit()
    connection.close()


def test_unversioned_database_raises(logged_scripts, make_engine, tmp_path):
    create_unversioned_tables(tmp_path / "tenants" / "acme.db")
    engine = make_engine("acme")
    schema_before = schema_rows(engine)

    with pytest.raises(MigrationError) as caught:
        make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert caught.value.tenant == "acme"
    assert "alembic_version" in str(caught.value)
    assert "stamp" in str(caught.value)
    assert "notes" in str(caught.value)
    assert schema_rows(engine) == schema_before


def test_unversioned_database_stamped_at_head(logged_scripts, make_engine, tmp_path):
    create_unversioned_tables(tmp_path / "tenants" / "acme.db")
    engine = make_engine("acme")

    result = make_migrator(logged_scripts.directory, stamp_unversioned="head").upgrade(
        "acme", engine
    )

    assert result.to_revision == "r3"
    assert make_migrator(logged_scripts.directory).current("acme", engine) == "r3"
    assert logged_revisions(engine) == []


def test_unversioned_database_stamped_then_upgraded(logged_scripts, make_engine, tmp_path):
    create_unversioned_tables(tmp_path / "tenants" / "acme.db")
    engine = make_engine("acme")

    result = make_migrator(logged_scripts.directory, stamp_unversioned="r1").upgrade("acme", engine)

    assert result.from_revision == "r1"
    assert result.to_revision == "r3"
    assert logged_revisions(engine) == ["r2", "r3"]


def test_unknown_revision_raises(logged_scripts, make_engine):
    engine = make_engine("acme")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('f00dfeed')")

    with pytest.raises(MigrationError) as caught:
        make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert caught.value.revision == "f00dfeed"
    assert "f00dfeed" in str(caught.value)
    assert "older than the database" in str(caught.value)
    assert table_names(engine) == {"alembic_version"}


def test_revision_prefix_counts_as_unknown(logged_scripts, make_engine):
    # Alembic's get_revision() resolves a unique prefix to the full revision,
    # so a stored prefix of a real revision must still count as unknown.
    logged_scripts.add("r4abcdef", "r3", "pass")
    engine = make_engine("acme")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('r4abc')")

    with pytest.raises(MigrationError) as caught:
        make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert caught.value.revision == "r4abc"


def prepare_state(state: str, path: Path, engine_factory, scripts) -> Engine:
    if state == "unversioned":
        create_unversioned_tables(path)
    engine = engine_factory("acme")
    if state == "behind":
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE migration_log (revision VARCHAR NOT NULL)")
            connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR)")
            connection.exec_driver_sql(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"
            )
            connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('r1')")
    return engine


@pytest.mark.parametrize(
    ("state", "expected_current", "expected_state"),
    [
        ("empty", None, "empty"),
        ("unversioned", None, "unversioned"),
        ("behind", "r1", "behind"),
    ],
)
def test_version_check_never_writes(
    state, expected_current, expected_state, logged_scripts, make_engine, tmp_path
):
    engine = prepare_state(state, tmp_path / "tenants" / "acme.db", make_engine, logged_scripts)
    schema_before = schema_rows(engine)
    migrator = make_migrator(logged_scripts.directory)

    current = migrator.current("acme", engine)
    status = migrator.describe("acme", engine)

    assert current == expected_current
    assert status.state == expected_state
    assert schema_rows(engine) == schema_before


def test_make_migrator_accepts_ini_and_folders(logged_scripts):
    sources = [
        logged_scripts.directory,
        str(logged_scripts.directory),
        logged_scripts.ini,
        logged_scripts.base,
    ]
    for source in sources:
        migrator = make_migrator(source)
        assert isinstance(migrator, AlembicMigrator), source
        assert migrator.heads() == ("r3",), source


def test_make_migrator_rejects_missing_path(tmp_path):
    with pytest.raises(MigrationError) as caught:
        make_migrator(tmp_path / "nowhere")

    assert "init_script_directory" in str(caught.value)


def test_broken_revision_file_raises(logged_scripts, make_engine):
    (logged_scripts.directory / "versions" / "r4_rev.py").write_text("revision = 'r4'\ndef upgrade(:\n")
    migrator = make_migrator(logged_scripts.directory)

    with pytest.raises(MigrationError) as caught:
        migrator.upgrade("acme", make_engine("acme"))

    assert "SyntaxError" in str(caught.value)
    assert caught.value.tenant == "acme"


def test_make_migrator_rejects_other_types():
    with pytest.raises(TypeError):
        make_migrator(42)  # type: ignore[arg-type]


def test_branches_upgrade_to_all_heads(scripts, make_engine):
    scripts.add("r1", None, 'op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))')
    scripts.add("r2a", "r1", 'op.create_table("b", sa.Column("id", sa.Integer, primary_key=True))')
    scripts.add("r2b", "r1", 'op.create_table("c", sa.Column("id", sa.Integer, primary_key=True))')
    engine = make_engine("acme")
    migrator = make_migrator(scripts.directory)

    result = migrator.upgrade("acme", engine)

    assert migrator.heads() == ("r2a", "r2b")
    assert result.to_revision == "r2a,r2b"
    assert migrator.current("acme", engine) == "r2a,r2b"
    assert migrator.upgrade("acme", engine).skipped is True


ENV_WITH_OTHER_ENGINE = """
from alembic import context
from sqlalchemy import create_engine

engine = create_engine("sqlite:///{other}")
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

ENV_WITHOUT_RUN = """
from alembic import context

context.configure(connection=context.config.attributes["connection"])
"""


@pytest.mark.parametrize(
    ("env_source", "expected_message"),
    [
        (ENV_WITH_OTHER_ENGINE, "another connection"),
        (ENV_WITHOUT_RUN, "without calling"),
    ],
)
def test_env_py_must_use_given_connection(
    env_source, expected_message, logged_scripts, make_engine, tmp_path
):
    other = tmp_path / "other.db"
    (logged_scripts.directory / "env.py").write_text(env_source.format(other=other))
    engine = make_engine("acme")

    with pytest.raises(MigrationError) as caught:
        make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert expected_message in str(caught.value)
    assert table_names(engine) == set()
