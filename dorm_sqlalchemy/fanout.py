"""Cross-tenant reads: one query on many tenants, rows tagged with their tenant."""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from .connections import BEGIN_OPTION
from .cursor import Cursor, read_only_authorizer
from .errors import DormError

if TYPE_CHECKING:
    from sqlalchemy.sql import Executable

    from .engines import TenantEngines

__all__ = ["TenantRow", "fan_out"]

TenantRow = tuple
"""A row of :meth:`Dorm.fan_out`: a named tuple whose first field is ``tenant``."""


def fan_out(
    open_tenant: Callable[[str], TenantEngines],
    statement: str | Executable,
    params: Sequence[Any],
    tenants: Sequence[str],
    *,
    max_workers: int,
) -> list[TenantRow]:
    """Run ``statement`` on every tenant, at most ``max_workers`` at a time."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"invalid max_workers {max_workers!r}: give an integer >= 1")
    if not tenants:
        return []

    def query(tenant: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        entry = open_tenant(tenant)
        if isinstance(statement, str):
            with Cursor.execute(entry, statement, params, read_only=True) as cursor:
                return cursor.column_names, list(cursor.raw())
        with entry.engine.connect().execution_options(**{BEGIN_OPTION: "deferred"}) as connection:
            dbapi_connection = connection.connection.dbapi_connection
            dbapi_connection.set_authorizer(read_only_authorizer)
            try:
                result = connection.execute(statement, *params)
                columns = tuple(result.keys())
                return columns, [tuple(row) for row in result]
            except sa_exc.DBAPIError as error:
                if getattr(error.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_AUTH:
                    raise DormError(
                        f"tenant {tenant!r}: fan_out() only reads, and this statement "
                        "does more: use dorm.session() on each tenant to write",
                        tenant=tenant,
                    ) from error
                raise
            finally:
                dbapi_connection.set_authorizer(None)

    workers = min(max_workers, len(tenants))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dorm-fan-out") as pool:
        results = list(pool.map(_guard(query), tenants))

    columns = next((cols for cols, _ in results if cols), ())
    if "tenant" in columns:
        raise DormError(
            "fan_out() adds a 'tenant' column to every row: rename the query's "
            "own 'tenant' column (for example with AS)"
        )
    row_type = namedtuple("TenantRow", ("tenant", *columns), rename=True)  # type: ignore[misc]
    rows: list[TenantRow] = []
    for tenant, (_, values) in zip(tenants, results):
        rows.extend(row_type(tenant, *value) for value in values)
    return rows


def _guard(query: Callable[[str], Any]) -> Callable[[str], Any]:
    def run(tenant: str) -> Any:
        try:
            return query(tenant)
        except DormError:
            raise
        except Exception as error:
            raise DormError(
                f"fan_out() failed on tenant {tenant!r}: {error}", tenant=tenant
            ) from error

    return run
