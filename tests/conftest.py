"""Shared fixtures: every registry a test opens is closed when the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dorm_sqlalchemy import Dorm


@pytest.fixture
def make_dorm(tmp_path: Path) -> Iterator[Any]:
    """Build registries on files under ``tmp_path/tenants``; close them all afterwards."""
    opened: list[Dorm] = []

    def make(*args: Any, **options: Any) -> Dorm:
        if not args and "root" not in options:
            options["root"] = tmp_path / "tenants"
        dorm = Dorm(*args, **options)
        opened.append(dorm)
        return dorm

    yield make
    for dorm in opened:
        dorm.close()


@pytest.fixture
def dorm(make_dorm: Any) -> Dorm:
    return make_dorm()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the whole session (fails, never skips, when missing)."""
    from tests.postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: Any) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    name = f"dorm_{uuid.uuid4().hex[:12]}"
    # No pool: a test may restart the server between setup and teardown.
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
