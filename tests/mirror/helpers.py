"""Helpers shared by the mirror tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from dorm_sqlalchemy import Dorm


def aggregate_rows(url: str, table: str, order: str = "1, 2") -> list[tuple[Any, ...]]:
    """Return every row of an aggregate table, tenant column first."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(text(f'SELECT * FROM "{table}" ORDER BY {order}'))
            ]
    finally:
        engine.dispose()


def tenant_rows(dorm: Dorm, tenant: str, table: str, order: str = "1") -> list[tuple[Any, ...]]:
    """Return every row of a tenant table, prefixed with the tenant name."""
    return [
        (tenant, *row)
        for row in dorm.exec(tenant, f'SELECT * FROM "{table}" ORDER BY {order}').raw()
    ]
