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
