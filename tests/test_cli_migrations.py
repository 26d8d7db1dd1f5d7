"""The dorm migrate, status, init-migrations and schema sql commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dorm_sqlalchemy.cli import main

REVISION = '''"""notes

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))


def downgrade() -> None:
    op.drop_table("notes")
'''

BROKEN = REVISION.replace('"0001"\ndown_revision = None', '"0002"\ndown_revision = "0001"').replace(
    'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))',
    'op.execute("INSERT INTO missing_table VALUES (1)")',
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    assert main(["--root", str(root), "init-migrations", str(tmp_path / "migrations")]) == 0
    (tmp_path / "migrations" / "versions" / "0001_notes.py").write_text(REVISION)
    assert main(["--root", str(root), "create", "acme", "globex"]) == 0
    return tmp_path


def test_init_writes_script_directory(project: Path) -> None:
    assert (project / "migrations" / "env.py").is_file()
    assert (project / "alembic.ini").is_file()
    assert "dorm.root" in (project / "alembic.ini").read_text()


def test_init_refuses_existing_directory(project: Path, capsys) -> None:
    assert main(["--root", str(project / "data"), "init-migrations", str(project / "migrations")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_migrate_upgrades_every_tenant(project: Path, capsys) -> None:
    code = main(["--root", str(project / "data"), "migrate", "--migrations", str(project / "migrations"), "--no-progress"])
    output = capsys.readouterr().out

    assert code == 0
    assert "2 upgraded" in output
    for tenant in ("acme", "globex"):
        connection = sqlite3.connect(project / "data" / f"{tenant}.db")
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        connection.close()
        assert version == "0001"


def test_migrate_twice_skips(project: Path, capsys) -> None:
    arguments = ["--root", str(project / "data"), "migrate", "--migrations", str(project / "migrations")]
    main(arguments)
    capsys.readouterr()
    assert main(arguments) == 0
    assert "2 already at head" in capsys.readouterr().out


def test_migrate_one_tenant(project: Path, capsys) -> None:
    assert main(["--root", str(project / "data"), "migrate", "--migrations", str(project / "migrations"), "--tenant", "acme"]) == 0
    assert main(["--root", str(project / "data"), "status", "--migrations", str(project / "migrations")]) == 0
    output = capsys.readouterr().out
    assert "acme    0001" in output
    assert "globex  base" in output


def test_migrate_failure_exits_one(project: Path, capsys) -> None:
    (project / "migrations" / "versions" / "0002_broken.py").write_text(BROKEN)
    code = main(["--root", str(project / "data"), "migrate", "--migrations", str(project / "migrations")])
    output = capsys.readouterr().out

    assert code == 1
    assert "0002" in output
    assert "2 failed" in output


def test_migrate_needs_migrations(project: Path, capsys) -> None:
    assert main(["--root", str(project / "data"), "migrate"]) == 2
    assert "--migrations DIR" in capsys.readouterr().err


def test_migrate_unknown_tenant(project: Path, capsys) -> None:
    code = main(["--root", str(project / "data"), "migrate", "--migrations", str(project / "migrations"), "--tenant", "ghost"])
    assert code == 1
    assert "ghost" in capsys.readouterr().err
    assert not (project / "data" / "ghost.db").exists()


def test_migrations_from_environment(project: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DORM_MIGRATIONS", str(project / "migrations"))
    assert main(["--root", str(project / "data"), "status"]) == 0
    assert "head is 0001" in capsys.readouterr().out


def test_schema_sql_prints_ddl(tmp_path: Path, capsys) -> None:
    schema = {
        "$id": "users",
        "type": "object",
        "properties": {
            "id": {"type": "integer", "x-dorm-primary-key": True},
            "email": {"type": "string", "maxLength": 100},
        },
        "required": ["email"],
    }
    path = tmp_path / "users.json"
    path.write_text(json.dumps(schema))

    assert main(["schema", "sql", str(path)]) == 0
    ddl = capsys.readouterr().out
    connection = sqlite3.connect(":memory:")
    connection.executescript(ddl)
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("INSERT INTO users (email) VALUES (?)", ("x" * 101,))
    connection.close()


def test_schema_sql_bad_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"$id": "t", "type": "object", "properties": {"a": {"type": "integr"}}}')

    assert main(["schema", "sql", str(path)]) == 1
    error = capsys.readouterr().err
    assert "/properties/a/type" in error
    assert "Traceback" not in error
