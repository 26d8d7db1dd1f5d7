"""migrate_all() and status() over many tenants."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from alembic_ext import MigrationReport, StatusReport, make_migrator, migrate_all, status
from dorm_sqlalchemy.errors import TenantNotFound


@pytest.fixture
def engine_for(make_engine, tmp_path):
    """Return each tenant's engine, building it once; "ghost" does not exist."""
    engines = {}
    lock = threading.Lock()

    def engine_for(tenant: str):
        if tenant == "ghost":
            raise TenantNotFound(tenant)
        with lock:
            if tenant not in engines:
                engines[tenant] = make_engine(tenant)
            return engines[tenant]

    return engine_for


def create_unversioned(tmp_path, tenant: str) -> None:
    path = tmp_path / "tenants" / f"{tenant}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()


def test_migrate_all_reports_each_tenant(logged_scripts, engine_for, tmp_path):
    migrator = make_migrator(logged_scripts.directory)
    migrator.upgrade("done", engine_for("done"))
    create_unversioned(tmp_path, "legacy")
    tenants = ["fresh1", "done", "legacy", "ghost", "fresh2"]

    report = migrate_all(migrator, tenants, engine_for, jobs=3, progress=False)

    assert isinstance(report, MigrationReport)
    assert [result.tenant for result in report.results] == tenants
    assert [result.tenant for result in report.upgraded] == ["fresh1", "fresh2"]
    assert [result.tenant for result in report.skipped] == ["done"]
    assert [result.tenant for result in report.failed] == ["legacy", "ghost"]
    assert "alembic_version" in report.failed[0].error
    assert "does not exist" in report.failed[1].error
    assert report.ok is False
    assert report.heads == ("r3",)
    assert migrator.current("fresh2", engine_for("fresh2")) == "r3"


def test_migrate_all_render(logged_scripts, engine_for, tmp_path):
    create_unversioned(tmp_path, "legacy")
    migrator = make_migrator(logged_scripts.directory)

    text = migrate_all(migrator, ["acme", "legacy"], engine_for, progress=False).render()
    lines = text.splitlines()

    assert lines[0].split() == ["tenant", "seconds", "result"]
    assert "acme" in lines[1]
    assert "upgraded base -> r3" in lines[1]
    assert "legacy" in lines[2]
    assert "failed at base" in lines[2]
    assert "2 tenant(s)" in lines[3]
    assert "1 upgraded, 0 already at head, 1 failed; head is r3" in lines[3]


def test_migrate_all_skips_at_head_without_env(logged_scripts, engine_for):
    tenants = [f"tenant{index}" for index in range(12)]
    migrate_all(make_migrator(logged_scripts.directory), tenants, engine_for, progress=False)
    # Any run of env.py from now on fails, so a skip must not load it.
    (logged_scripts.directory / "env.py").write_text("raise RuntimeError('env.py must not run')\n")

    migrator = make_migrator(logged_scripts.directory)
    report = migrate_all(migrator, tenants, engine_for, jobs=4, progress=False)

    assert len(report.skipped) == 12
    assert report.failed == []


def test_migrate_all_dict_migrations_in_parallel(engine_for):
    migrator = make_migrator(
        {
            1: ["CREATE TABLE notes (id INTEGER PRIMARY KEY)"],
            2: ["CREATE INDEX ix_notes ON notes (id)"],
        }
    )
    tenants = [f"tenant{index}" for index in range(8)]

    report = migrate_all(migrator, tenants, engine_for, jobs=4, progress=False)

    assert [result.to_revision for result in report.results] == ["2"] * 8
    assert report.ok is True


def test_migrate_all_progress_bar(logged_scripts, engine_for, capsys):
    migrate_all(make_migrator(logged_scripts.directory), ["acme", "globex"], engine_for, progress=True)

    captured = capsys.readouterr()

    assert "upgrading" in captured.err
    assert "2/2" in captured.err
    assert captured.out == ""


def test_migrate_all_no_progress_without_terminal(logged_scripts, engine_for, capsys):
    migrate_all(make_migrator(logged_scripts.directory), ["acme"], engine_for)

    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("jobs", [0, -1])
def test_migrate_all_rejects_bad_jobs(jobs, logged_scripts, engine_for):
    with pytest.raises(ValueError):
        migrate_all(make_migrator(logged_scripts.directory), ["acme"], engine_for, jobs=jobs)


def test_status_reads_every_state(logged_scripts, engine_for, tmp_path):
    migrator = make_migrator(logged_scripts.directory)
    migrator.upgrade("current", engine_for("current"))
    create_unversioned(tmp_path, "legacy")
    with engine_for("behind").begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('r1')")
    with engine_for("future").begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('r9')")
    tenants = ["current", "behind", "fresh", "legacy", "future", "ghost"]

    report = status(migrator, tenants, engine_for)

    assert isinstance(report, StatusReport)
    assert [item.state for item in report.statuses] == [
        "at head",
        "behind",
        "empty",
        "unversioned",
        "unknown revision",
        "error",
    ]
    assert [item.current for item in report.statuses] == ["r3", "r1", None, None, "r9", None]
    assert [item.tenant for item in report.behind] == tenants[1:]
    assert "1 at head, 5 not at head" in report.render()
    assert migrator.current("fresh", engine_for("fresh")) is None
