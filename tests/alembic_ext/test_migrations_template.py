"""Template databases: new tenants copied from a file already at head."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from alembic_ext import copy_template, make_migrator
from dorm_sqlalchemy.errors import MigrationError


def read_rows(path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return [tuple(row) for row in connection.execute(sql)]
    finally:
        connection.close()


def test_template_path_builds_once(logged_scripts, tmp_path):
    migrator = make_migrator(logged_scripts.directory)
    directory = tmp_path / "templates"

    first = migrator.template_path(directory)
    modified = first.stat().st_mtime_ns
    second = migrator.template_path(directory)

    assert first == second
    assert first.name == f"_template-{migrator.fingerprint()}.db"
    assert second.stat().st_mtime_ns == modified
    assert sorted(path.name for path in directory.iterdir()) == [first.name]
    assert read_rows(first, "SELECT version_num FROM alembic_version") == [("r3",)]
    assert read_rows(first, "PRAGMA journal_mode") == [("delete",)]


def test_copy_template_creates_tenant_at_head(logged_scripts, tmp_path, make_engine):
    migrator = make_migrator(logged_scripts.directory)
    target = tmp_path / "tenants" / "acme.db"

    created = copy_template(migrator.template_path(tmp_path / "templates"), target)
    result = migrator.upgrade("acme", make_engine("acme"))

    assert created is True
    assert result.skipped is True
    assert result.to_revision == "r3"
    logged = read_rows(target, "SELECT revision FROM migration_log ORDER BY rowid")
    assert logged == [("r1",), ("r2",), ("r3",)]
    assert [path.name for path in target.parent.iterdir() if "partial" in path.name] == []


def test_copy_template_keeps_existing_tenant(logged_scripts, tmp_path):
    migrator = make_migrator(logged_scripts.directory)
    target = tmp_path / "tenants" / "acme.db"
    target.parent.mkdir(parents=True)
    connection = sqlite3.connect(target)
    connection.execute("CREATE TABLE precious (x)")
    connection.commit()
    connection.close()

    created = copy_template(migrator.template_path(tmp_path / "templates"), target)

    assert created is False
    assert read_rows(target, "SELECT name FROM sqlite_master") == [("precious",)]


def test_template_fingerprint_follows_revisions(logged_scripts, tmp_path):
    directory = tmp_path / "templates"
    old = make_migrator(logged_scripts.directory).template_path(directory)
    logged_scripts.add("r4", "r3", 'op.execute("INSERT INTO migration_log (revision) VALUES (\'r4\')")')

    new = make_migrator(logged_scripts.directory).template_path(directory)

    assert new != old
    assert read_rows(new, "SELECT version_num FROM alembic_version") == [("r4",)]


def test_template_fingerprint_follows_edits(logged_scripts):
    before = make_migrator(logged_scripts.directory).fingerprint()
    logged_scripts.add("r3", "r2", 'op.create_table("labels", sa.Column("id", sa.Integer, primary_key=True))')

    after = make_migrator(logged_scripts.directory).fingerprint()

    assert after != before


def test_template_from_dict_migrations(tmp_path):
    migrator = make_migrator(
        {1: ["CREATE TABLE notes (id INTEGER PRIMARY KEY)"], 2: ["INSERT INTO notes VALUES (1)"]}
    )
    target = tmp_path / "tenants" / "acme.db"

    copy_template(migrator.template_path(tmp_path / "templates"), target)

    assert read_rows(target, "SELECT id FROM notes") == [(1,)]
    assert read_rows(target, "SELECT version FROM _dorm_migrations ORDER BY version") == [(1,), (2,)]


def test_template_build_failure_leaves_nothing(logged_scripts, tmp_path):
    logged_scripts.add("r4", "r3", 'raise RuntimeError("r4 broke")')
    directory = tmp_path / "templates"

    with pytest.raises(MigrationError) as caught:
        make_migrator(logged_scripts.directory).template_path(directory)

    assert caught.value.revision == "r4"
    assert list(directory.iterdir()) == []


def test_template_path_from_threads(logged_scripts, tmp_path):
    migrator = make_migrator(logged_scripts.directory)
    directory = tmp_path / "templates"

    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = set(pool.map(lambda _: migrator.template_path(directory), range(4)))

    assert len(paths) == 1
    assert len(list(directory.iterdir())) == 1


def test_copy_missing_template_raises(tmp_path):
    target = tmp_path / "tenants" / "acme.db"

    with pytest.raises(MigrationError) as caught:
        copy_template(tmp_path / "_template-missing.db", target)

    assert "no tenant file was created" in str(caught.value)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_template_fingerprint_follows_env_py(logged_scripts):
    before = make_migrator(logged_scripts.directory).fingerprint()
    environment = logged_scripts.directory / "env.py"
    environment.write_text(environment.read_text() + "\n# changed\n")

    after = make_migrator(logged_scripts.directory).fingerprint()

    assert after != before
