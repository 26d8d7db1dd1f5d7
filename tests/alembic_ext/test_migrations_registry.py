"""The registry's migration hook: Dorm(migrations=...) brings tenants to head on first use."""

from __future__ import annotations

import pytest


def versions(engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]


@pytest.mark.parametrize("begin", ["immediate", "deferred"])
def test_registry_engine_is_at_head(begin, logged_scripts, make_dorm, tmp_path):
    dorm = make_dorm(root=tmp_path / "tenants", migrations=logged_scripts.directory, begin=begin)

    engine = dorm.engine("acme")

    assert versions(engine) == ["r3"]


def test_registry_migrate_reports_tenants(logged_scripts, make_dorm, tmp_path):
    dorm = make_dorm(root=tmp_path / "tenants", migrations=logged_scripts.directory)
    dorm.engine("acme")

    report = dorm.migrate()

    assert [result.tenant for result in report.results] == ["acme"]
    assert report.results[0].skipped is True


async def test_registry_async_engine_is_at_head(logged_scripts, make_dorm, tmp_path):
    dorm = make_dorm(root=tmp_path / "tenants", migrations=logged_scripts.directory)

    async with dorm.async_engine("acme").connect() as connection:
        result = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        rows = result.all()
    await dorm.aclose()

    assert [row[0] for row in rows] == ["r3"]


def test_failed_new_tenant_is_named(logged_scripts, make_dorm, tmp_path):
    from dorm_sqlalchemy.errors import MigrationError

    logged_scripts.add("r4", "r3", 'raise RuntimeError("r4 broke")')
    dorm = make_dorm(root=tmp_path / "tenants", migrations=logged_scripts.directory)

    with pytest.raises(MigrationError, match="new tenant 'newco'") as caught:
        dorm.engine("newco")

    assert caught.value.tenant == "newco"
    assert caught.value.revision == "r4"
    assert not dorm.exists("newco")


def test_revision_opening_new_tenant_raises(logged_scripts, make_dorm, tmp_path):
    import sys
    import threading
    import types

    from dorm_sqlalchemy.errors import MigrationError

    holder = types.ModuleType("dorm_registry_for_revision")
    sys.modules[holder.__name__] = holder
    logged_scripts.add(
        "r4", "r3", 'import dorm_registry_for_revision\ndorm_registry_for_revision.dorm.exec("other", "SELECT 1")'
    )
    holder.dorm = make_dorm(root=tmp_path / "tenants", migrations=logged_scripts.directory)
    errors: list[BaseException] = []

    def open_new_tenant() -> None:
        try:
            holder.dorm.engine("acme")
        except BaseException as error:
            errors.append(error)

    try:
        worker = threading.Thread(target=open_new_tenant, daemon=True)
        worker.start()
        worker.join(timeout=30)
    finally:
        del sys.modules[holder.__name__]

    assert not worker.is_alive(), "opening a tenant from a revision hung"
    assert len(errors) == 1
    assert isinstance(errors[0], MigrationError)
    assert "do not open tenants from env.py or from a revision" in str(errors[0])


def test_registry_takes_migrator_with_stamp(logged_scripts, make_dorm, tmp_path):
    import sqlite3

    from alembic_ext import make_migrator

    tenants = tmp_path / "tenants"
    tenants.mkdir()
    connection = sqlite3.connect(tenants / "legacy.db")
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, author TEXT)")
    connection.close()
    migrator = make_migrator(logged_scripts.directory, stamp_unversioned="head")
    dorm = make_dorm(root=tenants, migrations=migrator)

    engine = dorm.engine("legacy")

    assert versions(engine) == ["r3"]
