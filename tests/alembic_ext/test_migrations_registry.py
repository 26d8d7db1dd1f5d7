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
