"""Fixtures for the migration tests: tenant-like engines and script directories on tmp_path."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from alembic_ext import init_script_directory

REPO_ROOT = Path(__file__).resolve().parents[2]


def configure_tenant_engine(engine: Engine) -> Engine:
    """Set an engine up like a registry tenant engine.

    Driver autocommit, foreign keys on, WAL, a busy timeout, and a begin
    event that emits BEGIN IMMEDIATE.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 10000")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Any]:
    """Build tenant-like engines on ``tmp_path/tenants/<name>.db``; dispose of them afterwards."""
    engines: list[Engine] = []

    def make(name: str = "acme", path: Path | None = None) -> Engine:
        if path is None:
            path = tmp_path / "tenants" / f"{name}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = configure_tenant_engine(create_engine(URL.create("sqlite", database=str(path))))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


# Three revisions, each of which appends its id to migration_log, so that a
# test can count how often each one ran.
LOGGED_REVISIONS = {
    "r1": (
        None,
        """
        op.create_table("migration_log", sa.Column("revision", sa.String, nullable=False))
        op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.String))
        op.execute("INSERT INTO migration_log (revision) VALUES ('r1')")
        """,
    ),
    "r2": (
        "r1",
        """
        op.add_column("notes", sa.Column("author", sa.String))
        op.execute("INSERT INTO migration_log (revision) VALUES ('r2')")
        """,
    ),
    "r3": (
        "r2",
        """
        op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO migration_log (revision) VALUES ('r3')")
        """,
    ),
}


class Scripts:
    """An Alembic script directory made from the dorm template, with helpers to add revisions."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.directory = init_script_directory(
            base / "migrations",
            root=base / "tenants",
            reference_url=f"sqlite:///{base / 'reference.db'}",
        )
        self.ini = base / "alembic.ini"

    def add(
        self,
        revision: str,
        down_revision: str | None,
        upgrade: str,
        downgrade: str = "pass",
        *,
        message: str = "",
    ) -> Path:
        """Write a revision file whose upgrade() and downgrade() run the given code."""
        source = textwrap.dedent(
            '''\
            """{message}"""
            import sqlalchemy as sa
            from alembic import op

            revision = {revision!r}
            down_revision = {down_revision!r}
            branch_labels = None
            depends_on = None


            def upgrade():
            {upgrade}


            def downgrade():
            {downgrade}
            '''
        ).format(
            message=message or f"revision {revision}",
            revision=revision,
            down_revision=down_revision,
            upgrade=textwrap.indent(textwrap.dedent(upgrade).strip(), "    "),
            downgrade=textwrap.indent(textwrap.dedent(downgrade).strip(), "    "),
        )
        path = self.directory / "versions" / f"{revision}_rev.py"
        path.write_text(source)
        return path

    def add_logged(self, *revisions: str) -> None:
        """Add revisions from LOGGED_REVISIONS, which log themselves in migration_log."""
        for revision in revisions:
            down_revision, upgrade = LOGGED_REVISIONS[revision]
            self.add(revision, down_revision, upgrade)


@pytest.fixture
def scripts(tmp_path: Path) -> Scripts:
    return Scripts(tmp_path)


@pytest.fixture
def make_scripts(tmp_path: Path) -> Any:
    """Build further script directories under ``tmp_path/<name>``."""
    return lambda name: Scripts(tmp_path / name)


@pytest.fixture
def logged_scripts(scripts: Scripts) -> Scripts:
    """The script directory with revisions r1 -> r2 -> r3 that log themselves."""
    scripts.add_logged("r1", "r2", "r3")
    return scripts


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for child processes, so that they import this checkout's packages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def alembic_command() -> list[str]:
    """The argv prefix that runs the alembic command of this virtual environment."""
    return [str(Path(sys.executable).with_name("alembic"))]
