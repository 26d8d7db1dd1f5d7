"""Concurrent first opens: threads and processes reach head and apply each revision once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from alembic_ext import make_migrator
from dorm_sqlalchemy.errors import MigrationError


def logged_revisions(engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT revision FROM migration_log ORDER BY rowid")
        return [row[0] for row in rows]


def slow_down_r2(scripts) -> None:
    """Make r2 sleep, so concurrent upgrades overlap."""
    scripts.add(
        "r2",
        "r1",
        """
        import time
        time.sleep(0.3)
        op.add_column("notes", sa.Column("author", sa.String))
        op.execute("INSERT INTO migration_log (revision) VALUES ('r2')")
        """,
    )


def test_four_threads_four_new_tenants(logged_scripts, make_engine):
    migrator = make_migrator(logged_scripts.directory)
    tenants = ["acme", "globex", "initech", "umbrella"]
    engines = {name: make_engine(name) for name in tenants}

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: migrator.upgrade(name, engines[name]), tenants))

    assert [result.to_revision for result in results] == ["r3"] * 4
    assert [result.error for result in results] == [None] * 4
    for name in tenants:
        assert logged_revisions(engines[name]) == ["r1", "r2", "r3"], name


def test_four_threads_same_new_tenant(logged_scripts, make_engine):
    slow_down_r2(logged_scripts)
    engine = make_engine("acme")
    migrators = [make_migrator(logged_scripts.directory) for _ in range(4)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda migrator: migrator.upgrade("acme", engine), migrators))

    assert logged_revisions(engine) == ["r1", "r2", "r3"]
    assert [result.to_revision for result in results] == ["r3"] * 4
    assert sum(not result.skipped for result in results) == 1


CHILD_SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    from sqlalchemy import create_engine, event

    from alembic_ext import make_migrator
    from dorm_sqlalchemy.connections import enable_wal

    database, scripts, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    engine = create_engine("sqlite:///" + database)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 20000")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        # Both children create the same new file: switching it to WAL needs
        # the retry the library's own connection setup does.
        enable_wal(dbapi_connection.cursor(), 20.0)

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    migrator = make_migrator(scripts)
    migrator.heads()
    while time.time() < start_at:
        time.sleep(0.001)
    result = migrator.upgrade("acme", engine)
    print("skipped" if result.skipped else "upgraded", result.to_revision)
    engine.dispose()
    """
)


def test_two_processes_same_new_tenant(logged_scripts, make_engine, tmp_path, child_env):
    slow_down_r2(logged_scripts)
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    database = tmp_path / "tenants" / "acme.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    # Both children wait for the same moment, after their imports are done.
    start_at = time.time() + 2.0

    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(database),
                str(logged_scripts.directory),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120) for child in children]

    assert [child.returncode for child in children] == [0, 0], outputs
    lines = sorted(stdout.strip() for stdout, _stderr in outputs)
    assert lines == ["skipped r3", "upgraded r3"]
    assert logged_revisions(make_engine("acme")) == ["r1", "r2", "r3"]


def test_nested_upgrade_in_revision_raises(logged_scripts, make_engine, tmp_path):
    other = tmp_path / "other.db"
    logged_scripts.add(
        "r4",
        "r3",
        f"""
        from sqlalchemy import create_engine
        from alembic_ext import make_migrator
        engine = create_engine("sqlite:///{other}")
        try:
            make_migrator({str(logged_scripts.directory)!r}).upgrade("other", engine)
        finally:
            engine.dispose()
        """,
    )
    engine = make_engine("acme")

    with pytest.raises(MigrationError) as caught:
        make_migrator(logged_scripts.directory).upgrade("acme", engine)

    assert caught.value.tenant == "acme"
    assert caught.value.revision == "r4"
    assert "cannot run two environments" in str(caught.value)


@pytest.mark.parametrize(
    "engine_factory",
    [
        lambda path: create_engine("postgresql+psycopg://user@127.0.0.1/db"),
        lambda path: create_async_engine(f"sqlite+aiosqlite:///{path}"),
    ],
    ids=["postgresql", "aiosqlite"],
)
async def test_upgrade_rejects_other_engines(engine_factory, logged_scripts, tmp_path):
    engine = engine_factory(tmp_path / "acme.db")
    migrator = make_migrator(logged_scripts.directory)

    try:
        with pytest.raises(TypeError):
            migrator.upgrade("acme", engine)
    finally:
        dispose = engine.dispose()
        if dispose is not None:
            await dispose
